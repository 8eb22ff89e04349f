"""Loading and fetching models: the dpmpp scheduler keeps SD3's shift, SDXL's fp16 variant hub layout
loads through the workflow's loader, the fetch keeps what the loader reads, and HF_TOKEN only for gated repos."""
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub.utils import filter_repo_objects

from sinkrepro.generate import set_scheduler
from sinkrepro.models.load import fetch_hub_model, hub_allow_patterns, load_pipeline
from sinkrepro.models.tiny import build_tiny_sd3, build_tiny_sdxl

# stabilityai/stable-diffusion-3-medium-diffusers, scheduler/scheduler_config.json
PINNED, HEAD = "1" * 40, "2" * 40  # hub commit shas
SD3_MEDIUM_SCHEDULER = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory):
    return build_tiny_sd3(tmp_path_factory.mktemp("m") / "tiny-sd3")


@pytest.fixture(scope="module")
def sdxl_fp16_dir(tmp_path_factory):
    return build_tiny_sdxl(tmp_path_factory.mktemp("m") / "tiny-sdxl", variant="fp16")


def weight_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.safetensors")}


def shifted(sigma: np.ndarray, shift: float) -> np.ndarray:
    return shift * sigma / (1 + (shift - 1) * sigma)


def test_standin_scheduler_config_matches_sd3_medium(sd3_dir):
    config = json.loads((sd3_dir / "scheduler" / "scheduler_config.json").read_text())
    assert {k: config[k] for k in SD3_MEDIUM_SCHEDULER} == SD3_MEDIUM_SCHEDULER
    assert not config["use_dynamic_shifting"]


@pytest.mark.parametrize("steps", [4, 20])
def test_dpmpp_sigmas_carry_the_default_schedulers_shift(sd3_dir, steps):
    pipe = load_pipeline(sd3_dir, "sd3")
    shift = pipe.scheduler.config["shift"]
    assert shift == 3.0
    pipe.scheduler.set_timesteps(steps)
    default_sigmas = pipe.scheduler.sigmas[:-1].numpy()
    set_scheduler(pipe, "sd3", "dpmpp")
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    pipe.scheduler.set_timesteps(steps)
    got = pipe.scheduler.sigmas[:-1].numpy()
    # DPM-Solver++'s flow grid before shifting: 1 - t for t on [1, 1/T] in steps + 1 points, high to low
    train = pipe.scheduler.config["num_train_timesteps"]
    unshifted = (1.0 - np.linspace(1.0, 1.0 / train, steps + 1))[::-1][:-1]
    np.testing.assert_allclose(got, shifted(unshifted, shift), rtol=1e-5)
    assert not np.allclose(got, unshifted, rtol=1e-3)  # an unshifted schedule would fail here
    # both schedules are shift-3 schedules: mapping back through the inverse shift gives linear grids
    for sigmas in (got, default_sigmas):
        back = sigmas / (shift - (shift - 1) * sigmas)
        assert np.allclose(np.diff(back), np.diff(back)[0], rtol=1e-4)


