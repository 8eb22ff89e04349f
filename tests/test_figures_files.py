"""The figure entry points and their Snakemake adapters, run on contract files in a temp dir."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers import dynamics_rows, fake_snakemake, fid_stats_rows, image_shards, run_script, stats_rows
from sinkrepro.paper.sidecar import read_metadata
from sinkrepro.provenance import STANDIN_NOTICE


def run_adapter(script: str, tmp: Path, inputs: dict, params: dict, csv: bool = True) -> dict:
    out = {"png": tmp / "fig.png", "pdf": tmp / "fig.pdf"} | ({"csv": tmp / "fig.csv"} if csv else {})
    run_script(script, input=inputs, output=out, params=params, log=[tmp / "fig.log"])
    return out


@pytest.mark.parametrize("figure", ["curves", "position", "attribution"])
def test_fig_dynamics_adapter_writes_png_pdf_and_the_drawn_table(tmp_path, figure):
    paths = []
    for seed in (0, 1):
        p = tmp_path / f"seed{seed}.parquet"
        dynamics_rows(seeds=(seed,), rng=seed).to_parquet(p)
        paths.append(str(p))
    out = run_adapter("fig_dynamics.py", tmp_path, {"dynamics": paths},
                      {"figure": figure, "condition": "base", "model": "tiny-sd3", "own": None})
    assert out["pdf"].read_bytes()[:5] == b"%PDF-" and out["png"].stat().st_size > 0
    meta = read_metadata(out["csv"])
    assert meta["standin"] is True and meta["notice"] == STANDIN_NOTICE and meta["url"] == "fig.csv"
    table = pd.read_csv(out["csv"])  # default reader, no options
    assert [c["name"] for c in meta["tableSchema"]["columns"]] == list(table.columns)
    if figure in ("curves", "attribution"):
        assert set(table["layer"]) == {0, 1, 2}  # every measured layer
    if figure == "curves":
        assert table["n"].max() == 3  # prompts pooled over both files


@pytest.mark.parametrize("figure", ["dose", "forest", "fid", "categories"])
def test_stats_adapter(tmp_path, figure):
    stats = tmp_path / "k_sweep.parquet"
    pd.concat([stats_rows(standin=False), fid_stats_rows(standin=False)]).to_parquet(stats)
    out = run_adapter("fig_stats.py", tmp_path, {"stats": str(stats)}, {"figure": figure}, csv=False)
    assert out["pdf"].read_bytes()[:5] == b"%PDF-" and out["png"].stat().st_size > 0
    with pytest.raises(ValueError, match="figure='nope'"):
        run_adapter("fig_stats.py", tmp_path, {"stats": str(stats)}, {"figure": "nope"})


def test_fig_panels_adapter_writes_the_selection_table(tmp_path):
    shards, scores = image_shards(tmp_path / "images", n_prompts=6, seeds=(0,))
    score_paths = []
    for (metric, cond), rows in scores.groupby(["metric", "condition"]):
        p = tmp_path / f"{metric}-{cond}.parquet"
        rows.to_parquet(p)
        score_paths.append(str(p))
    out = run_adapter("fig_panels.py", tmp_path, {"scores": score_paths, "shards": [str(s) for s in shards]},
                      {"condition": "cf-k1-L1", "control": "cf_random-k1-L1", "baseline": "base", "own": None})
    table = pd.read_csv(out["csv"])
    assert {"C", "D"} <= set(table["group"]) <= {"A", "B", "C", "D"}  # C and D have no entry condition
    assert table.groupby("group").size().max() <= 5  # panel_figure's n_per_group
    assert {"prompt", "lpips_sink", "d_clip_sink", "path_sink", "path_random"} <= set(table.columns)
    assert out["pdf"].read_bytes()[:5] == b"%PDF-"


REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"


@pytest.mark.parametrize("caption", sorted(p.name for p in REPORT.glob("*.rst")))
def test_report_captions_render_as_snakemake_renders_them(caption):
    """Jinja with snakemake's environment settings, then docutils, with no warnings or errors."""
    docutils_core = pytest.importorskip("docutils.core")
    from jinja2 import Environment

    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string((REPORT / caption).read_text()).render(
        snakemake=fake_snakemake(wildcards={"experiment": "k_sweep", "table": "table19", "model": "tiny-sd3"}),
        categories={}, files={})
    assert "{{" not in text and "}}" not in text
    if "wildcards.experiment" in (REPORT / caption).read_text():
        assert "k_sweep" in text
    html = docutils_core.publish_parts(text, writer="html",
                                       settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    assert "system-message" not in html and len(html) > 100


def test_index_adapter_writes_the_index_and_a_report_front_page_that_renders(tmp_path):
    """paper/README.md and paper/report.rst for the default config; the front page renders as the
    report renders it (Jinja, then docutils) with the index first and no warnings."""
    docutils_core = pytest.importorskip("docutils.core")
    from jinja2 import Environment

    from sinkrepro.config import grid_for, load_config
    from sinkrepro.paper.index import render_markdown

    root = REPORT.parents[1]
    experiments = list(grid_for(load_config(root / "config" / "config.yaml"), root=root).experiments.values())
    out = {"index": tmp_path / "README.md", "front": tmp_path / "report.rst"}
    guide = (REPORT / "workflow.rst").read_text()
    run_script("paper_index.py", output=out, params={"experiments": experiments, "guide": guide},
               log=[tmp_path / "adapter.log"])
    assert out["index"].read_text() == render_markdown(experiments)
    config = load_config(root / "config" / "config.yaml")
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(out["front"].read_text()).render(
        snakemake=fake_snakemake(config=config), categories={}, files={})
    html = docutils_core.publish_parts(text, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})
    body = html["body"]
    assert "system-message" not in body
    assert body.index("Index of the paper") < body.index("How to read it")
    assert "paper/tables/table9" in body and "tiny-sdxl" in body and "k_sweep" not in body

