"""paper/claims.md: each claim of the abstract, the paper's numbers, and this run's verdict.

A verdict is `supported`, `not supported` or `inconclusive` by the rule written next to it, or
`not run in this config` when no experiment produced the rows the rule reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from ..provenance import notice_lines
from ..stats.config import StatsConfig
from ..stats.multiplicity import adjust_p

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_RUN = "supported", "not supported", "inconclusive", "not run in this config"
RATIO_RANGE = (4.0, 9.0)  # "about 6x": within a factor 1.5 of 6 (the paper's own ratios are 6.5 and 4.2)
BOUNDARY_K = 10


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
    judge: Callable[[pd.DataFrame, StatsConfig], Verdict]


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
    def judge(stats: pd.DataFrame, cfg: StatsConfig) -> Verdict:
        rows = _rows(stats, "delta", metric, k=1)
        if rows.empty:
            return Verdict(NOT_RUN)
        rows["verdict"] = _non_degradation(rows, cfg)
        return Verdict(_combine(rows["verdict"]), rows)
    return judge


def _sink_specific(r, alpha: float) -> bool:
    """The paper's sink-specificity rule: the effect is in the harm/shift direction, the CI excludes 0,
    and the one-sided p < alpha."""
    if not _lt(r["p_t_1s"], alpha):
        return False
    harm_is_negative = r.get("alternative_1s", "less") == "less"
    return r["ci_high"] < 0 if harm_is_negative else r["ci_low"] > 0


def hps_boundary(stats: pd.DataFrame, cfg: StatsConfig) -> Verdict:
    rows, basis = _rows(stats, "delta_delta", "hps"), "delta_delta"
    if rows.empty:
        rows, basis = _rows(stats, "delta", "hps"), "delta (no sink-random contrast in this config)"
    if rows.empty or not (rows["k"] >= BOUNDARY_K).any():
        return Verdict(NOT_RUN, detail="needs HPS rows at k >= 10")
    rows["sink_specific_harm"] = rows.apply(_sink_specific, axis=1, alpha=cfg.alpha)
    high, low = rows[rows["k"] >= BOUNDARY_K], rows[rows["k"] < BOUNDARY_K]
    if low["sink_specific_harm"].any() or not high["sink_specific_harm"].any():
        verdict = NOT_SUPPORTED
    elif high["sink_specific_harm"].all():
        verdict = SUPPORTED
    else:
        verdict = INCONCLUSIVE
    rows["verdict"] = ["harm" if h else "no harm" for h in rows["sink_specific_harm"]]
    return Verdict(verdict, rows, f"basis: {basis}")


def clip_t_robust(stats: pd.DataFrame, cfg: StatsConfig) -> Verdict:
    rows = _rows(stats, "delta", "clip_t")
    if rows.empty:
        return Verdict(NOT_RUN)
    rows["p_t_1s_holm"] = adjust_p(rows["p_t_1s"], "holm")
    def one(r):
        if _lt(r["p_noninferior"], cfg.alpha):
            return SUPPORTED
        return NOT_SUPPORTED if _lt(r["p_t_1s_holm"], cfg.alpha) else INCONCLUSIVE
    rows["verdict"] = rows.apply(one, axis=1)
    ks = sorted(rows["k"].dropna().unique())
    return Verdict(_combine(rows["verdict"]), rows, f"k tested: {', '.join(f'{k:g}' for k in ks)}")


def perceptual_sink_specific(stats: pd.DataFrame, cfg: StatsConfig) -> Verdict:
    rows = _rows(stats, "delta_delta", "lpips")
    if rows.empty:
        return Verdict(NOT_RUN)
    specific = rows.apply(_sink_specific, axis=1, alpha=cfg.alpha)
    rows["verdict"] = [SUPPORTED if s else NOT_SUPPORTED for s in specific]
    verdict = SUPPORTED if specific.all() else NOT_SUPPORTED if not specific.any() else INCONCLUSIVE
    return Verdict(verdict, rows)


def perceptual_ratio(stats: pd.DataFrame, cfg: StatsConfig) -> Verdict:
    rows = _rows(stats, "ratio", "lpips")
    if rows.empty:
        return Verdict(NOT_RUN)
    lo, hi = RATIO_RANGE
    def one(r):
        if lo <= r["mean"] <= hi and r["ci_low"] > 1:
            return SUPPORTED
        if r["ci_high"] < lo or r["ci_low"] > hi:
            return NOT_SUPPORTED
        return INCONCLUSIVE
    rows["verdict"] = rows.apply(one, axis=1)
    return Verdict(_combine(rows["verdict"]), rows)


NI_RULE = ("Per sink-removal row at k=1 (select=top, all prompts): supported if non-inferiority at the margin "
           "rejects (p_noninferior < alpha: a drop of at least delta is ruled out); not supported if the one-sided "
           "paired t shows a drop (p_t_1s < alpha) without non-inferiority; inconclusive otherwise. Several rows "
           "(experiments/presets): supported only if all are, not supported if any is.")
CLAIMS = [
    Claim("Non-degradation at k=1: CLIP-T", "Removing the top attention sink (k=1) does not degrade text-image "
          "alignment (CLIP-T).", "CLIP-T 95% CI contains 0 for A1-A3 (N=553); informal |dCLIP| <= 0.01.",
          NI_RULE, non_degradation("clip_t")),
    Claim("Non-degradation at k=1: ImageReward", "Removing the top sink (k=1) does not degrade ImageReward.",
          "Claimed as non-degradation (CI contains 0); no ImageReward number in the reference notes.",
          NI_RULE, non_degradation("imagereward")),
    Claim("Non-degradation at k=1: HPS-v2", "Removing the top sink (k=1) does not degrade HPS-v2.",
          "HPS dd at k=1: -0.002 (n.s.).", NI_RULE, non_degradation("hps")),
    Claim("HPS-v2 boundary at k>=10", "HPS-v2 drops below the equal-budget random control once k >= 10, "
          "but not at k=1.", "HPS dd: k=1 -0.002 (n.s.); k=10 -0.005 [-0.008, -0.001], p=.007; "
          "k=50 -0.020 [-0.026, -0.013], p<1e-4.",
          "Per k, sink-specific harm = the paper's rule: dd in the harm direction, its CI excluding 0 and "
          "one-sided p < alpha (raw p, as the paper). Supported if every k >= 10 shows it and no k < 10 does; "
          "not supported if no k >= 10 shows it or some k < 10 does; inconclusive otherwise.", hps_boundary),
    Claim("CLIP-T robust throughout", "CLIP-T is not degraded by sink removal at any k.",
          "CLIP-T n.s. for all k in {1, 5, 10, 20, 50}.",
          "Every sink-removal row (all k): supported if each is non-inferior at the margin (an intersection-union "
          "test, so no multiplicity adjustment); not supported if any shows a drop with Holm-adjusted one-sided "
          "p < alpha across the rows and is not non-inferior; inconclusive otherwise.", clip_t_robust),
    Claim("Perceptual shift is sink-specific", "The LPIPS shift from removing sinks exceeds that from removing "
          "an equal-budget random key set.", "LPIPS dd: k=1 +0.295 [+0.265, +0.323]; k=5 +0.332 [+0.308, +0.358]; "
          "p<1e-4.", "Per k: dd > 0 with its CI above 0 and one-sided p < alpha (the paper's rule). Supported if "
          "all k, not supported if none, inconclusive if some.", perceptual_sink_specific),
    Claim("Perceptual shift about 6x random", "The sink LPIPS shift is about 6x the random one.",
          "k=1: 0.347 vs 0.053 (6.5x); k=5: 0.436 vs 0.104 (4.2x).",
          f"Per k, the ratio of mean LPIPS (sink / random) with a paired bootstrap CI: supported if the estimate "
          f"lies in [{RATIO_RANGE[0]:g}, {RATIO_RANGE[1]:g}] (within 1.5x of 6) and the CI is above 1; not supported "
          f"if the CI lies outside that range; inconclusive otherwise. Several k: all must be supported.",
          perceptual_ratio),
]


# --- rendering --------------------------------------------------------------------------------
EVIDENCE_COLUMNS = [("experiment", "experiment"), ("condition", "condition"), ("k", "k"), ("n", "N"),
                    ("n_seeds", "seeds"), ("mean", "estimate"), ("ci_low", "CI low"), ("ci_high", "CI high"),
                    ("p_t_1s", "p one-sided"), ("p_noninferior", "p non-inferior"), ("p_tost", "p TOST"),
                    ("tost_margin", "margin"), ("ci_contains_zero", "paper rule: CI contains 0"),
                    ("verdict", "row verdict")]


P_COLUMNS = {"p_t_1s", "p_noninferior", "p_tost"}


def _cell(v, column: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "--"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "<1e-4" if column in P_COLUMNS and v < 1e-4 else f"{v:.4g}"
    return str(v)


def render_claims(stats: pd.DataFrame, cfg: StatsConfig, standin: bool) -> str:
    margins = ", ".join(f"{m} {v:g}" for m, v in sorted(cfg.margins.items()))
    out = [notice_lines(standin).rstrip("\n"), "# Claims of the abstract: verdicts from this run", "",
           f"alpha = {cfg.alpha:g}; equivalence/non-inferiority margins: {margins}; CIs: {cfg.ci_level:.0%} "
           f"{cfg.ci_method} bootstrap ({cfg.bootstrap_resamples} resamples) over prompts. Estimates are paired "
           f"on (prompt, seed) and averaged over seeds per prompt. The paper's numbers are quoted from its "
           f"README/tables; its own rule (\"the CI contains 0\") is shown beside ours.", ""]
    summary = ["| claim | verdict |", "|---|---|"]
    sections = []
    for i, claim in enumerate(CLAIMS, 1):
        v = claim.judge(stats, cfg)
        summary.append(f"| {i}. {claim.title} | **{v.verdict}** |")
        sec = [f"## {i}. {claim.title}", "", f"- Claim: {claim.statement}", f"- Paper: {claim.paper}",
               f"- Rule: {claim.rule}", f"- Verdict: **{v.verdict}**" + (f" ({v.detail})" if v.detail else ""), ""]
        if len(v.rows):
            cols = [(c, h) for c, h in EVIDENCE_COLUMNS if c in v.rows.columns]
            sec += ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
            sec += ["| " + " | ".join(_cell(r[c], c) for c, _ in cols) + " |" for _, r in v.rows.iterrows()]
            sec.append("")
        sections += sec
    return "\n".join([line for line in out if line is not None] + summary + [""] + sections).lstrip("\n") + "\n"


def write_claims(stats_paths, experiments: list[dict], stats_config: dict | None, out_path) -> str:
    """The file layer of the paper_claims rule: paper/claims.md from every experiment's stats."""
    from ..io import write_text
    from .tables import combine_stats, read_stats
    cfg = StatsConfig.from_dict(stats_config)
    stats = combine_stats(read_stats(stats_paths), cfg)
    standin = any(e.get("standin") for e in experiments) or bool(
        len(stats) and "standin" in stats and stats["standin"].fillna(False).astype(bool).any())
    text = render_claims(stats, cfg, standin)
    write_text(out_path, text)
    return text
