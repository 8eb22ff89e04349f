"""FID calibration (Tables 9/18) and the per-category breakdown (Table 14), from the stats rows.

FID calibration answers "how large is the sink effect on FID compared with perturbations nobody
would call damage": another seed, another CFG scale, fewer steps, another sampler.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from sinkrepro.paper.effect_figures import KIND_SYMBOL, panel_height
from sinkrepro.paper.numbers import is_missing, whole
from sinkrepro.paper.style import (
    MARKERS, Drawn, colour, finish, is_standin, legend_entries, metric_label, metric_order, new_figure,
)
from sinkrepro.stats.groups import require_columns

GENEVAL_ORDER = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
SAMPLER_FAMILIES = {"guidance": "CFG", "steps": "steps", "scheduler": "sampler", "sampler": "sampler"}
FAMILY_ORDER = ("seed", "CFG", "steps", "sampler")


def count_range(values: pd.Series) -> str:
    lo, hi = int(values.min()), int(values.max())
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _text(value) -> str:
    """A string field of a stats row; missing (None/NaN) reads as ''."""
    return "" if is_missing(value) else str(value)


def _samplers(rows: pd.DataFrame) -> list[dict]:
    """Each row's sampler settings that set it apart: a setting that every row shares with the majority
    value is the experiment's own (e.g. its CFG), not a perturbation."""
    samplers = [json.loads(s) if _text(s) else {} for s in rows.get("sampler", pd.Series([""] * len(rows)))]
    common = {}
    for key in {k for s in samplers for k in s}:
        values = [json.dumps(s[key]) for s in samplers if key in s]
        if len(values) == len(samplers):
            common[key] = json.loads(max(set(values), key=values.count))
    return [{k: v for k, v in s.items() if common.get(k, object()) != v} for s in samplers]


def classify_fid(row, sampler: dict) -> tuple[str, str]:
    """(family, bar label) of one FID row: a sampler perturbation, another seed, or an intervention."""
    label, preset = _text(row.get("label")), _text(row.get("preset"))
    if row["condition"] == row["reference"]:
        return "seed", "another seed"
    if sampler:
        family = "/".join(sorted({SAMPLER_FAMILIES.get(key, key) for key in sampler}))
        settings = ", ".join(f"{SAMPLER_FAMILIES.get(k, k)} {v}" for k, v in sorted(sampler.items()))
        return family, f"{label}: {settings}" if label else settings
    k = row.get("k")
    detail = ", ".join(x for x in (preset, f"k={whole(k)}" if not is_missing(k) else "") if x)
    name = label or preset or str(row["condition"])
    return name, f"{name} ({detail})" if detail else name


def fid_bars(stats: pd.DataFrame) -> pd.DataFrame:
    """One row per FID comparison with `family` and `bar`, plus `bar_mean` over seeds."""
    require_columns(stats, ["kind", "condition", "reference", "mean"], "stats rows")
    rows = stats[stats["kind"] == "fid"].reset_index(drop=True)
    if rows.empty:
        raise ValueError("stats rows: no kind=='fid' rows; the FID figure needs an experiment with fid_pairs")
    rows[["family", "bar"]] = [classify_fid(r, s) for (_, r), s in zip(rows.iterrows(), _samplers(rows))]
    rows["bar_mean"] = rows.groupby("bar")["mean"].transform("mean")
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    rows["order"] = rows["family"].map(lambda f: rank.get(f, len(rank)))
    return rows.sort_values(["order", "family", "bar", "seed"]).reset_index(drop=True)


