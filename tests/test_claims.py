"""Claim verdicts: each rule on planted effects, 'not run' when the rows are absent, and the header."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sinkrepro.paper.claims import (
    ABOUT_6X, CLAIMS, SENSITIVITY, about_6x, margin_needed, p_noninferior, render_claims, resolve_margins,
    seed_noise_floor,
)
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.stats import StatsConfig, analyze_experiment
from sinkrepro.stats.multiplicity import combine_stats
from helpers import make_experiment, make_scores, prompt_table

CFG = StatsConfig(bootstrap_resamples=500, categories=False)
MARGINS = resolve_margins(CFG, {})  # the configured margins (no noise floor measured)
LPIPS = {("lpips", "cf-k1-L12"): 0.30, ("lpips", "cf_random-k1-L12"): 0.05,
         ("lpips", "cf-k10-L12"): 0.40, ("lpips", "cf_random-k10-L12"): 0.07,
         ("lpips", "cf-k50-L12"): 0.50, ("lpips", "cf_random-k50-L12"): 0.09}


def verdicts(effects, metrics=("clip_t", "hps", "lpips"), sd=0.004, n_prompts=30, ks=(1, 10, 50)):
    exp = make_experiment(ks=ks, seeds=(0,), n_prompts=n_prompts, metrics=metrics)
    stats = combine_stats([analyze_experiment(make_scores(exp, effects, sd=sd), exp, CFG, prompt_table(n_prompts))],
                          CFG)
    return {c.title: c.judge(stats, CFG, MARGINS).verdict for c in CLAIMS}, stats


def test_paper_like_effects_support_every_claim_that_was_run():
    # ratios 0.30/0.05 = 6, 0.40/0.07 = 5.7, 0.50/0.09 = 5.6: every CI inside "about 6x" = [4, 9]
    v, _ = verdicts(LPIPS | {("hps", "cf-k10-L12"): -0.01, ("hps", "cf-k50-L12"): -0.03}, sd=0.002)
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
    assert claim.judge(stats, CFG, MARGINS).verdict == "inconclusive"


def test_missing_k_or_metric_is_not_run():
    v, _ = verdicts(LPIPS, metrics=("clip_t", "lpips"), ks=(1, 5))
    assert v["HPS-v2 boundary at k>=10"] == "not run in this config"
    assert v["Non-degradation at k=1: HPS-v2"] == "not run in this config"
    assert v["Perceptual shift about 6x random"] != "not run in this config"


def test_random_removal_rows_are_not_sink_evidence():
    _, stats = verdicts({("clip_t", "cf_random-k1-L12"): -0.05}, metrics=("clip_t",))
    claim = next(c for c in CLAIMS if c.title == "Non-degradation at k=1: CLIP-T")
    evidence = claim.judge(stats, CFG, MARGINS).rows
    assert list(evidence["condition"]) == ["cf-k1-L12"] and claim.judge(stats, CFG, MARGINS).verdict == "supported"


def test_rendered_claims_carry_numbers_and_standin_header():
    _, stats = verdicts(LPIPS, metrics=("clip_t", "lpips"))
    text = render_claims(stats, CFG, standin=True)
    assert text.splitlines()[0] == STANDIN_NOTICE
    assert "0.347 vs 0.053 (6.5x)" in text and "not run in this config" in text
    ratio = stats[(stats.kind == "ratio") & (stats.k == 1)]["mean"].item()
    assert f"{ratio:.3g}" in text
    assert "paper rule: CI contains 0" not in text and "excludes 0 (effect)" in text
    assert not render_claims(stats, CFG, standin=False).startswith("WARNING")
    assert render_claims(pd.DataFrame(), CFG, standin=False).count("**not run in this config**") == 2 * len(CLAIMS)


@pytest.mark.parametrize("low, high, expected", [
    (4.5, 8.0, "supported"),          # the whole CI is "about 6x"
    (1.2, 30.0, "inconclusive"),      # point estimate 5 would have passed the old rule
    (5.0, 12.0, "inconclusive"),      # straddles the upper end
    (1.1, 2.0, "not supported"),      # entirely below 4
    (10.0, 14.0, "not supported"),    # entirely above 9
    (float("nan"), 3.0, "inconclusive"),
])
def test_about_6x_is_judged_by_the_whole_ci(low, high, expected):
    assert ABOUT_6X == (4.0, 9.0)
    assert about_6x(low, high) == expected


def _row(d: np.ndarray, direction: str = "less") -> pd.Series:
    return pd.Series(dict(mean=d.mean(), se=d.std(ddof=1) / np.sqrt(d.size), df=d.size - 1.0,
                          alternative_1s=direction))


@pytest.mark.parametrize("direction", ["less", "greater"])
def test_non_inferiority_and_the_margin_where_it_flips_match_scipy(direction):
    d = np.random.default_rng(3).normal(-0.004 if direction == "less" else 0.004, 0.01, 40)
    row = _row(d, direction)
    for margin in (0.001, 0.005, 0.02):
        shifted = d + margin if direction == "less" else d - margin
        oracle = sps.ttest_1samp(shifted, 0.0, alternative="greater" if direction == "less" else "less").pvalue
        assert p_noninferior(row, margin) == pytest.approx(oracle, rel=1e-9)
    needed = margin_needed(row, 0.05)
    shifted = d + needed if direction == "less" else d - needed
    at_flip = sps.ttest_1samp(shifted, 0.0, alternative="greater" if direction == "less" else "less").pvalue
    assert at_flip == pytest.approx(0.05, rel=1e-6)


def test_seed_noise_floor_matches_a_naive_loop():
    rng = np.random.default_rng(0)
    rows = [dict(metric=m, model="tiny", prompt_id=f"p{i}", seed=s, value=rng.normal(), failed=False)
            for m in ("clip_t", "hps") for i in range(7) for s in (0, 1, 2)]
    rows.append(dict(metric="hps", model="tiny", prompt_id="p9", seed=0, value=5.0, failed=False))  # no partner
    frame = pd.DataFrame(rows)
    floor = seed_noise_floor(frame)
    for metric in ("clip_t", "hps"):
        gaps = []
        for a, b in ((0, 1), (0, 2), (1, 2)):
            for i in range(7):
                x = {r["seed"]: r["value"] for r in rows if r["metric"] == metric and r["prompt_id"] == f"p{i}"}
                gaps.append(abs(x[a] - x[b]))
        assert floor[metric] == (pytest.approx(np.mean(gaps)), 7)


def test_measured_noise_floor_replaces_the_configured_margin_and_says_so():
    margins = resolve_margins(CFG, {"hps": (0.012, 30)})
    assert margins.of("hps") == 0.012 and "noise floor" in margins.sources["hps"]
    assert margins.of("clip_t") == CFG.margin("clip_t") and "config.stats.margins.clip_t" in margins.sources["clip_t"]


def test_hps_boundary_needs_non_inferiority_at_k1():
    """A k=1 dd that is merely not significant (noisy) leaves 'not at k=1' unshown: inconclusive."""
    strong = LPIPS | {("hps", "cf-k10-L12"): -0.03, ("hps", "cf-k50-L12"): -0.05}
    v, _ = verdicts(strong, sd=0.002)
    assert v["HPS-v2 boundary at k>=10"] == "supported"
    v, stats = verdicts(strong, sd=0.03, n_prompts=10)   # k=1: n.s. but wide, not non-inferior at 0.005
    k1 = stats[(stats.kind == "delta_delta") & (stats.metric == "hps") & (stats.k == 1)].iloc[0]
    assert k1["p_t_1s"] > 0.05 and p_noninferior(k1, MARGINS.of("hps")) > 0.05
    assert v["HPS-v2 boundary at k>=10"] == "inconclusive"


def test_sensitivity_table_shows_the_verdict_moving_with_the_margin():
    # k=1 CLIP-T drop of 0.006: not non-inferior at a tight margin, non-inferior at a loose one
    _, stats = verdicts({("clip_t", "cf-k1-L12"): -0.006}, metrics=("clip_t",), ks=(1,), sd=0.004)
    claim = next(c for c in CLAIMS if c.title == "Non-degradation at k=1: CLIP-T")
    by_factor = {f: claim.judge(stats, CFG, MARGINS.scaled(f)).verdict for f in SENSITIVITY}
    assert by_factor[0.25] != "supported" and by_factor[4.0] == "supported"
    text = render_claims(stats, CFG, standin=False)
    assert "Verdict across margins" in text and "non-inferior for margins above" in text


def _model_stats(model: str, effects: dict, seed: int) -> pd.DataFrame:
    exp = make_experiment(ks=(1, 10), seeds=(0,), n_prompts=30, metrics=("clip_t", "lpips")) | \
        dict(name=f"{model}_k_sweep", model=model)
    return analyze_experiment(make_scores(exp, effects, seed=seed, sd=0.004), exp, CFG, prompt_table(30))


# model "alpha" keeps CLIP-T at k=1, model "beta" loses 0.03 of it
MODELS = {"alpha": (LPIPS | {("clip_t", "cf-k1-L12"): 0.0}, 1), "beta": (LPIPS | {("clip_t", "cf-k1-L12"): -0.03}, 2)}


@pytest.fixture(scope="module")
def per_model() -> dict[str, pd.DataFrame]:
    """Each model's statistics, analysed once for the module."""
    return {model: _model_stats(model, effects, seed) for model, (effects, seed) in MODELS.items()}


