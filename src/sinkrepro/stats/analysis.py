"""One experiment's score rows -> one stats row per comparison (docs/contracts.md "Statistics")."""
from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict

import numpy as np
import pandas as pd

from sinkrepro.vocab import SET_LEVEL_METRICS, per_image_metrics

from .bootstrap import ratio_statistic
from .config import StatsConfig
from .mixed import EMPTY as EMPTY_LMM, random_intercept_fit
from .multiplicity import adjust_p
from .paired import NAN, ci_columns, difference_battery
from .pairing import Paired, clean_scores, own_rows, pair_values, per_prompt_matrix, prompt_slopes

PAPER_DOSES = (10.0, 50.0)  # the paper's two-dose contrast (compute_dose_trend: k50 vs k10)


def analyze_experiment(scores: pd.DataFrame, experiment: dict, cfg: StatsConfig,
                       prompts: pd.DataFrame | None = None) -> pd.DataFrame:
    """All comparisons of one resolved experiment (see the experiment dict in the workflow docs)."""
    if "metric" not in scores.columns:
        raise ValueError("score rows: missing column 'metric'; see docs/contracts.md 'Scores'")
    for key in ("name", "model", "baseline", "conditions"):
        if key not in experiment:
            raise ValueError(f"experiment: missing key {key!r}; pass the dict resolved by sinkrepro.grid")
    set_level = scores[scores["metric"].isin(SET_LEVEL_METRICS)]
    image_level = own_rows(scores[~scores["metric"].isin(SET_LEVEL_METRICS)], experiment.get("prompt_ids"),
                           experiment.get("seeds"))
    image_level = clean_scores(image_level, prompts) if len(image_level) else image_level.assign(usable=True)
    ctx = _Context(experiment, cfg, image_level)
    rows: list[dict] = []
    for metric in ctx.metrics:
        rows += ctx.deltas(metric)
        rows += ctx.contrasts(metric)
        rows += ctx.doses(metric)
    rows += fid_rows(set_level, experiment, ctx)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["standin"] = bool(experiment.get("standin", False)) or _any_standin(scores)
    return add_adjustments(frame, cfg)


def _any_standin(scores: pd.DataFrame) -> bool:
    return "standin" in scores.columns and bool(scores["standin"].fillna(False).astype(bool).any())


