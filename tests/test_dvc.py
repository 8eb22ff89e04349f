"""DVC sharing: dvc.yaml checks, and push -> fresh clone -> pull -> touch -> rebuild the paper from
pulled data, on a local directory remote and a tiny config, without generating or scoring again."""
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from roundtrip import EXPENSIVE_RULES, checkout_copy, jobs_run, repo_env
from sinkrepro.sharing import SharedStages, read_shared_stages, shared_stages, touch_command, unpersisted_outs

ROOT = Path(__file__).resolve().parents[1]
SHARED_OUTS = {"resources/models", "resources/scorers", "resources/prompts", "results/images", "results/dynamics",
               "results/scores"}

TINY_CONFIG = """
seed_scheme: hash
shard_size: 4
batch_size: 4
device: cpu
models:
  tiny-sd3:
    family: sd3
    source: standin
    heads: 4
    n_keys: 125
    sampler: {steps: 2, guidance: 7.0, height: 32, width: 32, max_sequence_length: 32}
prompt_sets:
  tiny: {source: local, path: config/prompts/tiny.tsv}
scorers:
  clip_t: {source: standin}
  lpips: {source: standin}
stats:
  bootstrap_resamples: 200
experiments:
  share:
    model: tiny-sd3
    prompts: tiny
    n_prompts: 4
    seeds: [0]
    layers: [1]
    k: [1]
    conditions: {sink: {preset: dsp}, random: {preset: dsp_random}}
    contrasts: [[sink, random]]
    metrics: [clip_t, lpips]
    tables: [table5]
"""


# ---- dvc.yaml ------------------------------------------------------------------------------------

