"""paper/provenance.json: what the mini run (conftest's `reference`) recorded for each table and figure,
checked against hashes computed here and DVC's own file hash; `sinkrepro verify` names a tampered
input, output, weight file or config."""
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from dvc_data.hashfile.hash import file_md5

from sinkrepro import cli, layout
from sinkrepro.config import load_config, load_prompt_tables
from sinkrepro.grid import build_grid, config_hash
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.provenance_record import build_provenance, check_provenance, git_commit
from sinkrepro.verify import verify

ROOT = Path(__file__).resolve().parents[1]
STATS = "results/stats/sweep.parquet"


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def grid_of(work):
    config = load_config(work / "config.yaml")
    return build_grid(config, load_prompt_tables(config, work))


@pytest.fixture
def tree(reference, tmp_path):
    """A copy of the run (outputs, weights, config), free to tamper with."""
    for part in ("results", "paper", "resources"):
        shutil.copytree(reference / part, tmp_path / part)
    for name in ("config.yaml", "prompts.tsv"):
        shutil.copy(reference / name, tmp_path / name)
    return tmp_path


@pytest.mark.slow
def test_every_table_and_figure_is_recorded_with_its_inputs_hashes(reference):
    record = json.loads((reference / layout.PROVENANCE).read_text())
    grid = grid_of(reference)
    assert set(record["outputs"]) == set(layout.paper_outputs(grid)) - {layout.CLAIMS}
    for out, entry in record["outputs"].items():
        assert entry["md5"] == md5(reference / out), out
        for rel in entry["inputs"]:
            assert record["inputs"][rel]["md5"] == md5(reference / rel), rel
    # the tables read the stats; the panel figure every image of its three conditions' shards
    assert record["outputs"]["paper/tables/table2.csv"]["inputs"] == [STATS]
    panel_images = {str(p.relative_to(reference)) for p in (reference / "results/images").rglob("*.png")}
    assert panel_images <= set(record["outputs"]["paper/figures/sweep/panels_k1.png"]["inputs"])
    assert set(record["weights"]) == set(layout.weight_dirs(grid))
    for rel, entry in record["weights"].items():
        files = {str(p.relative_to(reference)) for p in (reference / rel).rglob("*")
                 if p.is_file() and p.name != ".snakemake_timestamp"}
        assert set(entry["files"]) == files and all(entry["files"][f] == md5(reference / f) for f in files)
    config = load_config(reference / "config.yaml")
    assert record["config"]["values"]["experiments"] == json.loads(json.dumps(config["experiments"]))
    assert "device" not in record["config"]["values"] and "batch_size" not in record["config"]["values"]["scorers"]["clip_t"]
    del config["device"], config["scorers"]["clip_t"]["batch_size"], config["scorers"]["lpips"]["batch_size"]
    assert record["config"]["hash"] == config_hash(config)
    assert record["packages"]["snakemake"] == importlib.metadata.version("snakemake")
    assert record["packages"]["torch"] == importlib.metadata.version("torch")
    assert record["notice"] == STANDIN_NOTICE


@pytest.mark.slow
def test_verify_names_a_tampered_input_with_the_tables_built_from_it(tree, capsys):
    assert cli.main(["verify", "--root", str(tree)]) == 0
    assert re.search(r"\d+ provenance entries", capsys.readouterr().out)
    stats = pd.read_parquet(tree / STATS)
    stats.loc[0, stats.select_dtypes("number").columns[0]] += 1.0  # a valid file with one number changed
    stats.to_parquet(tree / STATS)
    assert cli.main(["verify", "--root", str(tree)]) == 1
    out = capsys.readouterr().out
    assert f"CHANGED {STATS}: md5 {md5(tree / STATS)} but paper/provenance.json records" in out
    built = {str(p.relative_to(tree)) for p in verify(tree).built_from[tree / STATS]}
    assert {"paper/tables/table2.csv", "paper/tables/table2.tex", "paper/figures/sweep/forest.pdf"} <= built


@pytest.mark.slow
def test_verify_names_a_tampered_table_weight_file_and_config(tree):
    table, weight = tree / "paper/tables/table2.md", next((tree / "resources/models").rglob("*.json"))
    table.write_text(table.read_text().replace("|", "!", 1))
    weight.write_text(weight.read_text() + " ")
    config = tree / "config.yaml"
    knobs = config.read_text().replace("device: cpu", "device: auto")  # a runtime knob: the same outputs
    assert knobs != config.read_text()
    config.write_text(knobs)
    problems = {str(p.relative_to(tree)): why for p, why in verify(tree, "config.yaml").problems.items()}
    assert set(problems) == {"paper/tables/table2.md", str(weight.relative_to(tree))}
    config.write_text(knobs.replace("bootstrap_resamples: 200", "bootstrap_resamples: 300"))
    assert cli.main(["verify", "--root", str(tree), "--config", "config.yaml"]) == 1
    problems = {str(p.relative_to(tree)): why for p, why in verify(tree, "config.yaml").problems.items()}
    assert "config hash" in problems["config.yaml"] and len(problems) == 3
    assert set(verify(tree).problems) == {table, weight}  # without --config the config is not checked


def test_inputs_in_dvc_tracked_outs_carry_dvc_hash_and_out(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    for rel, text in {"results/scores/shards/a.parquet": "scores", STATS: "stats", "paper/tables/t.csv": "x,y\n",
                      "resources/models/m/w.bin": "weights"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    record = build_provenance(tmp_path, {"paper/tables/t.csv": ["results/scores/shards", STATS]},
                              ["resources/models/m"], {"stats": {}}, standin=False)
    inputs = record["inputs"]
    assert inputs["results/scores/shards/a.parquet"] == {"md5": file_md5(str(tmp_path / "results/scores/shards/a.parquet")),
                                                         "dvc_out": "results/scores"}
    assert inputs[STATS]["dvc_out"] is None  # the paper stage's outs are rebuilt, not cached
    assert record["weights"]["resources/models/m"]["dvc_out"] == "resources/models"
    assert "notice" not in record and check_provenance(tmp_path, record) == []
    (tmp_path / "resources/models/m/extra.bin").write_text("new")
    assert [p[0] for p in check_provenance(tmp_path, record)] == ["resources/models/m"]


def test_git_commit_is_the_head_or_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True, env=env)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head and len(head) == 40
