"""Pinned downloads: scorer weights at a hub revision with checked sha256 pins (a fake hub here, never
the network), and the pinned URLs and revisions of config/paper.yaml."""
import hashlib
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sinkrepro.scoring import fetch_scorer_weights
from sinkrepro.scoring.fetch import HUB, FetchError

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
COMMIT = re.compile(r"^[0-9a-f]{40}$")
HPS_FILE = HUB["hps"][1]
HPS_BYTES = b"hps weights at the pinned commit"


@pytest.fixture
def hub(monkeypatch):
    """A stand-in for the hub client: serves HPS_BYTES (or whatever the test sets) and records calls."""
    import huggingface_hub

    state = {"data": HPS_BYTES, "head": "b" * 40, "downloads": []}

    def hf_hub_download(repo, name, revision, local_dir):
        state["downloads"].append((repo, name, revision))
        path = Path(local_dir) / name
        path.write_bytes(state["data"])
        return str(path)

    def model_info(self, repo, revision=None):
        return SimpleNamespace(sha=revision or state["head"])

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)  # the scorer repos are public
    return state


def pin(data: bytes) -> dict:
    return {HPS_FILE: hashlib.sha256(data).hexdigest()}


def test_fetch_at_the_pinned_revision_with_a_matching_pin(hub, tmp_path):
    out = fetch_scorer_weights("hps", tmp_path / "hps", revision="a" * 40, sha256=pin(HPS_BYTES))
    assert hub["downloads"] == [("xswu/HPSv2", HPS_FILE, "a" * 40)]
    spec = json.loads((out / "scorer.json").read_text())
    assert spec["source"] == f"hf:xswu/HPSv2/{HPS_FILE}@{'a' * 40}"
    assert spec["files"]["weights"]["sha256"] == hashlib.sha256(HPS_BYTES).hexdigest()


def test_a_changed_file_fails_with_the_field_both_digests_and_nothing_written(hub, tmp_path):
    hub["data"] = b"hps weights, silently replaced upstream"
    with pytest.raises(FetchError) as err:
        fetch_scorer_weights("hps", tmp_path / "hps", revision="a" * 40, sha256=pin(HPS_BYTES))
    message = str(err.value)
    assert message.startswith(f"config.scorers.hps.sha256.{HPS_FILE}: the fetched file has sha256 "
                              f"{hashlib.sha256(hub['data']).hexdigest()}, expected {pin(HPS_BYTES)[HPS_FILE]}")
    assert not (tmp_path / "hps").exists() and list(tmp_path.iterdir()) == []


def test_unpinned_fetch_uses_the_head_commit_and_logs_the_pins_to_add(hub, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        out = fetch_scorer_weights("hps", tmp_path / "hps")
    assert hub["downloads"] == [("xswu/HPSv2", HPS_FILE, "b" * 40)]
    assert json.loads((out / "scorer.json").read_text())["source"].endswith("@" + "b" * 40)
    assert f"add `revision: {'b' * 40}`" in caplog.text
    assert f"add `{HPS_FILE}: {hashlib.sha256(HPS_BYTES).hexdigest()}`" in caplog.text


def test_a_pin_for_a_file_the_scorer_lacks_is_refused(hub, tmp_path):
    with pytest.raises(FetchError, match=r"config.scorers.hps.sha256: \['HPS_v2.pt'\] are not files of this scorer"):
        fetch_scorer_weights("hps", tmp_path / "hps", sha256={"HPS_v2.pt": "0" * 64})


def test_revision_is_only_for_hub_scorers(tmp_path):
    with pytest.raises(ValueError, match=r"config.scorers.lpips.revision: lpips is not fetched from the hub"):
        fetch_scorer_weights("lpips", tmp_path / "lpips", revision="a" * 40)


def test_offline_fetch_names_the_scorer_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match=r"run the `scorer` rule \(snakemake resources/scorers/clip_t\)"):
        fetch_scorer_weights("clip_t", tmp_path / "clip_t")


def test_paper_lpips_pin_is_the_file_of_the_installed_lpips_wheel():
    import lpips

    wheel_file = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    assert PAPER["scorers"]["lpips"]["sha256"] == {"alex_v0.1.pth": hashlib.sha256(wheel_file.read_bytes()).hexdigest()}


def test_paper_scorer_pins_are_well_formed():
    for name, scorer in PAPER["scorers"].items():
        assert scorer.get("revision") is None or COMMIT.match(scorer["revision"]), name
        assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in scorer.get("sha256", {}).values()), name


# Where each pinned prompt source lives: (repository, path at the pinned commit). The authors'
# balanced list sits under attention-sink-voodoo-release/ in their repository.
PROMPT_FILES = {
    "geneval": ("djghosh13/geneval", "prompts/evaluation_metadata.jsonl"),
    "balanced100": ("wfz666/ICML26-attention-sink",
                    "attention-sink-voodoo-release/prompts/prompts_geneval_balanced_100.txt"),
}


@pytest.mark.parametrize("name", sorted(PROMPT_FILES))
def test_paper_prompt_urls_name_a_file_at_a_full_pinned_commit(name):
    entry = PAPER["prompt_sets"][name]
    match = re.fullmatch(r"https://raw\.githubusercontent\.com/([^/]+/[^/]+)/([^/]+)/(.+)", entry["url"])
    assert match, entry["url"]
    repo, commit, path = match.groups()
    assert (repo, path) == PROMPT_FILES[name]
    assert COMMIT.match(commit), f"{name}: {commit} is not a full 40-hex commit"
    assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])


def test_paper_models_are_pinned_and_only_sd3_is_gated():
    for name, model in PAPER["models"].items():
        assert COMMIT.match(model["revision"]), name
    assert {name for name, m in PAPER["models"].items() if m.get("gated")} == {"sd3-medium"}
    assert PAPER["models"]["sdxl-base"]["variant"] == "fp16"
