"""paper/claims.md: each claim of the abstract, the paper's numbers, and this run's verdict.

A verdict is `supported`, `not supported` or `inconclusive` by the rule written next to it, or
`not run in this config` when no experiment produced the rows the rule reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..provenance import notice_lines
from ..stats.config import StatsConfig
from ..stats.multiplicity import adjust_p, combine_stats
from ..stats.paired import tost
from .numbers import cell, estimate, sig, whole

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run in this config"
# "About 6x": within a factor 1.5 of 6, i.e. [4, 9]; the paper's own ratios (6.5 at k=1, 4.2 at k=5) lie inside.
ABOUT_6X = (6 / 1.5, 6 * 1.5)
BOUNDARY_K = 10
SENSITIVITY = (0.25, 0.5, 1.0, 2.0, 4.0)  # margins tried, as multiples of the margin in use
NI_METRICS = ("clip_t", "hps", "imagereward")


@dataclass(frozen=True)
class Margins:
    """The non-inferiority margin of each metric that the verdicts use, and where it comes from."""

    values: dict[str, float]
    sources: dict[str, str]

    def of(self, metric: str) -> float:
        return self.values.get(metric, math.nan)

    def scaled(self, factor: float) -> "Margins":
        return Margins({m: v * factor for m, v in self.values.items()}, self.sources)


def seed_noise_floor(baseline_scores: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """metric -> (mean |x(seed a) - x(seed b)| over prompts and seed pairs, number of prompts), from the
    unedited baseline's per-image scores: how much a metric moves when only the seed changes."""
    out = {}
    if not len(baseline_scores):
        return out
    ok = baseline_scores[baseline_scores["value"].notna()]
    if "failed" in ok:
        ok = ok[~ok["failed"].fillna(False).astype(bool)]
    for metric, rows in ok.groupby("metric"):
        wide = rows.pivot_table(index=["model", "prompt_id"], columns="seed", values="value", aggfunc="mean")
        seeds = list(wide.columns)
        gaps = [(wide[a] - wide[b]).abs() for i, a in enumerate(seeds) for b in seeds[i + 1:]]
        gaps = pd.concat(gaps).dropna() if gaps else pd.Series(dtype=float)
        if len(gaps):
            out[metric] = (float(gaps.mean()), int(wide.dropna(thresh=2).shape[0]))
    return out


def resolve_margins(cfg: StatsConfig, noise: dict[str, tuple[float, int]]) -> Margins:
    """The seed-to-seed noise floor measured in this run where it has one (a metric scored on one
    baseline at two or more seeds); otherwise the configured margin with its stated source."""
    values, sources = {}, {}
    for metric in sorted(set(cfg.margins) | set(noise)):
        if metric in noise and noise[metric][0] > 0:
            values[metric] = noise[metric][0]
            sources[metric] = (f"seed-to-seed noise floor of this run: mean |score(seed a) - score(seed b)| of the "
                               f"unedited baseline over {noise[metric][1]} prompts")
        elif metric in cfg.margins:
            values[metric] = cfg.margin(metric)
            sources[metric] = f"config.stats.margins.{metric}: {cfg.margin_source(metric)}"
    return Margins(values, sources)


@dataclass
class Verdict:
    verdict: str
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # evidence rows with a per-row verdict
    detail: str = ""


@dataclass(frozen=True)
class Claim:
    title: str
    statement: str
    paper: str      # the paper's own numbers (docs/paper-items.md)
    rule: str
    judge: Callable[[pd.DataFrame, StatsConfig, Margins], Verdict]
    margin_metric: str | None = None  # the metric whose margin the rule uses (None: no margin)


# --- selecting evidence -----------------------------------------------------------------------
def _rows(stats: pd.DataFrame, kind: str, metric: str, k=None, k_min=None) -> pd.DataFrame:
    if not len(stats):
        return stats
    sel = stats[(stats["kind"] == kind) & (stats["metric"] == metric) & (stats["category"] == "all")]
    if "select" in sel:
        sel = sel[sel["select"] == "top"]  # removals of the highest-mass keys (the sinks)
    if k is not None:
        sel = sel[sel["k"] == k]
    if k_min is not None:
        sel = sel[sel["k"] >= k_min]
    return sel.copy()


def _lt(value, alpha) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value) and value < alpha