def plot_fid_calibration(stats: pd.DataFrame, title: str = "") -> Drawn:
    """Horizontal bars: FID of each perturbation against the reference set (mean over seeds, dots: each
    seed). The dashed line is the seed-to-seed floor: FID between two baseline sets that differ only in seed."""
    data = fid_bars(stats)
    bars = data.drop_duplicates("bar")[["bar", "family", "bar_mean"]].reset_index(drop=True)
    families = list(dict.fromkeys(bars["family"]))
    fig, axes = new_figure(1, 1, height=max(3.2, 0.45 * len(bars) + 2.2))
    ax = axes[0, 0]
    for i, family in enumerate(families):
        sel = bars[bars["family"] == family]
        ax.barh(sel.index, sel["bar_mean"], color=colour(i), label=family, height=0.6)
    y = data["bar"].map({b: i for i, b in enumerate(bars["bar"])})
    ax.scatter(data["mean"], y, color="black", s=10, zorder=3, label="one seed")
    floor = data.loc[data["family"] == "seed", "mean"]
    if len(floor):
        ax.axvline(floor.mean(), color="black", ls="--", lw=1, label="seed-to-seed floor")
    ax.set_yticks(bars.index, bars["bar"])
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlabel("FID against the reference set")
    ax.grid(axis="y", visible=False)
    note = "FID on small sets is biased upward; compare bars with each other, not with published FIDs."
    if "n" in data and data["n"].notna().any():
        note = f"{count_range(data['n'])} images per set. " + note
    finish(fig, title or "FID calibration: the sink effect against ordinary sampler changes",
           is_standin(stats), note, legend=legend_entries(axes), legend_cols=4)
    return Drawn(fig, data.drop(columns="order"))


def category_rows(stats: pd.DataFrame, conditions: list[str] | None = None, kind: str = "delta") -> pd.DataFrame:
    """Per-category rows of `kind`. `conditions=None` keeps the largest k of each dose family
    (every condition when there is no k), so a k sweep shows its strongest dose."""
    require_columns(stats, ["category"], "stats rows")
    rows = stats[(stats["kind"] == kind) & (stats["category"].fillna("all") != "all")]
    rows = rows.drop(columns=[c for c in ("series",) if c in rows])
    if rows.empty:
        raise ValueError(f"stats rows: no per-category {kind} rows; set config.stats.categories: true")
    if conditions is None:
        ranked = rows.sort_values("k", na_position="first")
        key = "family" if "family" in ranked else "preset"
        conditions = ranked.drop_duplicates(key, keep="last")["condition"].tolist()
    missing = sorted(set(conditions) - set(rows["condition"]))
    if missing:
        raise ValueError(f"conditions={missing}: no per-category rows; have {sorted(rows['condition'].unique())}")
    rows = rows[rows["condition"].isin(conditions)].copy()
    order = {c: i for i, c in enumerate(GENEVAL_ORDER)}
    rows["x"] = rows["category"].map(lambda c: order.get(c, len(order)))
    return rows.sort_values(["metric", "condition", "x"]).reset_index(drop=True)


def plot_category_breakdown(stats: pd.DataFrame, conditions: list[str] | None = None,
                            kind: str = "delta", title: str = "") -> Drawn:
    """One panel per metric: the effect in each GenEval category, one marker series per condition."""
    data = category_rows(stats, conditions, kind)
    metrics = metric_order(data["metric"].unique())
    ncols = min(3, len(metrics))
    fig, axes = new_figure(-(-len(metrics) // ncols), ncols, height=panel_height(-(-len(metrics) // ncols)))
    categories = [c for c in GENEVAL_ORDER if c in set(data["category"])] + \
        sorted(set(data["category"]) - set(GENEVAL_ORDER))
    xpos = {c: i for i, c in enumerate(categories)}
    conds = list(dict.fromkeys(data["condition"]))
    for ax, metric in zip(axes.flat, metrics):
        ax.axhline(0, color="black", lw=0.8)
        for i, cond in enumerate(conds):
            s = data[(data["metric"] == metric) & (data["condition"] == cond)]
            x = s["category"].map(xpos) + 0.12 * (i - (len(conds) - 1) / 2)
            ax.errorbar(x, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]], fmt=MARKERS[i],
                        color=colour(i), capsize=2, label=f"{KIND_SYMBOL.get(kind, kind)} {cond}")
        ax.set_xticks(range(len(categories)), [c.replace("_", " ") for c in categories], rotation=30, ha="right")
        ax.set_title(metric_label(metric))
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"effect ({KIND_SYMBOL.get(kind, kind)})")
    note = "Mean paired effect per GenEval category with the stats stage's 95% CI."
    if "n" in data and data["n"].notna().any():
        note += f" {count_range(data['n'])} prompts per category."
    finish(fig, title or "Effect by prompt category", is_standin(stats), note, legend=legend_entries(axes))
    return Drawn(fig, data.drop(columns="x").assign(x=data["category"].map(xpos).astype(np.int64)))
