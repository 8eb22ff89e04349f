"""The paper's twin: the same grid as config/paper.yaml (conditions, sharing, prompt relations),
on stand-ins; and (slow) the whole twin run from nothing to every paper output."""
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sinkrepro import layout
from sinkrepro.attention.runtime import in_window
from sinkrepro.config import load_prompt_tables
from sinkrepro.grid import build_grid
from sinkrepro.io import read_jsonl, sha256_bytes, write_jsonl
from sinkrepro.scoring import score_fid, score_shard, score_shard_metrics
from sinkrepro.paper.claims import CLAIMS
from sinkrepro.paper.sidecar import read_metadata
from sinkrepro.twin import MODEL_PREFIX, make_twin
from roundtrip import EXPENSIVE_RULES, checkout_copy, check_round_trip, jobs_run, round_trip, run
from test_scoring import make_shard, scorers  # noqa: F401  (a fixture)
from helpers import snakemake
from twins import REPO, check_complete_run, condition_map, offline_and_twin, run_twin, twin_grid


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """The paper grid (its two prompt sources replaced by synthetic files of the same sizes) and the twin's."""
    offline, twin = offline_and_twin(paper_config(), tmp_path_factory.mktemp("sources"))
    paper_tables, twin_tables = load_prompt_tables(offline), load_prompt_tables(twin, REPO)
    return build_grid(offline, paper_tables), build_grid(twin, twin_tables), paper_tables, twin_tables, twin


def test_twin_merges_exactly_the_conditions_the_paper_merges(grids):
    paper, twin, *_ = grids
    mapping = condition_map(paper, twin)
    assert set(mapping) == set(paper.conditions) and sorted(mapping.values()) == sorted(twin.conditions)
    assert len(set(mapping.values())) == len(mapping)  # one twin condition per paper condition
    for (model, cid), (twin_model, twin_cid) in mapping.items():
        assert twin_model == MODEL_PREFIX + model
        a, b = paper.conditions[(model, cid)], twin.conditions[(twin_model, twin_cid)]
        assert a.seeds == b.seeds and a.measure == b.measure
        assert {mapping[(model, r)][1] for r in a.references} == b.references
        # the same edit (k, window, preset fields), on the stand-in's layers
        assert {**a.spec.to_dict(), "layers": None} == {**b.spec.to_dict(), "layers": None}
        assert {k: v for k, v in a.sampler_overrides.items() if k != "steps"} == \
            {k: v for k, v in b.sampler_overrides.items() if k != "steps"}


def test_twin_shards_hold_the_same_experiments(grids):
    """Which experiments' prompts each (condition, seed) holds, and which sets each experiment reads."""
    paper, twin, *_ = grids
    mapping = condition_map(paper, twin)

    def holders(grid, translate):
        out = {}
        for name, exp in grid.experiments.items():
            for condition in layout.conditions_of(exp):
                for shard in layout.shards_of(grid, exp, condition):
                    out.setdefault(translate((shard.model, shard.condition)) + (shard.seed,), set()).add(name)
        return out

    assert holders(paper, mapping.__getitem__) == holders(twin, lambda key: key)
    for name, exp in paper.experiments.items():
        other = twin.experiments[name]
        assert set(exp["seeds"]) == set(other["seeds"]) and exp["prompt_set"] == other["prompt_set"]
        assert len(layout.fid_jobs(exp)) == len(layout.fid_jobs(other))
        assert layout.figure_names(exp) == layout.figure_names(other)


def test_twin_keeps_every_prompt_set_relation(grids):
    *_, paper_tables, twin_tables, _ = grids

    def relations(tables):
        ids = {name: {r["prompt_id"] for r in rows} for name, rows in tables.items()}
        return {(a, b): (ids[a] <= ids[b], ids[b] <= ids[a], bool(ids[a] & ids[b]))
                for a, b in itertools.combinations(sorted(ids), 2)}

    assert relations(paper_tables) == relations(twin_tables)
    assert all(len(twin_tables[name]) < len(paper_tables[name]) for name in paper_tables)


