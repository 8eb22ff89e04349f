"""Statistics primitives against independent oracles: scipy, statsmodels, textbook values."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from sinkrepro.stats import (StatsConfig, adjust_p, bootstrap_ci, difference_battery, random_intercept_fit,
                             ratio_statistic, seeded_rng, t_test, tost, wilcoxon)

CFG = StatsConfig(bootstrap_resamples=2000)


# --- t, d_z, Wilcoxon ---------------------------------------------------------------------
def test_t_test_textbook_values():
    out = t_test(np.array([1.0, 2, 3, 4, 5]), "greater")
    # mean 3, sd sqrt(2.5), se sqrt(0.5), t = 3 / sqrt(0.5)
    assert out["mean"] == 3 and out["sd"] == pytest.approx(math.sqrt(2.5))
    assert out["t"] == pytest.approx(3 / math.sqrt(0.5)) and out["df"] == 4
    assert out["dz"] == pytest.approx(3 / math.sqrt(2.5))


@pytest.mark.parametrize("alternative", ["less", "greater"])
def test_t_test_matches_scipy(alternative):
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.3, 1, 25), rng.normal(0.5, 1, 25)
    out = t_test(x - y, alternative)
    ref2 = sps.ttest_rel(x, y)
    ref1 = sps.ttest_rel(x, y, alternative=alternative)
    assert out["t"] == pytest.approx(ref2.statistic) and out["p_t"] == pytest.approx(ref2.pvalue)
    assert out["p_t_1s"] == pytest.approx(ref1.pvalue)


def test_wilcoxon_textbook_exact():
    # all five differences positive: W- = 0, exact two-sided p = 2 / 2^5
    out = wilcoxon(np.array([1.0, 2, 3, 4, 5]), "greater")
    assert out["w"] == 0 and out["p_w"] == pytest.approx(2 / 32) and out["p_w_1s"] == pytest.approx(1 / 32)
    # one negative of rank 1: W- = 1; P(W- <= 1) = 2/32, two-sided 4/32
    out = wilcoxon(np.array([-1.0, 2, 3, 4, 5]), "greater")
    assert out["w"] == 1 and out["p_w"] == pytest.approx(4 / 32)


def test_degenerate_inputs_give_nan_with_reason():
    one = difference_battery([0.2], margin=0.1, direction="less", cfg=CFG, key=("a",))
    assert math.isnan(one["t"]) and math.isnan(one["ci_low"]) and "n=1" in one["note"]
    flat = difference_battery([0.1] * 6, margin=0.2, direction="less", cfg=CFG, key=("b",))
    assert flat["mean"] == pytest.approx(0.1) and math.isnan(flat["t"]) and math.isnan(flat["p_tost"])
    assert "zero variance" in flat["note"]
    zeros = difference_battery([0.0] * 6, margin=0.2, direction="less", cfg=CFG, key=("c",))
    assert math.isnan(zeros["p_w"]) and "Wilcoxon undefined" in zeros["note"]
    empty = difference_battery([], margin=0.2, direction="less", cfg=CFG, key=("d",))
    assert math.isnan(empty["mean"]) and "n=0" in empty["note"]


# --- TOST ------------------------------------------------------------------------------------
def test_tost_matches_statsmodels():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0.02, 0.05, 40), rng.normal(0.0, 0.05, 40)
    d = x - y
    t = t_test(d, "less")
    out = tost(t["mean"], t["se"], t["df"], 0.03, "less")
    p, (_, p_low, _), (_, p_upp, _) = ttost_paired(x, y, -0.03, 0.03)
    assert out["p_tost"] == pytest.approx(p) and out["p_tost_lower"] == pytest.approx(p_low)
    assert out["p_tost_upper"] == pytest.approx(p_upp) and out["p_noninferior"] == out["p_tost_lower"]
    assert tost(t["mean"], t["se"], t["df"], 0.03, "greater")["p_noninferior"] == out["p_tost_upper"]


def test_tost_accepts_zero_shift_and_rejects_twice_the_margin():
    margin, n, sims = 0.2, 400, 200
    rng = np.random.default_rng(11)
    accepted = {}
    for shift in (0.0, 2 * margin):
        d = rng.normal(shift, 1.0, (sims, n))  # se = 0.05 = margin / 4
        mean, se = d.mean(1), d.std(1, ddof=1) / math.sqrt(n)
        accepted[shift] = np.mean([tost(m, s, n - 1, margin, "less")["p_tost"] < 0.05 for m, s in zip(mean, se)])
    assert accepted[0.0] >= 0.95   # power at |shift| = 0 with margin/se = 4 is ~0.98
    assert accepted[2 * margin] == 0.0


# --- bootstrap -------------------------------------------------------------------------------
def test_bootstrap_cis_agree_with_scipy():
    rng = np.random.default_rng(2)
    x = rng.exponential(1.0, 30)  # skewed, so BCa and percentile differ
    ours = bootstrap_ci(x, resamples=40_000, rng=seeded_rng(0, "x"))
    for method, lo, hi in (("percentile", ours.pct_low, ours.pct_high), ("BCa", ours.bca_low, ours.bca_high)):
        ref = sps.bootstrap((x,), np.mean, n_resamples=40_000, method=method, rng=np.random.default_rng(1))
        assert lo == pytest.approx(ref.confidence_interval.low, abs=0.02)
        assert hi == pytest.approx(ref.confidence_interval.high, abs=0.03)
    assert ours.bca_high - ours.pct_high > 0.03  # BCa moved right for right-skewed data
    assert ours.estimate == pytest.approx(x.mean())


def test_ratio_bootstrap_agrees_with_scipy_paired():
    rng = np.random.default_rng(4)
    y = rng.uniform(0.03, 0.08, 40)
    x = 6 * y + rng.normal(0, 0.05, 40)
    ours = bootstrap_ci(np.column_stack([x, y]), ratio_statistic, resamples=40_000, rng=seeded_rng(0, "r"))
    assert ours.estimate == pytest.approx(x.mean() / y.mean())
    ref = sps.bootstrap((x, y), lambda a, b, axis=-1: a.mean(axis) / b.mean(axis), paired=True,
                        n_resamples=40_000, method="BCa", rng=np.random.default_rng(1))
    assert ours.bca_low == pytest.approx(ref.confidence_interval.low, abs=0.05)
    assert ours.bca_high == pytest.approx(ref.confidence_interval.high, abs=0.05)


def test_bootstrap_is_seeded_by_key():
    x = np.random.default_rng(0).normal(size=20)
    a = bootstrap_ci(x, resamples=500, rng=seeded_rng(0, "k", 1))
    b = bootstrap_ci(x, resamples=500, rng=seeded_rng(0, "k", 1))
    c = bootstrap_ci(x, resamples=500, rng=seeded_rng(0, "k", 2))
    assert a == b and a != c


def test_bootstrap_coverage_simulation():
    """95% percentile and BCa CIs cover the true mean in 93-97% of 600 simulated datasets."""
    true_mean, n, sims = 0.3, 80, 600
    data = np.random.default_rng(123).normal(true_mean, 1.0, (sims, n))
    covered = {"pct": 0, "bca": 0}
    for i, x in enumerate(data):
        ci = bootstrap_ci(x, resamples=1000, rng=seeded_rng(7, i))
        covered["pct"] += ci.pct_low <= true_mean <= ci.pct_high
        covered["bca"] += ci.bca_low <= true_mean <= ci.bca_high
    for method, hits in covered.items():
        assert 0.93 <= hits / sims <= 0.97, (method, hits / sims)


# --- multiplicity -----------------------------------------------------------------------------
def test_holm_textbook():
    # sorted p 0.01, 0.03, 0.04 -> 3*0.01, max(2*0.03, .), max(1*0.04, 0.06)
    assert adjust_p([0.01, 0.04, 0.03], "holm") == pytest.approx([0.03, 0.06, 0.06])


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_adjustments_match_statsmodels(method):
    p = np.random.default_rng(9).uniform(0, 0.2, 17)
    p[[2, 5]] = np.nan
    ours = adjust_p(p, method)
    ok = ~np.isnan(p)
    assert np.isnan(ours[~ok]).all()
    assert ours[ok] == pytest.approx(multipletests(p[ok], method=method)[1])
    assert adjust_p(p, "none")[ok] == pytest.approx(p[ok])


def test_unknown_adjustment_is_an_error():
    with pytest.raises(ValueError, match="holm"):
        adjust_p([0.1], "hommel")


# --- mixed models -----------------------------------------------------------------------------
def _clustered(prompts=30, seeds=4, prompt_sd=1.0, noise_sd=0.5, mean=0.2, seed=0):
    rng = np.random.default_rng(seed)
    y = mean + rng.normal(0, prompt_sd, (prompts, 1)) + rng.normal(0, noise_sd, (prompts, seeds))
    return y, np.repeat(np.arange(prompts), seeds)


def test_random_intercept_balanced_equals_prompt_mean_analysis():
    """Balanced one-way random effects (REML, variance > 0): b0 = grand mean, SE = SD(prompt means)/sqrt(P)."""
    y, groups = _clustered()
    fit = random_intercept_fit(y.ravel(), groups)
    prompt_means = y.mean(1)
    assert fit["lmm_mean"] == pytest.approx(prompt_means.mean(), abs=1e-8)
    assert fit["lmm_se"] == pytest.approx(prompt_means.std(ddof=1) / math.sqrt(len(prompt_means)), rel=1e-4)
    assert fit["lmm_var_prompt"] > 0


def test_random_intercept_matches_statsmodels_formula_api():
    import pandas as pd
    import statsmodels.formula.api as smf
    y, groups = _clustered(prompts=15, seeds=3, prompt_sd=0.3, seed=4)
    keep = np.ones(y.size, bool)
    keep[[1, 7, 8]] = False  # unbalanced
    x = np.tile(np.log([1.0, 10, 50]), 15)
    frame = pd.DataFrame(dict(y=y.ravel()[keep] + 0.1 * x[keep], x=x[keep], g=groups[keep]))
    ref = smf.mixedlm("y ~ x", frame, groups=frame["g"]).fit(reml=True)
    fit = random_intercept_fit(frame["y"], frame["g"], frame["x"])
    assert fit["lmm_mean"] == pytest.approx(ref.fe_params["x"], rel=1e-6)
    assert fit["lmm_se"] == pytest.approx(ref.bse_fe["x"], rel=1e-4)
    assert fit["lmm_p"] == pytest.approx(ref.pvalues["x"], rel=1e-3)


def test_random_intercept_slope_balanced_equals_ols():
    rng = np.random.default_rng(8)
    lnk = np.log([1.0, 5, 10, 20, 50])
    y = rng.normal(0, 1, (20, 1)) - 0.01 * lnk + rng.normal(0, 0.02, (20, 5))
    fit = random_intercept_fit(y.ravel(), np.repeat(np.arange(20), 5), np.tile(lnk, 20))
    assert fit["lmm_mean"] == pytest.approx(np.polyfit(np.tile(lnk, 20), y.ravel(), 1)[0], abs=1e-8)


def test_random_intercept_degenerate_cases():
    one_seed = random_intercept_fit(np.arange(10.0), np.arange(10))
    assert math.isnan(one_seed["lmm_mean"]) and "one observation per prompt" in one_seed["lmm_note"]
    flat = random_intercept_fit(np.ones(12), np.repeat(np.arange(4), 3))
    assert math.isnan(flat["lmm_mean"]) and "zero variance" in flat["lmm_note"]


# --- config -----------------------------------------------------------------------------------
def test_config_defaults_and_errors():
    cfg = StatsConfig.from_dict({"margins": {"hps": 0.01}, "multiplicity": {"across": "holm"}})
    assert cfg.margin("hps") == 0.01 and cfg.margin("clip_t") == 0.01 and cfg.across == "holm"
    assert cfg.within == "holm" and cfg.bootstrap_resamples == 10_000 and math.isnan(cfg.margin("other"))
    with pytest.raises(ValueError, match=r"config.stats.margins.lpips"):
        StatsConfig.from_dict({"margins": {"lpips": -1}})
    with pytest.raises(ValueError, match=r"config.stats.multiplicity.within"):
        StatsConfig.from_dict({"multiplicity": {"within": "sidak"}})
    with pytest.raises(ValueError, match=r"unknown keys \['resamples'\]"):
        StatsConfig.from_dict({"resamples": 10})
    assert "without a stated source" in cfg.margin_source("hps") and "paper" in cfg.margin_source("clip_t")
    sourced = StatsConfig.from_dict({"margins": {"hps": 0.01}, "margin_sources": {"hps": "a published MID"}})
    assert sourced.margin_source("hps") == "a published MID"
    with pytest.raises(ValueError, match=r"config.stats.margin_sources.hps"):
        StatsConfig.from_dict({"margin_sources": {"hps": ""}})
