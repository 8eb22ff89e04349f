"""Paper tables from stats rows: layouts, captions, multiplicity across the paper, file formats."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from sinkrepro.paper.tables import build_table, stats_tables, write_tables
from sinkrepro.paper.sidecar import read_metadata
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.stats import StatsConfig, analyze_experiment
from sinkrepro.stats.multiplicity import combine_stats
from helpers import make_experiment, make_scores, prompt_table

CFG = StatsConfig(bootstrap_resamples=500)


@pytest.fixture(scope="module")
def two_experiments():
    sweep = make_experiment(ks=(1, 10, 50), seeds=(0, 1), n_prompts=12, metrics=("hps", "lpips"))
    sweep["tables"] = ["table1", "table6", "table14", "table19"]
    effects = {("lpips", "cf-k1-L12"): 0.3, ("lpips", "cf_random-k1-L12"): 0.05}
    fid = pd.DataFrame([dict(metric="fid", value=3.25, model="tiny-sd3", condition="base", seed=1,
                             reference_condition="base", reference_seed=0, n_images=12, dim=64)])
    calib = dict(make_experiment(ks=(1,), seeds=(0, 1), n_prompts=12, metrics=("fid",)), name="fid_cal",
                 tables=["table9"], standin=False)
    stats = [analyze_experiment(make_scores(sweep, effects), sweep, CFG, prompt_table()),
             analyze_experiment(fid, calib, CFG)]
    return [sweep, calib], stats, combine_stats(stats, CFG)


def test_stats_tables_in_paper_order_and_only_buildable(two_experiments):
    exps, _, _ = two_experiments
    assert stats_tables(exps) == ["table6", "table9", "table14", "table19"]  # table1 is a dynamics table


def test_paper_level_bh_spans_experiments(two_experiments):
    _, frames, combined = two_experiments
    assert len(combined) == sum(len(f) for f in frames)
    tested = combined["p"].notna()
    assert combined.loc[tested, "p_adj_paper"].to_numpy() == pytest.approx(
        multipletests(combined.loc[tested, "p"], method="fdr_bh")[1])


def test_delta_table_rows_and_caption(two_experiments):
    exps, _, combined = two_experiments
    t = build_table("table19", combined, exps, CFG)
    src = combined[(combined.kind == "delta") & (combined.category == "all")]
    body = t.body[~t.body["comparison"].str.contains("dose|two-dose")]
    assert len(body) == len(src)
    assert sorted(body["delta"]) == pytest.approx(sorted(src["mean"]))
    assert body["p_adj_paper"].notna().all()
    assert t.body["comparison"].str.contains("two-dose").any()  # k10 and k50 exist
    for part in ("preset cf, cf_random", "model tiny-sd3", "N=12 prompts", "2 seed(s) [0, 1]", "bca"):
        assert part in t.caption


def test_delta_delta_table_joins_deltas_and_ratio(two_experiments):
    exps, _, combined = two_experiments
    body = build_table("table6", combined, exps, CFG).body
    row = body[(body.metric == "lpips") & (body.k == 1) & body.comparison.str.startswith("sink")].iloc[0]
    sel = combined[(combined.metric == "lpips") & (combined.category == "all")]
    d_sink = sel[(sel.kind == "delta") & (sel.condition == "cf-k1-L12")]["mean"].item()
    d_rand = sel[(sel.kind == "delta") & (sel.condition == "cf_random-k1-L12")]["mean"].item()
    ratio = sel[(sel.kind == "ratio") & (sel.condition == "cf-k1-L12")]["mean"].item()
    assert row["delta_condition"] == pytest.approx(d_sink) and row["delta_control"] == pytest.approx(d_rand)
    assert row["delta_delta"] == pytest.approx(d_sink - d_rand) and row["ratio"] == pytest.approx(ratio)
    assert np.isnan(body[body.metric == "hps"]["ratio"]).all()


def test_category_and_fid_tables(two_experiments):
    exps, _, combined = two_experiments
    cats = build_table("table14", combined, exps, CFG).body
    assert set(cats["category"]) == {"single_object", "two_object", "counting", "colors", "position", "color_attr"}
    fid = build_table("table9", combined, exps, CFG)
    assert fid.body[["condition", "fid", "n_images", "seed", "reference_seed"]].values.tolist() == [["base", 3.25, 12, 1.0, 0.0]]
    assert not fid.standin and "fid_cal" in fid.caption


def test_unknown_table_is_an_error(two_experiments):
    exps, _, combined = two_experiments
    with pytest.raises(ValueError, match="table1'.*not built from statistics"):
        build_table("table1", combined, exps, CFG)


def test_written_files(two_experiments, tmp_path):
    exps, _, combined = two_experiments
    written = write_tables(combined, exps, CFG, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{t}.{e}" for t in ("table6", "table9", "table14", "table19")
                                                     for e in ("csv", "csv-metadata.json", "md", "tex"))
    for name in ("table19.md", "table19.tex"):
        assert STANDIN_NOTICE in (tmp_path / name).read_text().splitlines()[0]
    meta = read_metadata(tmp_path / "table19.csv")
    assert meta["standin"] and meta["notice"] == STANDIN_NOTICE and meta["dc:description"].startswith("Table 19")
    assert STANDIN_NOTICE not in (tmp_path / "table9.md").read_text()  # made from real-model rows
    assert not read_metadata(tmp_path / "table9.csv")["standin"]
    csv = pd.read_csv(tmp_path / "table19.csv")  # a default reader: no comment lines to skip
    assert [c["name"] for c in meta["tableSchema"]["columns"]] == list(csv.columns)
    assert csv["delta"].to_numpy() == pytest.approx(build_table("table19", combined, exps, CFG).body["delta"].to_numpy(),
                                                    nan_ok=True)
    tex = (tmp_path / "table19.tex").read_text()
    assert all(tag in tex for tag in (r"\toprule", r"\midrule", r"\bottomrule", r"\caption{", r"k\_sweep"))
    assert tex.count(r"\\") == len(csv) + 1  # header + one line per row
    md = (tmp_path / "table6.md").read_text().splitlines()
    assert md[2].startswith("**Table 6 (reproduction)") and md[4].startswith("| experiment | metric |")
