"""Vectorised bootstrap CIs (percentile and BCa) for statistics of column means.

Every statistic here is a function of the per-unit column means (the mean, a ratio of means), so
a resample costs one gather-and-sum, and the jackknife for BCa's acceleration is closed-form.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.special import ndtr, ndtri

from .numeric import is_constant

Statistic = Callable[[np.ndarray], np.ndarray]  # column means [..., p] -> [...]


def mean_statistic(means: np.ndarray) -> np.ndarray:
    return means[..., 0]


def ratio_statistic(means: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return means[..., 0] / means[..., 1]


def seeded_rng(seed: int, *key: object) -> np.random.Generator:
    """A generator that depends only on (seed, key), never on the order comparisons are run."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([seed, int.from_bytes(digest[:8], "little")]))


@dataclass(frozen=True)
class BootstrapCI:
    estimate: float
    pct_low: float
    pct_high: float
    bca_low: float
    bca_high: float
    resamples: int
    note: str = ""


def bootstrap_ci(columns: np.ndarray, statistic: Statistic = mean_statistic, *, resamples: int = 10_000,
                 level: float = 0.95, rng: np.random.Generator, chunk: int = 2048) -> BootstrapCI:
    """Percentile and BCa CIs of statistic(column means), resampling rows (units) with replacement.

    columns: [n, p] per-unit values (one row per prompt).
    """
    x = np.asarray(columns, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    nan = float("nan")
    if n < 2:
        return BootstrapCI(nan, nan, nan, nan, nan, resamples, f"n={n}: a bootstrap needs at least 2 units")
    estimate = float(statistic(x.mean(axis=0)))
    boot = np.empty(resamples)  # [B]
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))  # [b, n]
        boot[start:stop] = statistic(x[idx].mean(axis=1))  # x[idx]: [b, n, p]
    if not np.all(np.isfinite(boot)) or not np.isfinite(estimate):
        return BootstrapCI(estimate, nan, nan, nan, nan, resamples, "statistic undefined on some resamples")
    tail = (1 - level) / 2
    pct_low, pct_high = np.quantile(boot, [tail, 1 - tail])
    if is_constant(boot):
        return BootstrapCI(estimate, float(pct_low), float(pct_high), nan, nan, resamples,
                           "zero variance: BCa undefined")
    # bias correction: share of resamples below the estimate (ties count half)
    below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / resamples
    z0 = ndtri(below)
    # acceleration from the closed-form jackknife of column means
    loo = (x.sum(axis=0) - x) / (n - 1)  # [n, p]
    jack = statistic(loo)  # [n]
    dev = jack.mean() - jack
    denom = 6.0 * np.sum(dev ** 2) ** 1.5
    accel = np.sum(dev ** 3) / denom if denom > 0 else 0.0
    if not np.isfinite(z0):
        return BootstrapCI(estimate, float(pct_low), float(pct_high), nan, nan, resamples,
                           "all resamples on one side of the estimate: BCa undefined")
    z = ndtri(np.array([tail, 1 - tail]))
    adjusted = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    bca_low, bca_high = np.quantile(boot, adjusted)
    return BootstrapCI(estimate, float(pct_low), float(pct_high), float(bca_low), float(bca_high), resamples)