def _section(text, heading: str, stop: str) -> list[str]:
    lines = text.splitlines() if isinstance(text, str) else text
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(stop)), len(lines))
    return lines[start:end]


def test_claims_are_judged_per_model_side_by_side(per_model):
    both = combine_stats([per_model["alpha"], per_model["beta"]], CFG)
    text = render_claims(both, CFG, standin=True)
    lines = text.splitlines()
    assert "| claim | alpha | beta |" in lines
    clip = next(line for line in lines if line.startswith("| 1. Non-degradation at k=1: CLIP-T |"))
    cells = [c.strip() for c in clip.strip("|").split("|")][1:]
    assert cells[0].startswith("**supported** (k=1: ") and cells[1].startswith("**not supported** (k=1: -0.03")
    # each model's column and detail equal an independent run on that model's rows alone
    for model in MODELS:
        alone = combine_stats([per_model[model]], CFG)
        single = render_claims(alone, CFG, standin=True)
        assert "### " not in single and "| claim | verdict |" in single.splitlines()
        col = 1 + ["alpha", "beta"].index(model)
        for i, claim in enumerate(CLAIMS, 1):
            v = claim.judge(alone, CFG, MARGINS)
            row = next(line for line in lines if line.startswith(f"| {i}. {claim.title} |"))
            assert row.strip("|").split("|")[col].strip().startswith(f"**{v.verdict}**")
            detail = _section(_section(text, f"## {i}. {claim.title}", "## "), f"### {model}", "### ")
            expected = _section(single, f"## {i}. {claim.title}", "## ")
            assert [x for x in detail if x.startswith("|")] == [x for x in expected if x.startswith("|")]
            assert f"- Verdict: **{v.verdict}**" in detail[1]