def test_sdxl_standin_is_saved_in_the_fp16_variant_hub_layout(sdxl_fp16_dir):
    weights = weight_files(sdxl_fp16_dir)
    assert {"unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
            "text_encoder/model.fp16.safetensors", "text_encoder_2/model.fp16.safetensors"} == weights
    from safetensors import safe_open

    with safe_open(sdxl_fp16_dir / "unet" / "diffusion_pytorch_model.fp16.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}


def test_sdxl_loads_from_fp16_variant_files_through_the_workflow_loader(sdxl_fp16_dir):
    pipe = load_pipeline(sdxl_fp16_dir, "sdxl", dtype="float32", variant="fp16")
    assert pipe.unet.dtype == torch.float32
    from safetensors.torch import load_file

    saved = load_file(sdxl_fp16_dir / "unet" / "diffusion_pytorch_model.fp16.safetensors")
    name, tensor = next(iter(pipe.unet.state_dict().items()))
    assert torch.equal(tensor, saved[name].float())
    image = pipe(prompt=["a red teapot"], num_inference_steps=2, height=64, width=64, output_type="np",
                 generator=[torch.Generator().manual_seed(0)]).images
    assert image.shape == (1, 64, 64, 3) and np.isfinite(image).all()
    with pytest.raises(OSError, match=r"cannot load with variant=None .* `variant` must name the weight files"):
        load_pipeline(sdxl_fp16_dir, "sdxl", variant=None)


@pytest.fixture
def fake_hub(tmp_path, sdxl_fp16_dir, monkeypatch):
    """A hub snapshot holding full-precision and fp16 weights, like the real SDXL repo, served by a
    stand-in for snapshot_download that applies allow_patterns as the hub client does."""
    hub = tmp_path / "hub"
    build_tiny_sdxl(hub)
    for path in sdxl_fp16_dir.rglob("*.fp16.safetensors"):
        shutil.copy(path, hub / path.relative_to(sdxl_fp16_dir))
    calls = []

    def snapshot_download(repo_id, revision, local_dir, token, allow_patterns):
        calls.append({"repo": repo_id, "revision": revision, "token": token})
        files = [str(p.relative_to(hub)) for p in hub.rglob("*") if p.is_file()]
        for rel in filter_repo_objects(files, allow_patterns=allow_patterns):
            (Path(local_dir) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(hub / rel, Path(local_dir) / rel)

    def model_info(repo_id, revision, token):  # the hub's answer for a branch: the commit it points at now
        calls.append({"resolve": repo_id, "revision": revision})
        return SimpleNamespace(sha=HEAD)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return hub, calls


def test_fetch_keeps_exactly_the_variant_files_the_loader_reads(fake_hub, tmp_path, monkeypatch):
    hub, calls = fake_hub
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "unet/diffusion_pytorch_model.safetensors" in weight_files(hub)
    out = fetch_hub_model("stabilityai/stable-diffusion-xl-base-1.0", PINNED, tmp_path / "sdxl", variant="fp16")
    assert weight_files(out) == {w for w in weight_files(hub) if ".fp16." in w}
    assert calls == [{"repo": "stabilityai/stable-diffusion-xl-base-1.0", "revision": PINNED, "token": None}]
    assert json.loads((out / "sinkrepro_source.json").read_text())["variant"] == "fp16"
    pipe = load_pipeline(out, "sdxl", variant="fp16")
    assert pipe.unet is not None
    # without a variant the whole snapshot is kept
    assert hub_allow_patterns(None) is None


def test_a_branch_revision_is_fetched_at_its_commit_recorded_and_logged_as_the_pin(fake_hub, tmp_path, caplog):
    _, calls = fake_hub
    with caplog.at_level(logging.WARNING):
        out = fetch_hub_model("black-forest-labs/FLUX.1-schnell", "main", tmp_path / "flux",
                              where="config.models.flux-schnell")
    assert calls == [{"resolve": "black-forest-labs/FLUX.1-schnell", "revision": "main"},
                     {"repo": "black-forest-labs/FLUX.1-schnell", "revision": HEAD, "token": None}]
    source = json.loads((out / "sinkrepro_source.json").read_text())
    assert (source["revision"], source["commit"]) == ("main", HEAD)
    assert "config.models.flux-schnell.revision: 'main' is not a commit" in caplog.text
    assert f"revision: {HEAD}" in caplog.text


def test_hf_token_is_required_for_gated_repos_only(fake_hub, tmp_path, monkeypatch):
    _, calls = fake_hub
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(RuntimeError, match=r"config.models.sd3-medium.gated is true .* HF_TOKEN is not set"):
        fetch_hub_model("stabilityai/stable-diffusion-3-medium-diffusers", "abc", tmp_path / "sd3", gated=True,
                        where="config.models.sd3-medium")
    assert calls == [] and not (tmp_path / "sd3").exists()
    fetch_hub_model("public/repo", PINNED, tmp_path / "public", variant="fp16", gated=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    fetch_hub_model("gated/repo", PINNED, tmp_path / "gated", variant="fp16", gated=True)
    assert [c["token"] for c in calls] == [None, "hf_test"]


def test_fetch_refuses_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE=1"):
        fetch_hub_model("public/repo", "abc", tmp_path / "m")
