"""The workflow itself: a whole run on a tiny config, then incremental reruns, lint, and the paper plan."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
SHARED = REPO.parent / "shared" / "data"
PROMPT_SOURCES = {  # sha256 -> file, as config/paper.yaml pins them
    "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13": SHARED / "geneval" / "evaluation_metadata.jsonl",
    "4066159c68a40c0c83fca569311159ef44c96bbecd4c55492252bc9c36f4ad8c":
        SHARED / "paper-prompts" / "prompts_geneval_balanced_100.txt",
}

PROMPTS = """prompt_id\tprompt\tcategory
t0\ta photo of a teapot\tsingle_object
t1\ta photo of three apples\tcounting
t2\ta photo of a purple umbrella\tcolors
t3\ta photo of a cat left of a chair\tposition
"""


def tiny_config(prompt_file: Path, seeds=(0, 1), ks=(1, 2)) -> dict:
    return {
        "shard_size": 4, "batch_size": 4, "device": "cpu",
        "models": {"tiny-sd3": {"family": "sd3", "source": "standin", "heads": 4, "measure_layers": [0, 1],
                                "sampler": {"steps": 2, "guidance": 5.0, "height": 32, "width": 32,
                                            "max_sequence_length": 16}}},
        "prompt_sets": {"mini": {"source": "local", "path": str(prompt_file)}},
        "scorers": {"clip_t": {}, "lpips": {}},
        "stats": {"bootstrap_resamples": 200},
        "experiments": {"sweep": {
            "model": "tiny-sd3", "prompts": "mini", "seeds": list(seeds), "layers": [1], "k": list(ks),
            "conditions": {"sink": {"preset": "dsp"}, "random": {"preset": "dsp_random"}},
            "contrasts": [["sink", "random"]], "metrics": ["clip_t", "lpips"], "measure": True,
            "tables": ["table2", "table19"],
        }},
    }


def snakemake(workdir: Path, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
                          capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def planned(output: str) -> dict[str, int]:
    """Job counts from a dry run's 'Job stats' table ({} when there is nothing to do)."""
    block = output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def planned_outputs(output: str, rule: str) -> list[str]:
    return re.findall(rf"rule {rule}:\n(?:    .*\n)*?    output: (\S+)", output)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    (work / "prompts.tsv").write_text(PROMPTS)
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(work / "prompts.tsv")))
    snakemake(work, "--configfile", str(config))
    return work, config


@pytest.mark.slow
def test_run_writes_paper_outputs_from_standins(finished_run):
    work, _ = finished_run
    for table in ("table2", "table19"):
        for ext in ("csv", "md", "tex"):
            text = (work / "paper" / "tables" / f"{table}.{ext}").read_text()
            assert "stand-in" in text.splitlines()[0]
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
def test_lint_is_clean():
    done = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0 and "Congratulations" in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.skipif(not SHARED.exists(), reason="shared prompt data not beside the checkout")
def test_paper_config_plans_the_whole_grid(tmp_path):
    cache = tmp_path / "resources" / "prompts" / "sources"
    cache.mkdir(parents=True)
    for sha, source in PROMPT_SOURCES.items():
        shutil.copy(source, cache / sha)
    shutil.copytree(REPO / "config", tmp_path / "config")
    out = snakemake(tmp_path, "--configfile", "config/paper.yaml", "-n")
    jobs = planned(out)
    assert jobs["generate"] > 300 and jobs["stats"] == 16
    tables = set(re.findall(r"paper/tables/(table\d+)\.csv", out))
    assert {f"table{i}" for i in (2, 3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)} <= tables
    plan = subprocess.run([sys.executable, "-m", "sinkrepro.cli", "plan", "config/paper.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    generations = int(re.search(r"^generations: (\d+)$", plan.stdout, re.M).group(1))
    assert generations <= 6000  # the authors' scripts need about 8,822