# --- non-inferiority at a margin ----------------------------------------------------------------
def _harm_direction(r) -> str:
    return r.get("alternative_1s", "less") or "less"


def p_noninferior(r, margin: float) -> float:
    """One-sided t-test that the harm is smaller than `margin` (the harm side of the TOST pair)."""
    return tost(r["mean"], r["se"], r["df"], margin, _harm_direction(r))["p_noninferior"]


def margin_needed(r, alpha: float) -> float:
    """The smallest margin at which non-inferiority rejects at `alpha`: the verdict flips there."""
    if not (math.isfinite(r["se"]) and r["se"] > 0):
        return math.nan
    t = sps.t.ppf(1 - alpha, r["df"]) * r["se"]
    return max(0.0, t - r["mean"]) if _harm_direction(r) == "less" else max(0.0, r["mean"] + t)


def _with_margin(rows: pd.DataFrame, metric: str, margins: Margins, cfg: StatsConfig) -> pd.DataFrame:
    m = margins.of(metric)
    rows["margin"] = m
    rows["p_noninferior"] = [p_noninferior(r, m) for _, r in rows.iterrows()]
    rows["margin_needed"] = [margin_needed(r, cfg.alpha) for _, r in rows.iterrows()]
    return rows


# --- rules ------------------------------------------------------------------------------------
def _non_degradation(rows: pd.DataFrame, cfg: StatsConfig) -> pd.Series:
    def one(r):
        if _lt(r["p_noninferior"], cfg.alpha):
            return SUPPORTED
        if _lt(r["p_t_1s"], cfg.alpha):
            return NOT_SUPPORTED
        return INCONCLUSIVE
    return rows.apply(one, axis=1)


def _combine(per_row: pd.Series) -> str:
    if per_row.empty:
        return NOT_RUN
    if (per_row == NOT_SUPPORTED).any():
        return NOT_SUPPORTED
    return SUPPORTED if (per_row == SUPPORTED).all() else INCONCLUSIVE


