"""The test battery for one vector of per-unit paired differences.

`difference_battery` returns a flat dict of the columns in docs/contracts.md "Statistics":
t, Wilcoxon, d_z, bootstrap CIs, TOST. Undefined statistics are NaN and `note` says why.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from .bootstrap import bootstrap_ci, mean_statistic, seeded_rng
from .config import StatsConfig
from .numeric import is_constant

NAN = math.nan


def t_test(d: np.ndarray, alternative: str) -> dict:
    """One-sample t of mean(d) = 0: two-sided and one-sided in `alternative`."""
    n = d.size
    out = dict(mean=float(d.mean()) if n else NAN, sd=NAN, se=NAN, dz=NAN, t=NAN, df=NAN, p_t=NAN, p_t_1s=NAN)
    if n < 2:
        return out | {"note": f"n={n}: tests need at least 2 units"}
    sd = 0.0 if is_constant(d) else float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    out.update(sd=sd, se=se, df=float(n - 1))
    if sd == 0:
        return out | {"note": "zero variance: t, d_z and TOST undefined"}
    t = out["mean"] / se
    out.update(dz=out["mean"] / sd, t=t, p_t=float(2 * sps.t.sf(abs(t), n - 1)),
               p_t_1s=float(sps.t.cdf(t, n - 1) if alternative == "less" else sps.t.sf(t, n - 1)))
    return out | {"note": ""}


def tost(mean: float, se: float, df: float, margin: float, direction: str) -> dict:
    """Two one-sided t-tests of |mean| < margin; p_noninferior is the harm-side test."""
    out = dict(tost_margin=margin, p_tost=NAN, p_tost_lower=NAN, p_tost_upper=NAN, p_noninferior=NAN,
               equivalent=None)
    if not (math.isfinite(margin) and math.isfinite(se) and se > 0):
        return out
    p_lower = float(sps.t.sf((mean + margin) / se, df))   # H0: mean <= -margin
    p_upper = float(sps.t.cdf((mean - margin) / se, df))  # H0: mean >= +margin
    return dict(tost_margin=margin, p_tost=max(p_lower, p_upper), p_tost_lower=p_lower, p_tost_upper=p_upper,
                p_noninferior=p_lower if direction == "less" else p_upper, equivalent=None)


def wilcoxon(d: np.ndarray, alternative: str) -> dict:
    """Wilcoxon signed-rank (scipy, zeros dropped): statistic min(W+, W-), two- and one-sided p."""
    out = dict(w=NAN, p_w=NAN, p_w_1s=NAN)
    if d.size < 2 or is_constant(d) and d[0] == 0:
        return out | {"note": "all differences zero (or n<2): Wilcoxon undefined"}
    two = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    one = sps.wilcoxon(d, zero_method="wilcox", alternative=alternative)
    return dict(w=float(two.statistic), p_w=float(two.pvalue), p_w_1s=float(one.pvalue), note="")


def difference_battery(d, *, margin: float, direction: str, cfg: StatsConfig, key: tuple) -> dict:
    """All per-unit tests of `d` (one value per prompt). `key` seeds the bootstrap deterministically."""
    d = np.asarray(d, dtype=float)
    notes = []
    out = t_test(d, direction)
    notes.append(out.pop("note"))
    out.update(tost(out["mean"], out["se"], out["df"], margin, direction))
    if math.isfinite(out["p_tost"]):
        out["equivalent"] = bool(out["p_tost"] < cfg.alpha)
    elif not math.isfinite(margin):
        notes.append("no equivalence margin for this row")
    w = wilcoxon(d, direction)
    notes.append(w.pop("note"))
    out.update(w)
    out.update(ci_columns(d[:, None], mean_statistic, cfg, key, notes))
    out["ci_contains_zero"] = (bool(out["ci_pct_low"] <= 0 <= out["ci_pct_high"])
                               if math.isfinite(out["ci_pct_low"]) else None)
    out["alternative_1s"] = direction
    out["note"] = "; ".join(dict.fromkeys(n for n in notes if n))
    return out


def ci_columns(columns: np.ndarray, statistic, cfg: StatsConfig, key: tuple, notes: list) -> dict:
    ci = bootstrap_ci(columns, statistic, resamples=cfg.bootstrap_resamples, level=cfg.ci_level,
                      rng=seeded_rng(cfg.seed, *key))
    notes.append(ci.note)
    low, high = (ci.bca_low, ci.bca_high) if cfg.ci_method == "bca" else (ci.pct_low, ci.pct_high)
    return dict(ci_low=low, ci_high=high, ci_method=cfg.ci_method, ci_level=cfg.ci_level,
                ci_pct_low=ci.pct_low, ci_pct_high=ci.pct_high, ci_bca_low=ci.bca_low, ci_bca_high=ci.bca_high,
                n_resamples=ci.resamples)
