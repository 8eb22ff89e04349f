"""Statistics settings (`config.stats`), validated with errors that name the field."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

ADJUST_METHODS = ("holm", "bonferroni", "fdr_bh", "none")
CI_METHODS = ("bca", "percentile")

# Equivalence margins on each metric's own scale (docs/contracts.md "Statistics config"), and where
# each comes from. Claim verdicts prefer the seed-to-seed noise floor measured in the run.
DEFAULT_MARGINS = MappingProxyType({"clip_t": 0.01, "hps": 0.005, "imagereward": 0.1, "lpips": 0.05})
DEFAULT_MARGIN_SOURCES = MappingProxyType({
    "clip_t": "the paper's informal |dCLIP-T| <= 0.01, fixed in its scripts before any comparison",
    "hps": "no published minimal important difference; 0.005 is the size of the paper's own k=10 effect, "
           "so give the run two baseline seeds to measure the noise floor, or set a margin from outside",
    "imagereward": "project convention, no published source",
    "lpips": "project convention, no published source",
})

# The direction in which a change means harm (alignment/preference drops) or a shift (distance
# grows). One-sided tests and non-inferiority use it.
DEFAULT_DIRECTIONS = MappingProxyType({
    "clip_t": "less", "hps": "less", "imagereward": "less", "lpips": "greater", "fid": "greater",
    "feat_l2": "greater",
})


@dataclass(frozen=True)
class StatsConfig:
    bootstrap_resamples: int = 10_000
    ci_level: float = 0.95
    ci_method: str = "bca"
    alpha: float = 0.05
    seed: int = 0
    categories: bool = True
    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    margin_sources: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MARGIN_SOURCES))
    directions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DIRECTIONS))
    within: str = "holm"
    across: str = "fdr_bh"

    def margin(self, metric: str) -> float:
        return float(self.margins.get(metric, math.nan))

    def margin_source(self, metric: str) -> str:
        return self.margin_sources.get(metric, "no source given (config.stats.margin_sources)")

    def direction(self, metric: str) -> str:
        """Harm direction of `metric`; unknown metrics count as higher-is-better."""
        return self.directions.get(metric, "less")

    @classmethod
    def from_dict(cls, raw: Mapping | None, where: str = "config.stats") -> "StatsConfig":
        raw = dict(raw or {})
        known = {"bootstrap_resamples", "ci_level", "ci_method", "alpha", "seed", "categories",
                 "margins", "margin_sources", "directions", "multiplicity"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; valid keys are {sorted(known)}")
        kw: dict = {}
        if "bootstrap_resamples" in raw:
            b = raw["bootstrap_resamples"]
            if not isinstance(b, int) or b < 100:
                raise ValueError(f"{where}.bootstrap_resamples: {b!r}; use an integer >= 100 (10000 is the default)")
            kw["bootstrap_resamples"] = b
        for key in ("ci_level", "alpha"):
            if key in raw:
                v = raw[key]
                if not isinstance(v, (int, float)) or not 0 < v < 1:
                    raise ValueError(f"{where}.{key}: {v!r}; use a number strictly between 0 and 1")
                kw[key] = float(v)
        if "ci_method" in raw:
            if raw["ci_method"] not in CI_METHODS:
                raise ValueError(f"{where}.ci_method: {raw['ci_method']!r}; choose one of {list(CI_METHODS)}")
            kw["ci_method"] = raw["ci_method"]
        if "seed" in raw:
            if not isinstance(raw["seed"], int) or raw["seed"] < 0:
                raise ValueError(f"{where}.seed: {raw['seed']!r}; use a non-negative integer")
            kw["seed"] = raw["seed"]
        if "categories" in raw:
            kw["categories"] = bool(raw["categories"])
        margins = dict(DEFAULT_MARGINS)
        for metric, m in (raw.get("margins") or {}).items():
            if not isinstance(m, (int, float)) or m <= 0:
                raise ValueError(f"{where}.margins.{metric}: {m!r}; use a positive number on the metric's scale")
            margins[metric] = float(m)
        kw["margins"] = margins
        sources = dict(DEFAULT_MARGIN_SOURCES)
        for metric, text in (raw.get("margin_sources") or {}).items():
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}.margin_sources.{metric}: {text!r}; say in words where the margin comes from")
            sources[metric] = text
        for metric in (raw.get("margins") or {}):
            if metric not in (raw.get("margin_sources") or {}):
                sources[metric] = "set in the config without a stated source (add config.stats.margin_sources)"
        kw["margin_sources"] = sources
        directions = dict(DEFAULT_DIRECTIONS)
        for metric, d in (raw.get("directions") or {}).items():
            if d not in ("less", "greater"):
                raise ValueError(f"{where}.directions.{metric}: {d!r}; use 'less' (higher is better) or 'greater'")
            directions[metric] = d
        kw["directions"] = directions
        multiplicity = dict(raw.get("multiplicity") or {})
        for key in multiplicity:
            if key not in ("within", "across"):
                raise ValueError(f"{where}.multiplicity.{key}: unknown key; use 'within' and 'across'")
            if multiplicity[key] not in ADJUST_METHODS:
                raise ValueError(f"{where}.multiplicity.{key}: {multiplicity[key]!r}; choose one of {list(ADJUST_METHODS)}")
            kw[key] = multiplicity[key]
        return cls(**kw)