def test_twin_sizes_keep_steps_windows_and_k_budgets(grids):
    paper, twin, _, _, twin_config = grids
    mapping = condition_map(paper, twin)
    steps = sorted({(paper.conditions[k].sampler["steps"], twin.conditions[v].sampler["steps"])
                    for k, v in mapping.items()})
    real, small = zip(*steps)
    assert list(small) == sorted(set(small)) and len(set(small)) == len(set(real))  # monotone, injective
    for cond in twin.conditions.values():
        n = cond.sampler["steps"]
        progress = [i / (n - 1) for i in range(n)]
        assert any(in_window(p, cond.spec.steps) for p in progress), cond.condition
        assert cond.sampler["height"] <= 64
    model = twin_config["models"][MODEL_PREFIX + "sd3-medium"]
    assert model["n_keys"] >= 50 * model["heads"]  # cf's shared budget at k=50 fits
    assert all(m["source"] == "standin" for m in twin_config["models"].values())
    assert all(s["source"] == "standin" for s in twin_config["scorers"].values())
    assert twin_config["models"][MODEL_PREFIX + "sdxl-base"]["variant"] == "fp16"


def test_twin_layers_follow_the_depth_rule():
    twin = make_twin(paper_config())
    exps = twin["experiments"]
    # SD3-medium's 24 blocks onto the stand-in's 4: floor(l * 4 / 24)
    assert exps["geneval_rds"]["conditions"]["A2"]["layers"] == [1, 2, 3]
    assert exps["cf_k_sweep"]["layers"] == [2]
    assert twin["models"][MODEL_PREFIX + "sd3-medium"]["measure_layers"] == [0, 1, 2, 3]
    # SDXL's 10 mid-block layers onto the stand-in's 2
    assert exps["sdxl_mid"]["layers"] == [0, 1]
    unknown = paper_config()
    unknown["models"]["sd3-medium"]["repo"] = "someone/other-dit"
    with pytest.raises(ValueError, match=r"config.models.sd3-medium.measure_layers: no known depth of 'someone/other-dit'"):
        make_twin(unknown)


