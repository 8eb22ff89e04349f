"""Effect figures from the stats rows (docs/contracts.md "Statistics"): dose response and forest.

Both draw the primary CI (`ci_low`, `ci_high`) and the equivalence margin (`tost_margin`), so a
reader sees "no effect" as an interval inside the band, not as an interval that merely covers 0.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from sinkrepro.paper.numbers import p_value, sig
from sinkrepro.paper.style import (
    HEIGHT_IN, MARKERS, Drawn, colour, finish, is_standin, legend_entries, metric_label, metric_order, new_figure,
)
from sinkrepro.stats.groups import require_columns

EFFECT_KINDS = ("delta", "delta_delta")
KIND_SYMBOL = {"delta": "Δ", "delta_delta": "ΔΔ"}
_NEEDED = ["metric", "kind", "condition", "reference", "k", "preset", "mean", "ci_low", "ci_high"]


def overall_rows(stats: pd.DataFrame, kinds) -> pd.DataFrame:
    """Rows of the given kinds over all prompts (per-category breakdown rows left out)."""
    require_columns(stats, _NEEDED, "stats rows")
    rows = stats[stats["kind"].isin(kinds)]
    if "category" in rows:
        rows = rows[rows["category"].fillna("all") == "all"]
    return rows.copy()


def _margin_band(ax, margin: float, vertical: bool = False) -> None:
    """The zero line and the ±margin equivalence band (on x when `vertical`, else on y)."""
    line, span = (ax.axvline, ax.axvspan) if vertical else (ax.axhline, ax.axhspan)
    line(0, color="black", lw=0.8)
    if np.isfinite(margin):
        span(-margin, margin, color="#BBBBBB", alpha=0.35, lw=0, label="equivalence margin")


def _margin(rows: pd.DataFrame) -> float:
    if "tost_margin" not in rows:
        return math.nan
    m = rows["tost_margin"].dropna()
    return float(m.iloc[0]) if len(m) else math.nan


def _series_label(kind: str, first: pd.Series, control_preset: str | None, show_layers: bool) -> str:
    label = first.get("label") or first["preset"]
    text = f"{KIND_SYMBOL[kind]} {label} ({first['preset']}"
    if kind == "delta_delta":
        text += f" − {control_preset or 'control'}"
    text += ")"
    if show_layers and isinstance(first.get("layers"), str):
        text += f" L{first['layers']}"
    return text


def dose_series(stats: pd.DataFrame) -> pd.DataFrame:
    """Δ and ΔΔ points with a k, one series per (kind, dose family). Adds `series` (legend text)
    and, where a `dose` row exists for the family, its slope and adjusted p in `slope`, `slope_p`."""
    rows = overall_rows(stats, EFFECT_KINDS)
    rows = rows[rows["k"].notna()]
    if rows.empty:
        raise ValueError("stats rows: no delta/delta_delta rows with a k; the dose figure needs a k sweep")
    family = rows["family"] if "family" in rows else rows["preset"] + "|" + rows.get("label", "")
    rows["series_key"] = rows["kind"] + "|" + family.astype(str)
    presets = rows.drop_duplicates("condition").set_index("condition")["preset"]
    show_layers = "layers" in rows and rows["layers"].nunique() > 1
    labels = {key: _series_label(g.iloc[0]["kind"], g.iloc[0], presets.get(g.iloc[0]["reference"]), show_layers)
              for key, g in rows.groupby("series_key")}
    rows["series"] = rows["series_key"].map(labels)
    rows["slope"], rows["slope_p"] = math.nan, math.nan
    dose = stats[stats["kind"] == "dose"]
    if len(dose) and {"family", "basis"} <= set(dose.columns):
        if "category" in dose:
            dose = dose[dose["category"].fillna("all") == "all"]
        p_col = "p_adj_family" if "p_adj_family" in dose else "p_t"
        for r in dose.itertuples():
            hit = (rows["metric"] == r.metric) & (rows["kind"] == r.basis) & (rows["family"] == r.condition)
            rows.loc[hit, "slope"], rows.loc[hit, "slope_p"] = r.mean, getattr(r, p_col)
    dup = rows.duplicated(["metric", "series_key", "k"], keep=False)
    if dup.any():
        raise ValueError(f"stats rows: several rows per (metric, series, k): "
                         f"{sorted(rows.loc[dup, 'condition'].unique())}; give each condition its own dose family")
    return rows.sort_values(["metric", "series", "k"]).reset_index(drop=True)


def _grid(n: int) -> tuple[int, int]:
    ncols = min(3, n)
    return math.ceil(n / ncols), ncols


def plot_dose_response(stats: pd.DataFrame, title: str = "") -> Drawn:
    """One panel per metric: Δ and ΔΔ against k with CIs, the zero line and the margin band."""
    data = dose_series(stats)
    metrics = metric_order(data["metric"].unique())
    nrows, ncols = _grid(len(metrics))
    fig, axes = new_figure(nrows, ncols, height=panel_height(nrows))
    series = sorted(data["series"].unique())
    log_x = data["k"].max() / max(data["k"].min(), 1e-9) >= 10
    for ax, metric in zip(axes.flat, metrics):
        rows = data[data["metric"] == metric]
        _margin_band(ax, _margin(rows))
        for i, name in enumerate(series):
            s = rows[rows["series"] == name]
            if s.empty:
                continue
            shift = 1 + 0.04 * (i - (len(series) - 1) / 2)  # dodge overlapping intervals
            x = s["k"] * shift if log_x else s["k"] + (shift - 1) * 5
            ax.errorbar(x, s["mean"], yerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]],
                        color=colour(i), marker=MARKERS[i % len(MARKERS)], capsize=2, lw=1.2, label=name)
        if log_x:
            ax.set_xscale("log")
        ks = sorted(rows["k"].unique())
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("k (removal budget)")
        margin = _margin(rows)
        ax.set_title(metric_label(metric) + (f"\nmargin ±{sig(margin, 2)}" if np.isfinite(margin) else ""))
        compact_ticks(ax)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("effect (Δ or ΔΔ)")
    finish(fig, title or "Dose response: effect against k", is_standin(stats), legend=legend_entries(axes),
           note="Points: mean paired effect over prompts; bars: the stats stage's primary 95% CI; "
           "grey band: equivalence margin. Δ = condition − baseline; ΔΔ = sink − equal-budget random." +
           slope_note(data))
    return Drawn(fig, data.drop(columns="series_key"))


def slope_note(data: pd.DataFrame) -> str:
    """The dose slopes per ln k with their adjusted p, one clause per (metric, series)."""
    slopes = data.dropna(subset=["slope"]).drop_duplicates(["metric", "series"])
    if slopes.empty:
        return ""
    parts = [f"{metric_label(r.metric)} {r.series.split(' (')[0]}: {sig(r.slope, 2, signed=True)} "
             f"(p_adj {p_value(r.slope_p)})" for r in slopes.itertuples()]
    return " Slope per ln k: " + "; ".join(parts) + "."


def panel_height(nrows: int) -> float:
    """Figure height for `nrows` rows of panels, plus room for the title, legend and footer."""
    return max(HEIGHT_IN, 2.6 * nrows + 2.2)


def compact_ticks(ax, axis: str = "y", bins: int = 4) -> None:
    """At most `bins` ticks on a narrow axis, so tick labels never run into each other."""
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(MaxNLocator(bins))


def forest_rows(stats: pd.DataFrame, adjusted: str = "p_adj_family", alpha: float = 0.05) -> pd.DataFrame:
    """Every Δ and ΔΔ over all prompts, with `row` (y label), `significant` (adjusted p < alpha)."""
    rows = overall_rows(stats, EFFECT_KINDS)
    if rows.empty:
        raise ValueError("stats rows: no delta/delta_delta rows to draw")
    if adjusted not in rows:
        raise ValueError(f"adjusted={adjusted!r}: not a stats column; use p_adj_family or p_adj_experiment")
    rows["row"] = [f"{KIND_SYMBOL[r.kind]} {r.condition}" + (f" − {r.reference}" if r.kind == "delta_delta" else "")
                   for r in rows.itertuples()]
    rows["significant"] = rows[adjusted] < alpha
    rows["p_adjusted"] = rows[adjusted]
    order = rows.sort_values(["kind", "preset", "k", "condition"], na_position="last")["row"].drop_duplicates()
    rows["y"] = rows["row"].map({r: i for i, r in enumerate(order)})
    return rows.reset_index(drop=True)


def plot_forest(stats: pd.DataFrame, adjusted: str = "p_adj_family", alpha: float = 0.05,
                title: str = "") -> Drawn:
    """One panel per metric (up to 3 per row), one row per comparison; filled markers are significant
    after adjustment."""
    data = forest_rows(stats, adjusted, alpha)
    metrics = metric_order(data["metric"].unique())
    n_rows = int(data["y"].max()) + 1
    grid_rows, ncols = _grid(len(metrics))
    fig, axes = new_figure(grid_rows, ncols, height=max(HEIGHT_IN, grid_rows * (0.22 * n_rows + 1.2) + 1.2),
                           sharey=True)
    labels = data.drop_duplicates("y").sort_values("y")["row"].tolist()
    for ax, metric in zip(axes.flat, metrics):
        rows = data[data["metric"] == metric]
        _margin_band(ax, _margin(rows), vertical=True)
        for i, kind in enumerate(EFFECT_KINDS):
            for significant, face in ((True, colour(i)), (False, "white")):
                s = rows[(rows["kind"] == kind) & (rows["significant"] == significant)]
                if s.empty:
                    continue
                ax.errorbar(s["mean"], s["y"], xerr=[s["mean"] - s["ci_low"], s["ci_high"] - s["mean"]],
                            fmt=MARKERS[i], color=colour(i), mfc=face, capsize=2, lw=1,
                            label=f"{KIND_SYMBOL[kind]}, {'p_adj < ' + str(alpha) if significant else 'n.s.'}")
        ax.set_title(metric_label(metric))
        ax.grid(axis="y", alpha=0.15)
        ax.margins(x=0.08)
        compact_ticks(ax, "x", 3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    axes[0, 0].set_yticks(range(n_rows), labels)
    axes[0, 0].set_ylim(n_rows - 0.5, -0.5)
    finish(fig, title or "All comparisons: Δ and ΔΔ with 95% CIs", is_standin(stats),
           legend=legend_entries(axes), note="x: the effect on each metric's own scale (Δ: condition − baseline; "
           f"ΔΔ: condition − control). Filled markers: {adjusted} < {alpha}; hollow: not significant. "
           "Grey band: equivalence margin.")
    return Drawn(fig, data)