def test_repo_dvc_yaml_shares_the_expensive_outputs_and_persists_every_out():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert unpersisted_outs(doc) == []
    shared = read_shared_stages(ROOT)
    assert set(shared.outs) == SHARED_OUTS
    rules = "".join(p.read_text() for p in [ROOT / "workflow" / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")])
    for stage in shared.stages:  # each shared stage runs (and is touched as) a Snakemake target rule
        assert re.search(rf"^rule {stage}:", rules, re.M), stage
        assert re.search(rf"\b{stage} --configfile \$\{{config\}}", doc["stages"][stage]["cmd"]), stage


def test_shared_stages_reads_short_and_long_outs_and_skips_uncached():
    doc = {"vars": [{"config": "c.yaml"}], "stages": {
        "a": {"cmd": "x", "outs": [{"o/a": {"persist": True}}]},
        "b": {"cmd": "y", "outs": [{"o/b": {"persist": True, "cache": False}}]}}}
    assert shared_stages(doc) == SharedStages("c.yaml", ("a",), ("o/a",))
    doc["stages"]["a"]["outs"].append("o/plain")
    assert unpersisted_outs(doc) == ["a: o/plain"]
    with pytest.raises(ValueError, match=r"persist: true.*a: o/plain|a: o/plain.*persist: true"):
        shared_stages(doc)


def test_bad_dvc_yaml_and_config_mismatch_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="vars.config is missing"):
        shared_stages({"stages": {}})
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    with pytest.raises(ValueError, match="set vars.config there to 'config/paper.yaml'"):
        read_shared_stages(tmp_path, "config/paper.yaml")
    assert read_shared_stages(tmp_path, "./config/config.yaml").config == "config/config.yaml"


def test_touch_command_touches_the_shared_targets_with_the_shared_config():
    cmd = touch_command(SharedStages("cfg.yaml", ("weights", "images"), ()))
    assert cmd[1:] == ["-m", "snakemake", "--touch", "--cores", "1", "weights", "images", "--configfile", "cfg.yaml"]


# ---- push, fresh clone, pull, rebuild ------------------------------------------------------------

def run(repo: Path, *cmd: str) -> str:
    """Run in repo; returns stdout+stderr, fails the test with them on a non-zero exit."""
    proc = subprocess.run(cmd, cwd=repo, env=repo_env(repo), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def py(repo: Path, *args: str) -> str:
    return run(repo, sys.executable, "-m", *args)


def snapshot(repo: Path, outs=SHARED_OUTS) -> dict:
    """relative path -> (md5, mtime_ns) of every file under the given outs."""
    files = [p for out in outs for p in sorted((repo / out).rglob("*")) if p.is_file()]
    return {str(p.relative_to(repo)): (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files}


_BUILT: dict = {}


def built_repo(tmp_path_factory) -> dict:
    """Repo `a`: a copy of this checkout with the tiny config, its shared stages built through DVC and
    pushed to a local remote, committed. Built once per session: the remote and SLURM tests
    (test_remotes.py, test_slurm.py) push it elsewhere and compare against it."""
    key = tmp_path_factory.getbasetemp()
    if key in _BUILT:
        return _BUILT[key]
    base = tmp_path_factory.mktemp("sharing")
    a = base / "a"
    checkout_copy(a)
    (a / "config" / "config.yaml").write_text(TINY_CONFIG)
    run(a, "git", "init", "-q", "-b", "main")
    py(a, "dvc", "remote", "add", "-d", "store", str(base / "remote"))
    run(a, "git", "add", "-A")
    run(a, "git", "commit", "-qm", "tiny sharing repo")

    push_log = py(a, "sinkrepro.sharing", "push")
    run(a, "git", "add", "dvc.lock")
    run(a, "git", "commit", "-qm", "outputs")
    _BUILT[key] = {"base": base, "a": a, "push_log": push_log}
    return _BUILT[key]


def built_paper(tmp_path_factory) -> Path:
    """Repo `a` with its paper (stats, tables, figures) built too: the local reference run."""
    a = built_repo(tmp_path_factory)["a"]
    py(a, "dvc", "repro", "paper")
    return a


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Repo `a` (built_repo); `b` a fresh clone of it, pulled."""
    built = built_repo(tmp_path_factory)
    b = built["base"] / "b"
    run(built["base"], "git", "clone", "-q", str(built["a"]), str(b))
    pull_log = py(b, "sinkrepro.sharing", "pull")
    return {**built, "b": b, "pull_log": pull_log}


@pytest.mark.slow
def test_push_built_and_uploaded_the_shared_stages(shared):
    assert {"model", "scorer", "generate", "score"} <= jobs_run(shared["push_log"])
    assert "stats" not in jobs_run(shared["push_log"])  # the paper stage is rebuilt, not shared
    assert "are in sync" in py(shared["a"], "dvc", "status", "--cloud")


@pytest.mark.slow
def test_fresh_clone_pulls_identical_outputs_with_nothing_left_to_run(shared):
    a, b = shared["a"], shared["b"]
    pulled, built = snapshot(b), snapshot(a)
    assert any(p.startswith("results/images/") and p.endswith(".png") for p in pulled)
    assert {p: md5 for p, (md5, _) in pulled.items()} == {p: md5 for p, (md5, _) in built.items()}
    assert "Nothing to be done" in py(b, "snakemake", "-n", "weights", "images", "scores")
    planned = jobs_run(py(b, "snakemake", "-n"))
    assert planned and not planned & EXPENSIVE_RULES
    assert "Data and pipelines are up to date" in py(b, "dvc", "status", "weights", "images", "scores")


@pytest.mark.slow
def test_paper_rebuilds_from_pulled_data_without_generating_or_scoring(shared):
    a, b = shared["a"], shared["b"]
    before = snapshot(b)
    log = py(b, "dvc", "repro")
    for stage in ("weights", "images", "scores"):
        assert f"Stage '{stage}' didn't change, skipping" in log
    ran = jobs_run(log)
    assert {"stats", "paper_tables"} <= ran and not ran & EXPENSIVE_RULES
    assert snapshot(b) == before
    # the same scores give the same statistics and tables as the run that made them
    py(a, "dvc", "repro", "paper")
    for rel in ("results/stats/share.csv", "paper/tables/table5.csv", "paper/claims.md"):
        assert (b / rel).read_text() == (a / rel).read_text(), rel


@pytest.mark.slow
def test_rerunning_a_stage_keeps_snakemake_outputs_and_redoes_only_missing_jobs(shared):
    b = shared["b"]
    images = ("results/images", "results/dynamics")
    before = snapshot(b, images)
    assert "Nothing to be done" in py(b, "dvc", "repro", "--force", "--single-item", "images")
    assert snapshot(b, images) == before  # persist: DVC deleted nothing, so nothing was regenerated

    shard = "results/images/tiny-sd3/base/seed0/shard000"
    shutil.rmtree(b / shard)
    log = py(b, "dvc", "repro", "--single-item", "images")
    assert re.findall(r"^(?:local)?rule (\w+):", log, re.M).count("generate") == 1
    after = snapshot(b, images)
    assert any(p.startswith(shard) for p in after)
    kept = {p: v for p, v in before.items() if "tiny-sd3/base/seed0/shard000" not in p}
    assert kept and all(after[p] == v for p, v in kept.items())