class _Context:
    def __init__(self, experiment: dict, cfg: StatsConfig, scores: pd.DataFrame):
        self.exp, self.cfg, self.scores = experiment, cfg, scores
        self.name, self.baseline = experiment["name"], experiment["baseline"]
        self.conditions = {c["condition"]: c for c in experiment["conditions"]}
        self.families = family_names(experiment["conditions"])
        # the per-image score metrics behind the configured ones (fid adds its paired feature distance)
        wanted = per_image_metrics(experiment.get("metrics") or []) or sorted(scores["metric"].unique())
        present = set(scores["metric"])
        self.metrics = [m for m in wanted if m in present and m not in SET_LEVEL_METRICS]

    # --- row identity -------------------------------------------------------------------
    def identity(self, metric: str, kind: str, condition: str, reference: str, basis: str | None = None) -> dict:
        c = self.conditions.get(condition, {})
        return dict(experiment=self.name, model=self.exp["model"], metric=metric, kind=kind,
                    basis=basis or kind, condition=condition, reference=reference,
                    label=c.get("label", ""), preset=c.get("preset", ""),
                    select=(c.get("spec") or {}).get("select", ""), k=_k(c),
                    layers=",".join(str(x) for x in c.get("layers") or []),
                    sampler=json.dumps(c.get("sampler") or {}, sort_keys=True),
                    family=self.families.get(condition, ""))

    # --- Δ and ΔΔ ----------------------------------------------------------------------
    def deltas(self, metric: str) -> list[dict]:
        return [row for slug in self.conditions
                for row in self.comparison_rows(metric, "delta", slug, self.baseline)]

    def contrasts(self, metric: str) -> list[dict]:
        rows = []
        for contrast in self.exp.get("contrasts") or []:
            slug, control = contrast["condition"], contrast["control"]
            paired = pair_values(self.scores, metric, slug, control)
            rows += self.comparison_rows(metric, "delta_delta", slug, control, paired)
            if _is_pairwise(self.scores, metric, slug):
                rows.append(self.ratio_row(metric, slug, control, paired))
        return rows

    def comparison_rows(self, metric: str, kind: str, slug: str, reference: str,
                        paired: Paired | None = None) -> list[dict]:
        """The `all` row and, with several categories, one row per GenEval category."""
        paired = paired or pair_values(self.scores, metric, slug, reference)
        ident = self.identity(metric, kind, slug, reference)
        rows = [self.battery_row(ident, paired, "all")]
        categories = paired.pairs["category"].dropna().unique()
        if self.cfg.categories and len(categories) > 1:
            for cat in sorted(categories):
                sub = Paired(paired.pairs[paired.pairs["category"] == cat], 0, 0)
                rows.append(self.battery_row(ident, sub, cat))
        return rows

    def battery_row(self, ident: dict, paired: Paired, category: str, lmm: bool = True) -> dict:
        metric = ident["metric"]
        pp = paired.per_prompt()
        key = (ident["experiment"], ident["kind"], metric, ident["condition"], ident["reference"], category)
        row = ident | dict(category=category, **_counts(paired, len(pp)),
                           mean_condition=_mean(pp["x"]), mean_reference=_mean(pp["y"]))
        stats = difference_battery(pp["d"].to_numpy(float), margin=self.cfg.margin(metric),
                                   direction=self.cfg.direction(metric), cfg=self.cfg, key=key)
        row |= stats
        if not lmm or category != "all":
            row |= EMPTY_LMM | {"lmm_note": "not fitted for this row (category breakdowns use the prompt-level tests)"}
        elif len(paired.pairs):
            row |= random_intercept_fit(paired.pairs["d"].to_numpy(float), paired.pairs["prompt_id"].to_numpy(),
                                        level=self.cfg.ci_level)
        else:
            row |= EMPTY_LMM | {"lmm_note": "no pairs"}
        row["note"] = "; ".join(n for n in (paired.note, row["note"]) if n)
        return row

    def ratio_row(self, metric: str, slug: str, control: str, paired: Paired) -> dict:
        """Ratio of mean metric (condition / control), e.g. LPIPS(sink) / LPIPS(random)."""
        pp = paired.per_prompt()
        ident = self.identity(metric, "ratio", slug, control)
        notes = [paired.note]
        row = ident | dict(category="all", **_counts(paired, len(pp)),
                           mean_condition=_mean(pp["x"]), mean_reference=_mean(pp["y"]))
        row |= ci_columns(pp[["x", "y"]].to_numpy(float), ratio_statistic, self.cfg,
                          (self.name, "ratio", metric, slug, control), notes)
        row["mean"] = float(ratio_statistic(pp[["x", "y"]].to_numpy(float).mean(axis=0))) if len(pp) else NAN
        row["alternative_1s"] = self.cfg.direction(metric)
        row["note"] = "; ".join(n for n in notes if n)
        return row

    # --- dose response -------------------------------------------------------------------
    def doses(self, metric: str) -> list[dict]:
        rows = []
        delta_sets = [(c, self.baseline) for c in self.conditions]
        contrast_sets = [(c["condition"], c["control"]) for c in self.exp.get("contrasts") or []]
        for basis, sets in (("delta", delta_sets), ("delta_delta", contrast_sets)):
            families: dict[str, dict[float, tuple[str, str]]] = defaultdict(dict)
            for slug, ref in sets:
                c = self.conditions.get(slug)
                k = _k(c or {})
                if c is not None and math.isfinite(k) and k > 0:
                    families[self.families[slug]][k] = (slug, ref)
            for family, by_k in families.items():
                if len(by_k) < 2:
                    continue
                paired = {k: pair_values(self.scores, metric, s, r) for k, (s, r) in sorted(by_k.items())}
                rows.append(self.dose_row(metric, basis, family, by_k, paired))
                if all(k in by_k for k in PAPER_DOSES):
                    rows.append(self.dose_contrast_row(metric, basis, by_k, paired))
        return rows

    def dose_row(self, metric: str, basis: str, family: str, by_k: dict, paired: dict) -> dict:
        per_prompt = {k: p.per_prompt() for k, p in paired.items()}
        matrix = per_prompt_matrix(per_prompt)  # [prompt, k]
        slopes = prompt_slopes(matrix)
        first = by_k[min(by_k)]
        reference = first[1] if basis == "delta" else self.families.get(first[1], first[1])
        ident = self.identity(metric, "dose", family, reference, basis)
        ident.update(k=NAN, family=family, label=self.conditions[first[0]].get("label", ""))
        doses = ",".join(f"{k:g}" for k in sorted(by_k))
        key = (self.name, "dose", basis, metric, family)
        row = ident | dict(category="all", n=len(slopes),
                           n_seeds=max(p.pairs["seed"].nunique() for p in paired.values()),
                           n_pairs=sum(len(p.pairs) for p in paired.values()),
                           n_excluded=sum(p.n_excluded for p in paired.values()),
                           n_unpaired=sum(p.n_unpaired for p in paired.values()),
                           mean_condition=NAN, mean_reference=NAN)
        row |= difference_battery(slopes, margin=NAN, direction=self.cfg.direction(metric), cfg=self.cfg, key=key)
        long = matrix.stack().dropna().rename("d").reset_index()
        long.columns = ["prompt_id", "k", "d"]
        row |= random_intercept_fit(long["d"].to_numpy(float), long["prompt_id"].to_numpy(),
                                    np.log(long["k"].to_numpy(float)), level=self.cfg.ci_level)
        row["note"] = "; ".join(n for n in (f"slope per unit ln k; doses {doses}", row["note"]) if n)
        return row

    def dose_contrast_row(self, metric: str, basis: str, by_k: dict, paired: dict) -> dict:
        lo, hi = PAPER_DOSES
        a, b = paired[hi].per_prompt(), paired[lo].per_prompt()
        both = a.merge(b, on=["prompt_id"], suffixes=("_hi", "_lo"))
        pairs = pd.DataFrame(dict(prompt_id=both["prompt_id"], seed=0, category=both["category_hi"],
                                  x=both["d_hi"], y=both["d_lo"], d=both["d_hi"] - both["d_lo"]))
        ident = self.identity(metric, "dose_contrast", by_k[hi][0], by_k[lo][0], basis)
        row = self.battery_row(ident, Paired(pairs, 0, 0), "all", lmm=False)
        row.update(n_seeds=paired[hi].pairs["seed"].nunique(), n_pairs=len(paired[hi].pairs) + len(paired[lo].pairs),
                   n_excluded=paired[hi].n_excluded + paired[lo].n_excluded,
                   lmm_note="not fitted: the paper's two-dose contrast")
        row["note"] = "; ".join(n for n in ("paper's two-dose contrast k50 - k10 (not a trend test)", row["note"]) if n)
        return row