def test_twin_cli_writes_a_valid_stand_in_config(tmp_path):
    out = tmp_path / "twin.yaml"
    done = subprocess.run([sys.executable, "-m", "sinkrepro.cli", "twin", "config/paper.yaml", "-o", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# The stand-in twin of config/paper.yaml")
    assert yaml.safe_load(text) == make_twin(paper_config())


# --- a shared condition's shard holds other experiments' prompts: jobs take only their own ----------
def keep_only(shard: Path, prompt_ids, where: Path) -> Path:
    """A copy of `shard` whose manifest lists only `prompt_ids` (the oracle's set)."""
    where.mkdir(parents=True)
    rows = [r for r in read_jsonl(shard / "manifest.jsonl") if r["prompt_id"] in prompt_ids]
    for r in rows:
        (where / r["file"]).write_bytes((shard / r["file"]).read_bytes())
    write_jsonl(where / "manifest.jsonl", rows)
    return where


def test_fid_set_holds_exactly_the_experiments_images(scorers, tmp_path):  # noqa: F811
    shard, base = make_shard(tmp_path, "dsp-k1-L1", image_seed=1), make_shard(tmp_path, "base", image_seed=2)
    own = ["p000", "p002", "p003"]
    row = score_fid(scorers["fid"], [shard], [base], prompt_ids=own).iloc[0]
    alone = score_fid(scorers["fid"], [keep_only(shard, own, tmp_path / "a")], [keep_only(base, own, tmp_path / "b")])
    assert row["n_images"] == row["n_reference"] == 3 and row["value"] == pytest.approx(alone["value"].iloc[0])
    hashes = sorted(r["sha256"] + "\n" for r in read_jsonl(shard / "manifest.jsonl") if r["prompt_id"] in own)
    assert row["image_sha256"] == sha256_bytes("".join(hashes).encode())
    with pytest.raises(ValueError, match=r"no image for prompt_id \['p999'\]"):
        score_fid(scorers["fid"], [shard], [base], prompt_ids=own + ["p999"])


def test_one_score_job_scores_each_metric_on_its_prompts(scorers, tmp_path):  # noqa: F811
    shard, base = make_shard(tmp_path, "dsp-k1-L1", image_seed=1), make_shard(tmp_path, "base", image_seed=2)
    metrics = {"clip_t": {"prompt_ids": ["p000", "p001"], "batch_size": 2},
               "lpips": {"prompt_ids": ["p003"], "batch_size": 2}}
    out = tmp_path / "scores.parquet"
    frame = score_shard_metrics(metrics, {"clip_t": scorers["clip_t"], "lpips": scorers["lpips"]}, shard, out,
                                reference_shard_dirs=[base])
    cols = ["metric", "prompt_id", "value"]
    assert frame[cols].equals(pd.read_parquet(out)[cols])
    for metric, opts in metrics.items():
        alone = score_shard(metric, scorers[metric], shard, reference_shard_dir=base if metric == "lpips" else None)
        alone = alone[alone["prompt_id"].isin(opts["prompt_ids"])].reset_index(drop=True)
        mine = frame[frame["metric"] == metric].reset_index(drop=True)
        assert list(mine["prompt_id"]) == opts["prompt_ids"] == list(alone["prompt_id"])
        assert list(mine["value"]) == pytest.approx(list(alone["value"]), rel=1e-5)  # batches differ


# --- the whole twin, from nothing to every paper output (slow: runs in CI) -------------------------
PAPER_TABLES = [f"table{i}" for i in range(1, 21) if i != 8] + ["table16_attribution"]


@pytest.fixture(scope="module")
def twin_run(tmp_path_factory):
    return run_twin(REPO / "config" / "paper.yaml", tmp_path_factory.mktemp("twin"))


@pytest.mark.slow
def test_twin_fills_every_paper_output(twin_run):
    work, log = twin_run
    for table in PAPER_TABLES:
        for ext in ("md", "tex"):
            assert "stand-in" in (work / "paper" / "tables" / f"{table}.{ext}").read_text().splitlines()[0], table
        assert read_metadata(work / "paper" / "tables" / f"{table}.csv")["standin"], table
    claims = (work / "paper" / "claims.md").read_text()
    assert claims.startswith("WARNING: made with random-init stand-in models")
    # every claim judged on at least one model (the side-by-side table: a row per claim, a column per model)
    summary = [line for line in claims.split("\n\n## ")[0].splitlines() if re.match(r"\| \d+\. ", line)]
    assert len(summary) == len(CLAIMS)
    for row in summary:
        assert any("not run in this config" not in cell for cell in row.split("|")[2:-1]), row
    check_complete_run(work, log)


@pytest.mark.slow
def test_twin_fid_sets_hold_exactly_their_experiments_images(twin_run):
    work, _ = twin_run
    grid = twin_grid(work)
    checked = 0
    for exp in grid.experiments.values():
        for job in layout.fid_jobs(exp):
            row = pd.read_parquet(work / job.path).iloc[0]
            hashes = sorted(r["sha256"] + "\n" for d in layout.fid_set_dirs(grid, job)
                            for r in read_jsonl(work / d / "manifest.jsonl") if r["prompt_id"] in exp["prompt_ids"])
            assert row["n_images"] == row["n_reference"] == exp["n_prompts"] == len(hashes)
            assert row["image_sha256"] == sha256_bytes("".join(hashes).encode())
            checked += 1
    assert checked >= 25


@pytest.mark.slow
def test_twin_rerun_has_nothing_to_do(twin_run):
    work, _ = twin_run
    assert "Nothing to be done" in snakemake(work, "--configfile", str(work / "twin.yaml"), "-n")


@pytest.mark.slow
def test_twin_round_trip_through_s3(twin_run, seaweed, tmp_path_factory):
    """The twin's weights, images and scores, committed in a repository whose dvc.yaml shares the twin
    config, pushed to the S3 remote and pulled into a fresh clone: only the paper's jobs are planned
    there, and every table comes out byte-identical."""
    work, _ = twin_run
    base = tmp_path_factory.mktemp("twin-share")
    a = checkout_copy(base / "a")
    shutil.copy2(work / "twin.yaml", a / "config" / "twin.yaml")
    dvc_yaml = (a / "dvc.yaml").read_text()
    assert "- config: config/config.yaml" in dvc_yaml
    (a / "dvc.yaml").write_text(dvc_yaml.replace("- config: config/config.yaml", "- config: config/twin.yaml"))
    for out in ("resources", "results", ".snakemake/metadata", "paper/tables"):  # times kept: finished jobs
        shutil.copytree(work / out, a / out, dirs_exist_ok=True)
    run(a, {}, "git", "init", "-q", "-b", "main")
    run(a, {}, "git", "add", "-A")
    run(a, {}, "git", "commit", "-qm", "the paper twin, run")
    tables = sorted(f"paper/tables/{p.name}" for p in (work / "paper" / "tables").iterdir())
    trip = round_trip(a, base / "clone", "s3r", seaweed["url"], seaweed["env"],
                      [("endpointurl", seaweed["endpoint"])], targets=tables)
    check_round_trip(trip, seaweed["secret"])
    assert not jobs_run(trip["push"]) & EXPENSIVE_RULES, "the push redid work the twin run had done"
    assert seaweed["client"].list_objects_v2(Bucket="dvc", Prefix="store/").get("KeyCount", 0) > 0