def non_degradation(metric: str):
    def judge(stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> Verdict:
        rows = _rows(stats, "delta", metric, k=1)
        if rows.empty:
            return Verdict(NOT_RUN)
        rows = _with_margin(rows, metric, margins, cfg)
        rows["verdict"] = _non_degradation(rows, cfg)
        return Verdict(_combine(rows["verdict"]), rows)
    return judge


def _sink_specific(r, alpha: float) -> bool:
    """The paper's sink-specificity rule: the effect is in the harm/shift direction, the CI excludes 0,
    and the one-sided p < alpha."""
    if not _lt(r["p_t_1s"], alpha):
        return False
    return r["ci_high"] < 0 if _harm_direction(r) == "less" else r["ci_low"] > 0


def hps_boundary(stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> Verdict:
    rows, basis = _rows(stats, "delta_delta", "hps"), "delta_delta"
    if rows.empty:
        rows, basis = _rows(stats, "delta", "hps"), "delta (no sink-random contrast in this config)"
    if rows.empty or not (rows["k"] >= BOUNDARY_K).any() or not (rows["k"] < BOUNDARY_K).any():
        return Verdict(NOT_RUN, detail="needs HPS rows at k >= 10 and at k < 10")
    rows = _with_margin(rows, "hps", margins, cfg)

    def one(r):
        if _sink_specific(r, cfg.alpha):
            return "harm"
        return "no harm (non-inferior)" if _lt(r["p_noninferior"], cfg.alpha) else "undecided"
    rows["verdict"] = rows.apply(one, axis=1)
    high, low = rows.loc[rows["k"] >= BOUNDARY_K, "verdict"], rows.loc[rows["k"] < BOUNDARY_K, "verdict"]
    if (low == "harm").any() or (high == "no harm (non-inferior)").any():
        verdict = NOT_SUPPORTED
    elif (high == "harm").all() and (low == "no harm (non-inferior)").all():
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    return Verdict(verdict, rows, f"basis: {basis}")


def clip_t_robust(stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> Verdict:
    rows = _rows(stats, "delta", "clip_t")
    if rows.empty:
        return Verdict(NOT_RUN)
    rows = _with_margin(rows, "clip_t", margins, cfg)
    rows["p_t_1s_holm"] = adjust_p(rows["p_t_1s"], "holm")

    def one(r):
        if _lt(r["p_noninferior"], cfg.alpha):
            return SUPPORTED
        return NOT_SUPPORTED if _lt(r["p_t_1s_holm"], cfg.alpha) else INCONCLUSIVE
    rows["verdict"] = rows.apply(one, axis=1)
    ks = sorted(rows["k"].dropna().unique())
    return Verdict(_combine(rows["verdict"]), rows, f"k tested: {', '.join(whole(k) for k in ks)}")


def perceptual_sink_specific(stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> Verdict:
    rows = _rows(stats, "delta_delta", "lpips")
    if rows.empty:
        return Verdict(NOT_RUN)
    specific = rows.apply(_sink_specific, axis=1, alpha=cfg.alpha)
    rows["verdict"] = [SUPPORTED if s else NOT_SUPPORTED for s in specific]
    verdict = SUPPORTED if specific.all() else NOT_SUPPORTED if not specific.any() else INCONCLUSIVE
    return Verdict(verdict, rows)


def about_6x(low: float, high: float) -> str:
    """The whole CI decides: inside [4, 9] supported, disjoint from it not supported, else inconclusive."""
    lo, hi = ABOUT_6X
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if lo <= low and high <= hi:
        return SUPPORTED
    if high < lo or low > hi:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def perceptual_ratio(stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> Verdict:
    rows = _rows(stats, "ratio", "lpips")
    if rows.empty:
        return Verdict(NOT_RUN)
    rows["verdict"] = [about_6x(r["ci_low"], r["ci_high"]) for _, r in rows.iterrows()]
    return Verdict(_combine(rows["verdict"]), rows)


NI_RULE = ("Per sink-removal row at k=1 (select=top, all prompts): supported if non-inferiority at the margin "
           "rejects (p non-inferior < alpha: a drop as large as the margin is ruled out); not supported if the "
           "one-sided paired t shows a drop (p one-sided < alpha) without non-inferiority; inconclusive otherwise. "
           "Several rows (experiments/presets): supported only if all are, not supported if any is.")
CLAIMS = [
    Claim("Non-degradation at k=1: CLIP-T", "Removing the top attention sink (k=1) does not degrade text-image "
          "alignment (CLIP-T).", "CLIP-T 95% CI contains 0 for A1-A3 (N=553); informal |dCLIP| <= 0.01.",
          NI_RULE, non_degradation("clip_t"), "clip_t"),
    Claim("Non-degradation at k=1: ImageReward", "Removing the top sink (k=1) does not degrade ImageReward.",
          "Claimed as non-degradation (CI contains 0); the paper states no ImageReward number for it.",
          NI_RULE, non_degradation("imagereward"), "imagereward"),
    Claim("Non-degradation at k=1: HPS-v2", "Removing the top sink (k=1) does not degrade HPS-v2.",
          "HPS dd at k=1: -0.002 (n.s.).", NI_RULE, non_degradation("hps"), "hps"),
    Claim("HPS-v2 boundary at k>=10", "HPS-v2 drops below the equal-budget random control once k >= 10, "
          "but not at k=1.", "HPS dd: k=1 -0.002 (n.s.); k=10 -0.005 [-0.008, -0.001], p=.007; "
          "k=50 -0.020 [-0.026, -0.013], p<1e-4.",
          "Per k: 'harm' = the paper's sink-specificity rule (dd in the harm direction, its CI excluding 0, "
          "one-sided p < alpha, raw p as the paper); 'no harm' = non-inferiority at the HPS margin rejects. "
          "Supported if every k >= 10 shows harm and every k < 10 shows no harm; not supported if some k < 10 "
          "shows harm or some k >= 10 shows no harm; inconclusive otherwise (a k=1 result that is merely not "
          "significant does not show 'not at k=1').", hps_boundary, "hps"),
    Claim("CLIP-T robust throughout", "CLIP-T is not degraded by sink removal at any k.",
          "CLIP-T n.s. for all k in {1, 5, 10, 20, 50}.",
          "Every sink-removal row (all k): supported if each is non-inferior at the margin (an intersection-union "
          "test, so no multiplicity adjustment); not supported if any shows a drop with Holm-adjusted one-sided "
          "p < alpha across the rows and is not non-inferior; inconclusive otherwise.", clip_t_robust, "clip_t"),
    Claim("Perceptual shift is sink-specific", "The LPIPS shift from removing sinks exceeds that from removing "
          "an equal-budget random key set.", "LPIPS dd: k=1 +0.295 [+0.265, +0.323]; k=5 +0.332 [+0.308, +0.358]; "
          "p<1e-4.", "Per k: dd > 0 with its CI above 0 and one-sided p < alpha (the paper's rule). Supported if "
          "all k, not supported if none, inconclusive if some.", perceptual_sink_specific),
    Claim("Perceptual shift about 6x random", "The sink LPIPS shift is about 6x the random one.",
          "k=1: 0.347 vs 0.053 (6.5x); k=5: 0.436 vs 0.104 (4.2x).",
          f"Per k, the ratio of mean LPIPS (sink / random) with its paired bootstrap CI; \"about 6x\" is "
          f"[{ABOUT_6X[0]:g}, {ABOUT_6X[1]:g}] (within a factor 1.5 of 6; the paper's 6.5 and 4.2 lie inside). "
          f"The whole "
          f"CI decides: supported if it lies inside that range, not supported if it lies entirely outside, "
          f"inconclusive if it straddles an end. Several k: all must be supported.", perceptual_ratio),
]


# --- rendering --------------------------------------------------------------------------------
EVIDENCE_COLUMNS = [("experiment", "experiment"), ("condition", "condition"), ("k", "k"), ("n", "N"),
                    ("n_seeds", "seeds"), ("mean", "estimate"), ("ci_low", "CI low"), ("ci_high", "CI high"),
                    ("p_t_1s", "p one-sided (harm)"), ("margin", "margin"), ("p_noninferior", "p non-inferior"),
                    ("margin_needed", "non-inferior for margins above"),
                    ("ci_contains_zero", "paper's rule: CI vs 0"), ("verdict", "row verdict")]


def _cell(v, column: str) -> str:
    if column == "ci_contains_zero" and isinstance(v, (bool, np.bool_)):
        return "contains 0 (no effect)" if v else "excludes 0 (effect)"
    return cell(v, column)


def _sensitivity(claim: Claim, stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> list[str]:
    base = margins.of(claim.margin_metric)
    if not math.isfinite(base):
        return []
    cells = [f"{sig(base * f)} ({f:g}x)" for f in SENSITIVITY]
    verdicts = [claim.judge(stats, cfg, margins.scaled(f)).verdict for f in SENSITIVITY]
    return ["Verdict across margins (multiples of the margin in use):", "",
            "| margin | " + " | ".join(cells) + " |", "|---|" + "---|" * len(cells),
            "| verdict | " + " | ".join(verdicts) + " |", ""]


def _evidence(claim: Claim, v: Verdict, stats: pd.DataFrame, cfg: StatsConfig, margins: Margins) -> list[str]:
    """A verdict's evidence table and, for a claim with a margin, its verdict across margins."""
    if not len(v.rows):
        return []
    cols = [(c, h) for c, h in EVIDENCE_COLUMNS if c in v.rows.columns]
    sec = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    sec += ["| " + " | ".join(_cell(r[c], c) for c, _ in cols) + " |" for _, r in v.rows.iterrows()]
    sec.append("")
    if claim.margin_metric:
        sec += _sensitivity(claim, stats, cfg, margins)
    return sec


def key_number(v: Verdict) -> str:
    """The number beside a verdict in the side-by-side table: the estimate [CI] of the smallest-k
    evidence row whose own verdict is the claim's (any evidence row if none is), with its k."""
    if not len(v.rows):
        return ""
    rows = v.rows[v.rows["verdict"] == v.verdict] if "verdict" in v.rows else v.rows
    rows = (rows if len(rows) else v.rows).sort_values("k", kind="stable")
    r = rows.iloc[0]
    return f"k={whole(r['k'])}: {estimate(r['mean'], r.get('ci_low'), r.get('ci_high'))}"


def models_of(stats: pd.DataFrame) -> list[str]:
    """The models the stats rows hold, in order of first appearance."""
    if not len(stats) or "model" not in stats:
        return []
    return list(dict.fromkeys(stats["model"].dropna()))


def render_claims(stats: pd.DataFrame, cfg: StatsConfig, standin: bool, margins: Margins | None = None) -> str:
    """claims.md. With rows of several models, each claim is judged on each model's rows alone, with
    the same margins and by the claim's own rule, and a side-by-side table comes first."""
    margins = margins or resolve_margins(cfg, {})
    used = [f"- {m}: {sig(margins.of(m))} ({margins.sources[m]})" for m in NI_METRICS if m in margins.values]
    out = [notice_lines(standin).rstrip("\n"), "# Claims of the abstract: verdicts from this run", "",
           f"alpha = {cfg.alpha:g}; CIs: {cfg.ci_level:.0%} {cfg.ci_method} bootstrap ({cfg.bootstrap_resamples} "
           f"resamples) over prompts. Estimates are paired on (prompt, seed) and averaged over seeds per prompt. "
           f"The paper's numbers are quoted from its README and tables. The paper's own rule is shown beside ours: "
           f"a CI that contains 0 means \"no effect\" to the paper, whichever way the claim points.", "",
           "Non-inferiority margins (the largest harm that counts as none) and where each comes from:", *used, "",
           "Each evidence table gives the smallest margin at which the row would pass non-inferiority, and each "
           "claim that uses a margin shows its verdict across a range of margins.", ""]
    models = models_of(stats)
    if len(models) > 1:
        return _render_per_model(out, stats, models, cfg, margins)
    summary = ["| claim | verdict |", "|---|---|"]
    sections = []
    for i, claim in enumerate(CLAIMS, 1):
        v = claim.judge(stats, cfg, margins)
        summary.append(f"| {i}. {claim.title} | **{v.verdict}** |")
        sections += [f"## {i}. {claim.title}", "", f"- Claim: {claim.statement}", f"- Paper: {claim.paper}",
                     f"- Rule: {claim.rule}", f"- Verdict: **{v.verdict}**" + (f" ({v.detail})" if v.detail else ""),
                     ""]
        sections += _evidence(claim, v, stats, cfg, margins)
    return "\n".join([line for line in out if line is not None] + summary + [""] + sections).lstrip("\n") + "\n"


def _render_per_model(out: list[str], stats: pd.DataFrame, models: list[str], cfg: StatsConfig,
                      margins: Margins) -> str:
    own = {m: stats[stats["model"] == m] for m in models}
    out += ["Each claim is judged on each model's rows alone, with the same margins and by the rule stated "
            "for it. Each cell: the verdict, then the estimate [CI] of the smallest-k evidence row that "
            "carries it.", ""]
    summary = ["| claim | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    sections = []
    for i, claim in enumerate(CLAIMS, 1):
        verdicts = {m: claim.judge(own[m], cfg, margins) for m in models}
        cells = [f"**{v.verdict}**" + (f" ({key_number(v)})" if len(v.rows) else "") for v in verdicts.values()]
        summary.append(f"| {i}. {claim.title} | " + " | ".join(cells) + " |")
        sections += [f"## {i}. {claim.title}", "", f"- Claim: {claim.statement}", f"- Paper: {claim.paper}",
                     f"- Rule: {claim.rule}", ""]
        for m, v in verdicts.items():
            sections += [f"### {m}", "", f"- Verdict: **{v.verdict}**" + (f" ({v.detail})" if v.detail else ""), ""]
            sections += _evidence(claim, v, own[m], cfg, margins)
    return "\n".join([line for line in out if line is not None] + summary + [""] + sections).lstrip("\n") + "\n"


def write_claims(stats_paths, experiments: list[dict], stats_config: dict | None, out_path,
                 baseline_scores=()) -> str:
    """The file layer of the paper_claims rule: paper/claims.md from every experiment's stats, with
    margins from the seed-to-seed noise floor of `baseline_scores` (per-image baseline score files of
    experiments with two or more seeds) where there is one."""
    from ..io import write_text
    from .tables import read_stats
    cfg = StatsConfig.from_dict(stats_config)
    stats = combine_stats(read_stats(stats_paths), cfg)
    standin = any(e.get("standin") for e in experiments) or bool(
        len(stats) and "standin" in stats and stats["standin"].fillna(False).astype(bool).any())
    base = pd.concat([pd.read_parquet(p) for p in baseline_scores], ignore_index=True) if baseline_scores else \
        pd.DataFrame()
    text = render_claims(stats, cfg, standin, resolve_margins(cfg, seed_noise_floor(base)))
    write_text(out_path, text)
    return text
