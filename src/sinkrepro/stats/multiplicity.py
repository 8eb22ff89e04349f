"""Multiple-comparison adjustment of p-values; NaN entries stay NaN and are not counted."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .config import StatsConfig


def adjust_p(p, method: str) -> np.ndarray:
    """Adjusted p-values for one family: 'holm', 'bonferroni', 'fdr_bh' (Benjamini-Hochberg) or 'none'."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = q.size
    if m == 0:
        return out
    if method == "none":
        adj = q
    elif method == "bonferroni":
        adj = np.minimum(q * m, 1.0)
    elif method == "holm":
        order = np.argsort(q, kind="stable")
        stepped = np.maximum.accumulate(q[order] * (m - np.arange(m)))  # (m - i) * p_(i), monotone
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    elif method == "fdr_bh":
        order = np.argsort(q, kind="stable")
        scaled = q[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(scaled[::-1])[::-1]  # monotone from the largest down
        adj = np.empty(m)
        adj[order] = np.minimum(stepped, 1.0)
    else:
        raise ValueError(f"multiplicity method {method!r}; choose one of holm, bonferroni, fdr_bh, none")
    out[ok] = adj
    return out


def combine_stats(frames: Iterable[pd.DataFrame], cfg: StatsConfig) -> pd.DataFrame:
    """All experiments' stats rows, with `p_adj_paper` (cfg.across over every primary p)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    out["p_adj_paper"] = adjust_p(out["p"], cfg.across) if "p" in out else np.nan
    out["p_adj_paper_method"] = cfg.across
    return out