def family_id(c: dict) -> str:
    """Readable dose-family name: conditions that differ only in k share it."""
    sampler = json.dumps(c.get("sampler") or {}, sort_keys=True)
    layers = ",".join(str(x) for x in c.get("layers") or [])
    name = f"{c.get('preset', '')}|L{layers}|{c.get('label', '')}"
    return name + (f"|{sampler}" if sampler != "{}" else "")


def family_names(conditions: list[dict]) -> dict[str, str]:
    """condition slug -> dose family; specs that differ beyond k but share a readable name get a hash."""
    def full_key(c: dict) -> str:
        spec = {k: v for k, v in (c.get("spec") or {}).items() if k != "k"}
        return json.dumps([family_id(c), spec], sort_keys=True, default=str)
    keys = {c["condition"]: full_key(c) for c in conditions}
    by_name: dict[str, set] = defaultdict(set)
    for c in conditions:
        by_name[family_id(c)].add(keys[c["condition"]])
    out = {}
    for c in conditions:
        name = family_id(c)
        if len(by_name[name]) > 1:
            name += "#" + hashlib.sha256(keys[c["condition"]].encode()).hexdigest()[:6]
        out[c["condition"]] = name
    return out


def _k(c: dict) -> float:
    k = c.get("k")
    return float(k) if k is not None else NAN


def _mean(s: pd.Series) -> float:
    return float(s.mean()) if len(s) else NAN


def _is_pairwise(scores: pd.DataFrame, metric: str, slug: str) -> bool:
    rows = scores[(scores["metric"] == metric) & (scores["condition"] == slug)]
    return bool(len(rows)) and rows["reference_condition"].notna().all()


def _counts(paired: Paired, n_units: int) -> dict:
    return dict(n=n_units, n_seeds=int(paired.pairs["seed"].nunique()), n_pairs=len(paired.pairs),
                n_excluded=paired.n_excluded, n_unpaired=paired.n_unpaired)


def fid_rows(fid: pd.DataFrame, experiment: dict, ctx: "_Context") -> list[dict]:
    """Set-level FID rows, carried as they are, with the condition's identity (label, preset, sampler)."""
    rows = []
    for r in fid.to_dict("records"):
        reference = r.get("reference_condition") or ""
        rows.append(ctx.identity("fid", "fid", r["condition"], reference)
                    | dict(model=r.get("model", experiment["model"]), category="all",
                           seed=float(r.get("seed", NAN)), reference_seed=float(r.get("reference_seed", NAN)),
                           n=int(r.get("n_images", 0) or 0), mean=float(r["value"]),
                           note="; ".join(x for x in (f"set-level FID, {int(r.get('dim', 0) or 0)}-d features",
                                                      r.get("note") or "") if x)))
    return rows


def add_adjustments(frame: pd.DataFrame, cfg: StatsConfig) -> pd.DataFrame:
    """Primary p, family-wise (within) and experiment-wide (across) adjusted p side by side."""
    frame = frame.copy()
    frame["p"] = frame["p_t"] if "p_t" in frame else NAN
    frame["p_source"] = np.where(frame["p"].notna(), "p_t", "")
    suffix = np.where(frame["category"] == "all", "", "/by-category")
    frame["adj_family"] = frame["experiment"] + "/" + frame["kind"] + "/" + frame["metric"] + suffix
    frame["p_adj_family"] = NAN
    frame["p_tost_adj_family"] = NAN
    for _, idx in frame.groupby("adj_family").groups.items():
        frame.loc[idx, "p_adj_family"] = adjust_p(frame.loc[idx, "p"], cfg.within)
        if "p_tost" in frame:
            frame.loc[idx, "p_tost_adj_family"] = adjust_p(frame.loc[idx, "p_tost"], cfg.within)
    frame["p_adj_experiment"] = adjust_p(frame["p"], cfg.across)
    frame["adj_methods"] = f"{cfg.within}/{cfg.across}"
    return frame
