"""Claim verdicts: each rule on planted effects, 'not run' when the rows are absent, and the header."""
import pandas as pd
import pytest

from sinkrepro.paper.claims import CLAIMS, render_claims
from sinkrepro.paper.tables import combine_stats
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.stats import StatsConfig, analyze_experiment
from test_stats_analysis import make_experiment, make_scores, prompt_table

CFG = StatsConfig(bootstrap_resamples=500, categories=False)
LPIPS = {("lpips", "cf-k1-L12"): 0.30, ("lpips", "cf_random-k1-L12"): 0.05,
         ("lpips", "cf-k10-L12"): 0.40, ("lpips", "cf_random-k10-L12"): 0.07,
         ("lpips", "cf-k50-L12"): 0.50, ("lpips", "cf_random-k50-L12"): 0.09}


def verdicts(effects, metrics=("clip_t", "hps", "lpips"), sd=0.004, n_prompts=30, ks=(1, 10, 50)):
    exp = make_experiment(ks=ks, seeds=(0,), n_prompts=n_prompts, metrics=metrics)
    stats = combine_stats([analyze_experiment(make_scores(exp, effects, sd=sd), exp, CFG, prompt_table(n_prompts))],
                          CFG)
    return {c.title: c.judge(stats, CFG).verdict for c in CLAIMS}, stats


def test_paper_like_effects_support_every_claim_that_was_run():
    v, _ = verdicts(LPIPS | {("hps", "cf-k10-L12"): -0.01, ("hps", "cf-k50-L12"): -0.03})
    assert v == {
        "Non-degradation at k=1: CLIP-T": "supported",
        "Non-degradation at k=1: ImageReward": "not run in this config",
        "Non-degradation at k=1: HPS-v2": "supported",
        "HPS-v2 boundary at k>=10": "supported",
        "CLIP-T robust throughout": "supported",
        "Perceptual shift is sink-specific": "supported",
        "Perceptual shift about 6x random": "supported",
    }


def test_planted_harm_and_flat_effects_refute_claims():
    effects = {("clip_t", "cf-k1-L12"): -0.03, ("hps", "cf-k1-L12"): -0.02,
               ("lpips", "cf-k1-L12"): 0.06, ("lpips", "cf_random-k1-L12"): 0.05,
               ("lpips", "cf-k10-L12"): 0.07, ("lpips", "cf_random-k10-L12"): 0.07,
               ("lpips", "cf-k50-L12"): 0.08, ("lpips", "cf_random-k50-L12"): 0.09}
    v, _ = verdicts(effects)
    assert v["Non-degradation at k=1: CLIP-T"] == "not supported"
    assert v["Non-degradation at k=1: HPS-v2"] == "not supported"
    assert v["CLIP-T robust throughout"] == "not supported"
    assert v["HPS-v2 boundary at k>=10"] == "not supported"   # harm already at k=1, none at k>=10
    assert v["Perceptual shift about 6x random"] == "not supported"  # ratios near 1
    assert v["Perceptual shift is sink-specific"] in ("inconclusive", "not supported")


def test_noisy_small_samples_are_inconclusive():
    # d = -0.005 +- 0.05 alternating over 8 prompts: se ~0.019 >> margin 0.01, so neither
    # non-inferiority (p ~0.4) nor harm (p ~0.6) can be shown
    exp = make_experiment(ks=(1,), seeds=(0,), n_prompts=8, metrics=("clip_t",))
    scores = make_scores(exp)
    base = scores[scores.condition == "base"].set_index("prompt_id")["value"]
    sink = scores.condition == "cf-k1-L12"
    wiggle = 0.05 * (-1.0) ** pd.RangeIndex(8).to_numpy()
    scores.loc[sink, "value"] = base.loc[scores.loc[sink, "prompt_id"]].to_numpy() - 0.005 + wiggle
    stats = analyze_experiment(scores, exp, CFG, prompt_table(8))
    claim = next(c for c in CLAIMS if c.title == "Non-degradation at k=1: CLIP-T")
    assert claim.judge(stats, CFG).verdict == "inconclusive"


def test_missing_k_or_metric_is_not_run():
    v, _ = verdicts(LPIPS, metrics=("clip_t", "lpips"), ks=(1, 5))
    assert v["HPS-v2 boundary at k>=10"] == "not run in this config"
    assert v["Non-degradation at k=1: HPS-v2"] == "not run in this config"
    assert v["Perceptual shift about 6x random"] != "not run in this config"


def test_random_removal_rows_are_not_sink_evidence():
    _, stats = verdicts({("clip_t", "cf_random-k1-L12"): -0.05}, metrics=("clip_t",))
    claim = next(c for c in CLAIMS if c.title == "Non-degradation at k=1: CLIP-T")
    evidence = claim.judge(stats, CFG).rows
    assert list(evidence["condition"]) == ["cf-k1-L12"] and claim.judge(stats, CFG).verdict == "supported"


def test_rendered_claims_carry_numbers_and_standin_header():
    _, stats = verdicts(LPIPS, metrics=("clip_t", "lpips"))
    text = render_claims(stats, CFG, standin=True)
    assert text.splitlines()[0] == STANDIN_NOTICE
    assert "0.347 vs 0.053 (6.5x)" in text and "not run in this config" in text
    ratio = stats[(stats.kind == "ratio") & (stats.k == 1)]["mean"].item()
    assert f"{ratio:.4g}" in text
    assert not render_claims(stats, CFG, standin=False).startswith("WARNING")
    assert render_claims(pd.DataFrame(), CFG, standin=False).count("**not run in this config**") == 2 * len(CLAIMS)
