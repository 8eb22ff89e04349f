"""Dynamics tables (Table 1, Table 4, Table 16 attribution) against direct pandas/scipy oracles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sinkrepro.attention.spec import spec_from_config
from sinkrepro.paper import dynamics_tables as dt
from sinkrepro.paper.sidecar import read_metadata
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.stats import StatsConfig
from sinkrepro.stats import dynamics as sdyn
from sinkrepro.vocab import MEASURE_K
from helpers import run_script

PROMPTS = [f"p{i}" for i in range(6)]
STEPS = 4
CFG = StatsConfig(bootstrap_resamples=4000, ci_method="percentile")


def spec(preset: str, **kw) -> dict:
    return spec_from_config({"preset": preset, "layers": [1], **kw}, "test").canonical().to_dict()


def make_experiment(**kw) -> dict:
    conditions = [
        {"condition": "sa-eta0", "label": "eta_0", "preset": "sa", "k": None, "layers": [1], "spec": spec("sa")},
        {"condition": "sa-eta0.5", "label": "eta_0.5", "preset": "sa", "k": None, "layers": [1],
         "spec": spec("sa", eta=0.5)},
        {"condition": "rand-k1", "label": "random", "preset": "dsp_random", "k": 1, "layers": [1],
         "spec": spec("dsp_random", k=1)},
    ]
    return {"name": "sweep", "model": "tiny-sd3", "standin": True, "prompt_set": "tiny", "n_prompts": len(PROMPTS),
            "prompt_ids": PROMPTS, "seeds": [0, 1], "tables": ["table1", "table4", "table16"], "measure": True,
            "baseline": "base", "conditions": conditions} | kw


def make_rows(condition: str, rng: int, prompts=PROMPTS, seeds=(0, 1), edited=None) -> pd.DataFrame:
    """Contract rows for one condition; `edited(rows) -> edited_mass` at layer 1 (NaN elsewhere)."""
    g = np.random.default_rng(rng)
    idx = pd.MultiIndex.from_product([prompts, seeds, range(STEPS), [0, 1], ["uncond", "cond"], range(3)],
                                     names=["prompt_id", "seed", "step", "layer", "batch_half", "head"])
    r = idx.to_frame(index=False)
    n = len(r)
    r.insert(3, "progress", r["step"] / (STEPS - 1))
    r.insert(4, "timestep", 1000.0 - 250 * r["step"])
    r["top1_mass"] = g.uniform(0.02, 0.2, n) + 0.05 * r["prompt_id"].map({p: i % 3 for i, p in enumerate(prompts)})
    r["topk_mass"] = r["top1_mass"] * g.uniform(2, 4, n)
    r["entropy"] = g.uniform(3, 6, n)
    r["top5_conc"] = g.uniform(0.1, 0.5, n) + 0.1 * (r["step"] == 1) * r["layer"]  # layer 1 peaks at step 1
    r["sink_type"] = g.choice(["image", "clip", "t5", "pad"], n, p=[0.4, 0.3, 0.2, 0.1])
    image = r["sink_type"] == "image"
    r["sink_index"] = np.where(image, g.integers(0, 4, n), 17 + g.integers(0, 20, n))  # 16 = the CLIP BOS
    r["sink_row"] = np.where(image, r["sink_index"] // 4, -1)
    r["sink_col"] = np.where(image, r["sink_index"] % 4, -1)
    r["bos_mass"] = r["top1_mass"] * g.uniform(0.2, 0.9, n)
    bos_sink = (r["sink_type"] == "clip") & (g.uniform(size=n) < 0.5)
    r.loc[bos_sink, "bos_mass"] = r.loc[bos_sink, "top1_mass"]
    r.loc[bos_sink, "sink_index"] = 16
    r["edited_mass"] = np.nan
    if edited is not None:
        at = r["layer"] == 1
        r.loc[at, "edited_mass"] = edited(r[at])
    r["max_activation"] = g.uniform(1, 2, n)
    return r.assign(model="tiny-sd3", condition=condition, standin=True)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.concat([
        make_rows("base", 0),
        make_rows("sa-eta0", 1, edited=lambda r: np.zeros(len(r))),
        make_rows("sa-eta0.5", 2, edited=lambda r: 0.5 * r["bos_mass"]),
        make_rows("rand-k1", 3, edited=lambda r: np.zeros(len(r))),
        make_rows("base", 4, prompts=["stranger"]),  # a prompt of another experiment sharing the shard
    ], ignore_index=True)


@pytest.fixture(scope="module")
def partials(rows) -> pd.DataFrame:
    return sdyn.reduce_rows(rows)


def t_summary(values: pd.Series, level: float = 0.95) -> tuple[float, float, float]:
    lo, hi = stats.t.interval(level, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return values.mean(), lo, hi


def per_prompt(frame: pd.DataFrame, by: list[str], values: pd.Series) -> pd.DataFrame:
    return frame.assign(v=values).groupby(by + ["prompt_id"])["v"].mean().reset_index()


# --- Table 1 ----------------------------------------------------------------------------------
def test_table1_matches_direct_pandas_per_layer(rows, partials):
    base = rows[(rows.condition == "base") & rows.prompt_id.isin(PROMPTS)]
    body = sdyn.table1_body(partials, make_experiment()).set_index("layer")
    checks = {"top1_mass": base.top1_mass, "entropy": base.entropy, "top5_conc": base.top5_conc,
              "bos_mass": base.bos_mass, "share_image": base.sink_type == "image",
              "share_clip": base.sink_type == "clip", "share_t5": base.sink_type == "t5",
              "share_pad": base.sink_type == "pad", "share_text_all": base.sink_type != "image",
              "share_index0": (base.sink_type == "image") & (base.sink_index == 0),
              "share_bos": (base.sink_type == "clip") & (base.sink_index == 16)}
    for layer in (0, 1):
        for col, values in checks.items():
            pp = per_prompt(base, ["layer"], values.astype(float))
            m, lo, hi = t_summary(pp[pp.layer == layer]["v"])
            assert body.loc[layer, [col, f"{col}_ci_low", f"{col}_ci_high"]].tolist() == pytest.approx([m, lo, hi])
        assert body.loc[layer, "n"] == len(PROMPTS)  # the stranger prompt is not this experiment's
        assert body.loc[layer, "n_seeds"] == 2
    # the index-0 patch and the BOS are different keys
    assert (body["share_index0"] > 0).all() and (body["share_bos"] > 0).all()


def test_table1_concentration_peak(rows, partials):
    base = rows[(rows.condition == "base") & rows.prompt_id.isin(PROMPTS)]
    curve = per_prompt(base, ["layer", "step"], base.top5_conc).groupby(["layer", "step"])["v"].mean()
    body = sdyn.table1_body(partials, make_experiment()).set_index("layer")
    for layer in (0, 1):
        step = curve.loc[layer].idxmax()
        assert body.loc[layer, "conc_peak_step"] == step
        assert body.loc[layer, "conc_peak_progress"] == pytest.approx(step / (STEPS - 1))
    assert body.loc[1, "conc_peak_step"] == 1  # built in: layer 1 concentrates at step 1


def test_reduction_is_the_same_whether_shards_are_split(rows, tmp_path):
    base = rows[rows.condition == "base"]
    whole, a, b = tmp_path / "whole.parquet", tmp_path / "a.parquet", tmp_path / "b.parquet"
    base.to_parquet(whole)
    base[base.prompt_id.isin(PROMPTS[:3])].to_parquet(a)
    base[~base.prompt_id.isin(PROMPTS[:3])].to_parquet(b)
    one = sdyn.table1_body(dt.read_partials([whole]), make_experiment())
    two = sdyn.table1_body(dt.read_partials([a, b]), make_experiment())
    pd.testing.assert_frame_equal(one, two)


# --- Table 16 ---------------------------------------------------------------------------------
def test_table16_text_vs_image_shares(rows, partials):
    base = rows[(rows.condition == "base") & rows.prompt_id.isin(PROMPTS)]
    body = sdyn.table16_body(partials, make_experiment()).set_index("layer")
    assert list(body.index) == ["all", "0", "1"]
    text = (base.sink_type != "image").astype(float)
    for layer, frame in (("all", base.assign(layer="all")), ("0", base[base.layer == 0]), ("1", base[base.layer == 1])):
        pp = per_prompt(frame, ["layer"], text.loc[frame.index])
        m, lo, hi = t_summary(pp["v"])
        assert body.loc[layer, ["share_text_all", "share_text_all_ci_low", "share_text_all_ci_high"]].tolist() \
            == pytest.approx([m, lo, hi])
        assert body.loc[layer, "share_text_all"] + body.loc[layer, "share_image"] == pytest.approx(1)
        assert body.loc[layer, "n_sinks"] == len(frame)


# --- Table 4 ----------------------------------------------------------------------------------
def test_reference_column_follows_the_preset():
    assert sdyn.reference_column(spec("sa"))[0] == "bos_mass"
    assert sdyn.reference_column(spec("dsp", k=1))[0] == "top1_mass"
    assert sdyn.reference_column(spec("dsp", k=MEASURE_K))[0] == "topk_mass"
    assert sdyn.reference_column(spec("dsp", k=3))[0] is None
    assert sdyn.reference_column(spec("dsp_random", k=1))[0] is None
    assert sdyn.reference_column(spec("cf", k=1))[0] is None  # shared k*H keys: no per-row mass
    assert sdyn.reference_column(spec("image_patch0"))[0] is None


def test_table4_exact_zero_is_complete_not_divided(partials):
    body = sdyn.table4_body(partials, make_experiment(), CFG).set_index("condition")
    eta0 = body.loc["sa-eta0"]
    assert eta0["reduction"] == sdyn.COMPLETE
    assert np.isnan(eta0["reduction_factor"]) and np.isnan(eta0["reduction_ci_low"])
    assert eta0["edited_mass"] == 0.0 and eta0["edited_max"] == 0.0 and eta0["zero_share"] == 1.0
    assert eta0["retained"] == 0.0
    assert eta0["reference"] == "bos_mass"
    # no baseline mass for random keys, but the exact zero is still reported
    rand = body.loc["rand-k1"]
    assert rand["reference"] == "none" and np.isnan(rand["baseline_mass"]) and rand["reduction"] == sdyn.COMPLETE


def test_table4_tiny_nonzero_mass_is_a_finite_ratio(rows):
    tiny = make_rows("sa-eta0", 1, edited=lambda r: np.full(len(r), 1e-12))
    data = sdyn.reduce_rows(pd.concat([rows[rows.condition == "base"], tiny]))
    row = sdyn.table4_body(data, make_experiment(), CFG).set_index("condition").loc["sa-eta0"]
    assert row["reduction"] != sdyn.COMPLETE
    assert np.isfinite(row["reduction_factor"]) and row["reduction_factor"] > 1e9
    assert row["zero_share"] == 0.0


def test_table4_ratio_and_ci_match_a_row_level_oracle(rows, partials):
    edited = rows[(rows.condition == "sa-eta0.5") & rows.edited_mass.notna() & rows.prompt_id.isin(PROMPTS)]
    keys = ["prompt_id", "seed", "step", "layer", "batch_half", "head"]
    base = rows[rows.condition == "base"][keys + ["bos_mass"]].rename(columns={"bos_mass": "base"})
    paired = edited.merge(base, on=keys, how="inner")
    assert len(paired) == len(edited)
    per = paired.groupby("prompt_id")[["edited_mass", "base", "bos_mass"]].mean()
    body = dt.build_dynamics_table("table4", partials, [make_experiment()], CFG)[0].body
    row = body.set_index("condition").loc["sa-eta0.5"]
    assert row["n_rows"] == len(edited)
    assert [row["edited_mass"], row["edited_mass_ci_low"], row["edited_mass_ci_high"]] == \
        pytest.approx(t_summary(per["edited_mass"]))
    assert [row["baseline_mass"], row["baseline_mass_ci_low"], row["baseline_mass_ci_high"]] == \
        pytest.approx(t_summary(per["base"]))
    assert row["pre_edit_mass"] == pytest.approx(per["bos_mass"].mean())
    # eta scales the BOS probability: half of the same run's pre-edit mass is left
    assert row["edited_mass"] == pytest.approx(0.5 * row["pre_edit_mass"])
    factor = per["base"].mean() / per["edited_mass"].mean()
    assert row["reduction_factor"] == pytest.approx(factor)
    assert row["reduction"] == f"{factor:.4g}x"
    assert row["retained"] == pytest.approx(1 / factor)
    ref = stats.bootstrap((per["base"].to_numpy(), per["edited_mass"].to_numpy()),
                          lambda b, e, axis: b.mean(axis) / e.mean(axis), paired=True, vectorized=True,
                          n_resamples=20000, method="percentile", random_state=np.random.default_rng(1))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert row["reduction_ci_low"] == pytest.approx(ref.confidence_interval.low, abs=0.08 * width)
    assert row["reduction_ci_high"] == pytest.approx(ref.confidence_interval.high, abs=0.08 * width)
    assert row["reduction_ci_low"] < factor < row["reduction_ci_high"]


def test_table4_rejects_partly_edited_cells(rows):
    bad = rows[rows.condition == "sa-eta0.5"].copy()
    bad.loc[bad.index[(bad.layer == 1).to_numpy()][:1], "edited_mass"] = np.nan
    with pytest.raises(ValueError, match="only some heads"):
        sdyn.table4_body(sdyn.reduce_rows(pd.concat([rows[rows.condition == "base"], bad])), make_experiment(), CFG)


# --- which experiments, errors ----------------------------------------------------------------
def test_only_measured_experiments_fill_dynamics_tables():
    scored = make_experiment(name="selective", measure=False, tables=["table16"])
    exps = [make_experiment(), scored]
    assert dt.dynamics_tables(exps) == ["table1", "table4", "table16"]
    assert [e["name"] for e in dt.experiments_filling("table16", exps)] == ["sweep"]
    dt.check_experiments(exps)  # Table 16 also has a stats part: no measure needed there
    with pytest.raises(ValueError, match=r"config.experiments.bad.tables: table1 .*measure: true"):
        dt.check_experiments([make_experiment(name="bad", measure=False)])
    with pytest.raises(ValueError, match="not a dynamics table"):
        dt.experiments_filling("table2", exps)


def test_missing_baseline_and_columns_are_named(rows, partials, tmp_path):
    with pytest.raises(ValueError, match="no dynamics rows for its baseline tiny-sd3/base~cfg5"):
        sdyn.table1_body(partials, make_experiment(baseline="base~cfg5"))
    path = tmp_path / "old.parquet"
    rows.drop(columns=["bos_mass"]).to_parquet(path)
    with pytest.raises(ValueError, match=r"old.parquet: missing columns \['bos_mass'\]"):
        dt.read_partials([path])
    with pytest.raises(ValueError, match="sink_type values \\['cls'\\]"):
        sdyn.reduce_rows(rows.assign(sink_type="cls"))


# --- files and adapter ------------------------------------------------------------------------
@pytest.mark.parametrize("table, stem",
                         [("table1", "table1"), ("table4", "table4"), ("table16", "table16_attribution")])
def test_adapter_writes_csv_md_tex(rows, tmp_path, table, stem):
    paths = []
    for cond, g in rows.groupby("condition"):
        p = tmp_path / "dyn" / f"{cond}.parquet"
        p.parent.mkdir(exist_ok=True)
        g.to_parquet(p)
        paths.append(str(p))
    out = {ext: str(tmp_path / "tables" / f"{stem}.{ext}") for ext in ("csv", "csv-metadata.json", "md", "tex")}
    log = tmp_path / "log.txt"
    run_script("paper_dynamics_tables.py", input={"dynamics": paths}, output=out, log=[log],
               params={"table": table, "experiments": [make_experiment()],
                       "stats": {"bootstrap_resamples": 500, "seed": 0}})
    csv, md, tex = (Path(out[e]) for e in ("csv", "md", "tex"))
    for f, lead in ((md, "> "), (tex, "% ")):
        assert f.read_text().splitlines()[0] == lead + STANDIN_NOTICE
    meta = read_metadata(csv)
    assert meta["notice"] == STANDIN_NOTICE
    caption = meta["dc:description"]
    for part in ("model tiny-sd3", "N=6 prompts (tiny)", "2 seed(s) [0, 1]", f"Table {table[5:]} (reproduction)"):
        assert part in caption
    body = pd.read_csv(csv)
    expected = dt.build_dynamics_table(table, sdyn.reduce_rows(rows), [make_experiment()],
                                       StatsConfig.from_dict({"bootstrap_resamples": 500}))[0].body
    assert list(body.columns) == list(expected.columns) and len(body) == len(expected)
    assert "\\toprule" in tex.read_text() and f"tab:{stem}" in tex.read_text()
    if table == "table4":
        assert "44,059x" in caption and "epsilon artefacts" in caption
        assert "complete (mass exactly 0)" in md.read_text()
        assert body.set_index("condition").loc["sa-eta0", "reduction"] == sdyn.COMPLETE
    if table == "table1":
        assert "index-0 (patch 0,0)" in md.read_text() and "CLIP BOS" in md.read_text()
    assert set(out.values()) <= set(log.read_text().split())  # the log names every file written
