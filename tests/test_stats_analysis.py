"""analyze_experiment on synthetic score rows, checked against direct pandas/scipy computations."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from sinkrepro.stats import StatsConfig, analyze_experiment
from helpers import CATEGORIES, make_experiment, make_scores, prompt_table

CFG = StatsConfig(bootstrap_resamples=1000)


def one(frame, **where):
    sel = frame
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (where, len(sel))
    return sel.iloc[0]


@pytest.fixture(scope="module")
def k_sweep():
    exp = make_experiment()
    effects = {("lpips", "cf-k1-L12"): 0.3, ("lpips", "cf_random-k1-L12"): 0.05,
               ("lpips", "cf-k10-L12"): 0.4, ("lpips", "cf_random-k10-L12"): 0.07,
               ("lpips", "cf-k50-L12"): 0.5, ("lpips", "cf_random-k50-L12"): 0.1,
               ("hps", "cf-k10-L12"): -0.01, ("hps", "cf-k50-L12"): -0.03}
    scores = make_scores(exp, effects)
    scores["failed"] = False
    scores.loc[(scores.metric == "hps") & (scores.condition == "base") & (scores.prompt_id == "p000")
               & (scores.seed == 0), "failed"] = True
    scores.loc[(scores.metric == "hps") & (scores.condition == "cf-k1-L12") & (scores.prompt_id == "p001"),
               "value"] = np.nan
    return exp, scores, analyze_experiment(scores, exp, CFG, prompt_table())


def _per_prompt_delta(scores, metric, cond, ref):
    usable = scores[~scores["failed"] & scores["value"].notna() & (scores.metric == metric)]
    x = usable[usable.condition == cond].set_index(["prompt_id", "seed"])["value"]
    y = usable[usable.condition == ref].set_index(["prompt_id", "seed"])["value"]
    d = (x - y).dropna()
    return d.groupby(level="prompt_id").mean()


def test_delta_matches_direct_computation(k_sweep):
    exp, scores, stats = k_sweep
    d = _per_prompt_delta(scores, "hps", "cf-k50-L12", "base")
    row = one(stats, kind="delta", metric="hps", condition="cf-k50-L12", category="all")
    ref = sps.ttest_1samp(d.to_numpy(), 0.0)
    assert row["n"] == 12 and row["n_seeds"] == 2 and row["n_pairs"] == 23 and row["n_excluded"] == 1
    assert row["mean"] == pytest.approx(d.mean()) and row["p_t"] == pytest.approx(ref.pvalue)
    assert row["dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert row["p_w"] == pytest.approx(sps.wilcoxon(d.to_numpy()).pvalue)
    assert row["ci_low"] < row["mean"] < row["ci_high"] and row["ci_high"] < 0
    assert row["reference"] == "base" and row["preset"] == "cf" and row["k"] == 50 and row["label"] == "sink"
    assert row["standin"]


def test_failed_and_nan_rows_are_excluded_and_counted(k_sweep):
    _, _, stats = k_sweep
    row = one(stats, kind="delta", metric="hps", condition="cf-k1-L12", category="all")
    assert row["n_excluded"] == 3  # 1 failed base row + 2 NaN values (both seeds of p001)
    assert row["n"] == 11 and row["n_pairs"] == 21


def test_delta_delta_and_lpips_ratio(k_sweep):
    _, scores, stats = k_sweep
    sink = scores[(scores.metric == "lpips") & (scores.condition == "cf-k1-L12")].groupby("prompt_id")["value"].mean()
    rand = scores[(scores.metric == "lpips") & (scores.condition == "cf_random-k1-L12")].groupby("prompt_id")["value"].mean()
    dd = one(stats, kind="delta_delta", metric="lpips", condition="cf-k1-L12", category="all")
    assert dd["reference"] == "cf_random-k1-L12" and dd["mean"] == pytest.approx((sink - rand).mean())
    assert dd["alternative_1s"] == "greater" and dd["p_t_1s"] == pytest.approx(dd["p_t"] / 2)
    ratio = one(stats, kind="ratio", metric="lpips", condition="cf-k1-L12")
    assert ratio["mean"] == pytest.approx(sink.mean() / rand.mean())
    assert ratio["ci_low"] < ratio["mean"] < ratio["ci_high"]
    # LPIPS against the baseline: the value is already the distance, the reference side is 0
    delta = one(stats, kind="delta", metric="lpips", condition="cf-k1-L12", category="all")
    assert delta["mean_reference"] == 0 and delta["mean"] == pytest.approx(sink.mean())
    assert not (stats["metric"] == "clip_t").pipe(lambda m: stats[m & (stats.kind == "ratio")]).shape[0]


def test_categories_come_from_the_prompt_table(k_sweep):
    _, scores, stats = k_sweep
    cats = stats[(stats.kind == "delta") & (stats.condition == "cf-k50-L12") & (stats.metric == "hps")]
    assert sorted(cats["category"]) == sorted([*CATEGORIES, "all"])
    row = one(cats, category="counting")
    d = _per_prompt_delta(scores, "hps", "cf-k50-L12", "base")
    assert row["n"] == 2 and row["mean"] == pytest.approx(d[["p002", "p008"]].mean())
    assert row["adj_family"].endswith("/by-category") and "not fitted" in row["lmm_note"]


def test_dose_rows(k_sweep):
    _, scores, stats = k_sweep
    row = one(stats, kind="dose", basis="delta", metric="hps", condition="cf|L12|sink")
    lnk = np.log([1.0, 10, 50])
    matrix = pd.DataFrame({k: _per_prompt_delta(scores, "hps", f"cf-k{k}-L12", "base") for k in (1, 10, 50)})
    slopes = [np.polyfit(lnk[v.notna().to_numpy()], v.dropna().to_numpy(), 1)[0] for _, v in matrix.iterrows()]
    assert row["mean"] == pytest.approx(np.mean(slopes)) and row["n"] == 12
    assert row["lmm_mean"] < 0 and row["lmm_p"] < 0.05 and row["family"] == "cf|L12|sink"
    dd = one(stats, kind="dose", basis="delta_delta", metric="lpips", condition="cf|L12|sink")
    assert dd["reference"] == "cf_random|L12|random" and dd["lmm_mean"] > 0
    contrast = one(stats, kind="dose_contrast", basis="delta_delta", metric="hps")
    assert contrast["condition"] == "cf-k50-L12" and contrast["reference"] == "cf-k10-L12"
    assert "two-dose" in contrast["note"] and contrast["mean"] < 0


def test_no_paper_contrast_without_k10_and_k50():
    exp = make_experiment(ks=(1, 5), seeds=(0,), n_prompts=8, metrics=("clip_t",))
    stats = analyze_experiment(make_scores(exp), exp, CFG, prompt_table(8))
    assert "dose_contrast" not in set(stats["kind"]) and "dose" in set(stats["kind"])
    # one seed: the mixed model is not identifiable for delta rows and says so
    row = one(stats, kind="delta", condition="cf-k1-L12", category="all")
    assert math.isnan(row["lmm_mean"]) and "one seed" in row["lmm_note"] and math.isfinite(row["p_t"])


def test_multiplicity_columns(k_sweep):
    _, _, stats = k_sweep
    fam = stats[stats.adj_family == "k_sweep/delta/hps"]
    assert len(fam) == 6
    assert fam["p_adj_family"].to_numpy() == pytest.approx(multipletests(fam["p"], method="holm")[1])
    tested = stats[stats["p"].notna()]
    assert tested["p_adj_experiment"].to_numpy() == pytest.approx(multipletests(tested["p"], method="fdr_bh")[1])
    assert (stats["p_adj_family"].dropna() >= stats.loc[stats["p_adj_family"].notna(), "p"]).all()


def test_fid_rows_are_carried():
    exp = make_experiment(ks=(1,), seeds=(0,), n_prompts=6, metrics=("clip_t", "fid"))
    scores = make_scores(dict(exp, metrics=["clip_t"]))
    fid = pd.DataFrame([dict(metric="fid", value=12.5, model="tiny-sd3", condition="cf-k1-L12", seed=0,
                             reference_condition="base", reference_seed=0, n_images=6, dim=64)])
    stats = analyze_experiment(pd.concat([scores, fid]), exp, CFG, prompt_table(6))
    row = one(stats, kind="fid")
    assert row["mean"] == 12.5 and row["n"] == 6 and row["reference"] == "base" and math.isnan(row["p"])
    assert (row["label"], row["preset"], row["k"]) == ("sink", "cf", 1.0)  # the figure names bars by them


def test_bad_input_names_the_field():
    exp = make_experiment(ks=(1,), seeds=(0,), n_prompts=4, metrics=("clip_t",))
    scores = make_scores(exp)
    with pytest.raises(ValueError, match=r"missing columns \['prompt_id'\]"):
        analyze_experiment(scores.drop(columns="prompt_id"), exp, CFG)
    with pytest.raises(ValueError, match="duplicate"):
        analyze_experiment(pd.concat([scores, scores.iloc[:1]]), exp, CFG)
    with pytest.raises(ValueError, match="not in the prompt table"):
        analyze_experiment(scores, exp, CFG, prompt_table(2))
    with pytest.raises(ValueError, match="missing key 'baseline'"):
        analyze_experiment(scores, {k: v for k, v in exp.items() if k != "baseline"}, CFG)
