"""The workflow itself: a whole run on a tiny config, then incremental reruns, lint, and the paper plan."""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

# snakemake, planned and synthetic_paper_prompts are also imported from here by tests/twins.py and test_twin.py
from helpers import REPO, SNAKEMAKE, planned, snakemake, synthetic_paper_prompts, tiny_config
from roundtrip import checkout_copy


def planned_outputs(output: str, rule: str) -> list[str]:
    return re.findall(rf"rule {rule}:\n(?:    .*\n)*?    output: (\S+)", output)


@pytest.fixture(scope="module")
def finished_run(reproduced):
    return reproduced  # `make reproduce` on tiny_config in a copy of the repo (tests/conftest.py)


@pytest.mark.slow
def test_run_writes_paper_outputs_from_standins(finished_run):
    work, _ = finished_run
    for table in ("table2", "table19"):
        for ext in ("md", "tex"):
            assert "stand-in" in (work / "paper" / "tables" / f"{table}.{ext}").read_text().splitlines()[0]
        assert "stand-in" in (work / "paper" / "tables" / f"{table}.csv-metadata.json").read_text()
    claims = (work / "paper" / "claims.md").read_text()
    assert claims.startswith("WARNING: made with random-init stand-in models")
    figures = {p.name for p in (work / "paper" / "figures" / "sweep").iterdir()}
    for name in ("dynamics_curves", "dynamics_position", "dynamics_attribution", "forest", "categories",
                 "dose", "panels_k1", "panels_k2"):
        assert {f"{name}.png", f"{name}.pdf"} <= figures
    stats = pd.read_parquet(work / "results" / "stats" / "sweep.parquet")
    assert {"delta", "delta_delta"} <= set(stats["kind"])
    assert stats["standin"].all()


@pytest.mark.slow
def test_shards_carry_manifests_and_shared_baseline(finished_run):
    work, _ = finished_run
    images = work / "results" / "images" / "tiny-sd3"
    assert sorted(p.name for p in images.iterdir()) == [
        "base", "dsp-k1-L1", "dsp-k2-L1", "dsp_random-k1-L1", "dsp_random-k2-L1"]
    rows = [pd.read_json(p, lines=True) for p in images.glob("*/seed*/shard000/manifest.jsonl")]
    manifest = pd.concat(rows)
    assert len(manifest) == 5 * 2 * 4
    # the generator seed depends on (seed, prompt) only: every condition starts from the same noise
    assert manifest.groupby(["seed", "prompt_id"])["generator_seed"].nunique().eq(1).all()
    scores = pd.concat(pd.read_parquet(p) for p in (work / "results" / "scores").rglob("*.parquet"))
    assert scores[["scorer_id", "weights_sha256", "package_version"]].notna().all().all()


@pytest.mark.slow
def test_second_dry_run_has_nothing_to_do(finished_run):
    work, config = finished_run
    assert "Nothing to be done" in snakemake(work, "--configfile", str(config), "-n")


@pytest.mark.slow
def test_adding_a_seed_or_k_plans_only_new_shards(finished_run):
    work, _ = finished_run
    bigger = work / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(tiny_config(work / "prompts.tsv", seeds=(0, 1, 2), ks=(1, 2, 3))))
    out = snakemake(work, "--configfile", str(bigger), "-n")
    generated = planned_outputs(out, "generate")
    # seed 2: base + 3 k x 2 presets = 7 shards; k=3 at seeds 0 and 1: 2 presets x 2 seeds = 4
    assert len(generated) == 11 and planned(out)["generate"] == 11
    assert all("seed2" in g or "k3" in g for g in generated)
    assert "model" not in planned(out) and "scorer" not in planned(out)


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    """`snakemake --lint` on a copy of the checkout (its .snakemake/ log stays out of the source tree)."""
    work = checkout_copy(tmp_path)
    done = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=work,
                          env={**os.environ, "PYTHONPATH": str(work / "src")}, timeout=300)
    assert done.returncode == 0 and "Congratulations" in done.stdout + done.stderr, done.stdout + done.stderr


def sinkrepro(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sinkrepro.cli", *args], capture_output=True, text=True,
                          cwd=workdir, timeout=300)


def test_paper_config_plans_offline_once_its_prompt_sources_are_cached(tmp_path):
    """config/paper.yaml as shipped, except that its two pinned sources are synthetic files behind
    file:// URLs (sha256 pinned to them), which vanish to play a machine without network."""
    sources = synthetic_paper_prompts(tmp_path / "upstream")
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for name, path in sources.items():
        config["prompt_sets"][name].update(url=path.as_uri(), sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "paper.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    offline = tmp_path / "offline"
    sources["geneval"].parent.rename(offline)

    # not cached and unreachable: both commands name the set, its url and the command that fetches it
    failed = sinkrepro(work, "plan", "config/paper.yaml")
    assert failed.returncode == 2
    assert f"config.prompt_sets.geneval.url: cannot read {sources['geneval'].as_uri()}" in failed.stderr
    assert "sinkrepro fetch-prompts CONFIG" in failed.stderr
    dry = subprocess.run([*SNAKEMAKE, "--directory", str(work), "--configfile", str(work / "config" / "paper.yaml"),
                          "-n"], capture_output=True, text=True, timeout=300)
    assert dry.returncode != 0 and sources["geneval"].as_uri() in dry.stdout + dry.stderr
    assert "sinkrepro fetch-prompts CONFIG" in dry.stdout + dry.stderr

    offline.rename(sources["geneval"].parent)
    fetched = sinkrepro(work, "fetch-prompts", "config/paper.yaml")
    assert fetched.returncode == 0, fetched.stderr
    assert "geneval: 553 prompts" in fetched.stdout and "balanced100: 100 prompts" in fetched.stdout
    sources["geneval"].parent.rename(offline)

    out = snakemake(work, "--configfile", str(work / "config" / "paper.yaml"), "-n")
    jobs = planned(out)
    assert jobs["generate"] > 300 and jobs["stats"] == 16
    tables = set(re.findall(r"paper/tables/(table\d+)\.csv", out))
    assert {f"table{i}" for i in (2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)} <= tables
    plan = sinkrepro(work, "plan", "config/paper.yaml")
    assert plan.returncode == 0, plan.stderr
    generations = int(re.search(r"^generations: (\d+)$", plan.stdout, re.M).group(1))
    assert generations <= 6000  # the authors' scripts need about 8,822
    # plan's jobs per rule are the dry run's, and no more score jobs than generate jobs
    printed = dict(re.findall(r"^  (\w+): (\d+)$", plan.stdout, re.M))
    assert {rule: int(n) for rule, n in printed.items()} == {rule: n for rule, n in jobs.items() if rule not in ("default", "total")}
    assert jobs["score"] <= jobs["generate"]
