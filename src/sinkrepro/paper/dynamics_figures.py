"""Sink dynamics figures (the paper's Fig. 2 / Table 1), drawn from every prompt and seed.

The authors' Fig. 2 came from a CSV holding only the last prompt, one step late, and its
attribution panel covered layer 12 only (docs/paper-items.md). Here each curve is a
mean over prompts (seeds, heads and CFG halves pooled per prompt) with a 95% t-interval, plotted
at each step's own progress step/(N-1), and attribution covers every measured layer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from sinkrepro.paper.style import (
    SEQUENTIAL_CMAP, TOKEN_TYPE_COLOURS, Drawn, colour, finish, is_standin, new_figure,
)
from sinkrepro.paper.summarise import prompt_level
from sinkrepro.stats.groups import mean_ci, require_columns
from sinkrepro.vocab import SINK_TYPES, TEXT_TYPES

DYNAMICS_METRICS = {
    "top1_mass": "max incoming mass",
    "entropy": "attention entropy (nats)",
    "top5_conc": "top-5 concentration",
    "max_activation": "max |attention output|",
}
PROGRESS_LABEL = "denoising progress, step / (N-1)"
_KEYS = ["prompt_id", "seed", "step", "progress", "layer", "batch_half", "head", "sink_type", "condition"]


def one_condition(rows: pd.DataFrame, condition: str | None) -> tuple[pd.DataFrame, str]:
    """The rows of one condition; `condition=None` is allowed only when the rows hold one."""
    require_columns(rows, _KEYS, "dynamics rows")
    present = sorted(rows["condition"].unique())
    if condition is None:
        if len(present) != 1:
            raise ValueError(f"dynamics rows hold conditions {present}; pass condition= to pick one")
        condition = present[0]
    picked = rows[rows["condition"] == condition]
    if picked.empty:
        raise ValueError(f"condition={condition!r}: no dynamics rows; the rows hold {present}")
    return picked, condition


def _model(rows: pd.DataFrame, model: str) -> str:
    """' - model' for titles; from the rows when the caller gives none."""
    if not model and "model" in rows:
        model = ", ".join(sorted(rows["model"].astype(str).unique()))
    return f" - {model}" if model else ""


def _pick_layers(rows: pd.DataFrame, layers: Sequence[int] | None) -> list[int]:
    have = sorted(int(x) for x in rows["layer"].unique())
    if layers is None:
        return have
    missing = sorted(set(layers) - set(have))
    if missing:
        raise ValueError(f"layers={list(layers)}: no dynamics rows for layers {missing}; measured: {have}")
    return sorted(layers)


def dynamics_curves(rows: pd.DataFrame, layers: Sequence[int] | None = None,
                    condition: str | None = None) -> pd.DataFrame:
    """Per (metric, layer, step): prompt-level mean with CI. Tidy: metric, layer, step, progress,
    n (prompts), mean, ci_low, ci_high."""
    rows, _ = one_condition(rows, condition)
    rows = rows[rows["layer"].isin(_pick_layers(rows, layers))]
    progress = rows.groupby("step")["progress"].mean()
    parts = []
    for metric in DYNAMICS_METRICS:
        per_prompt = prompt_level(rows, ["layer", "step"], metric)
        summary = mean_ci(per_prompt, ["layer", "step"], metric)
        summary.insert(0, "metric", metric)
        parts.append(summary)
    out = pd.concat(parts, ignore_index=True)
    out.insert(3, "progress", out["step"].map(progress))
    return out


def plot_dynamics(rows: pd.DataFrame, layers: Sequence[int] | None = None,
                  condition: str | None = None, model: str = "") -> Drawn:
    """Four panels (mass, entropy, top-5 concentration, max activation) vs progress, one line per layer."""
    data = dynamics_curves(rows, layers, condition)
    fig, axes = new_figure(2, 2, sharex=True)
    for ax, (metric, label) in zip(axes.flat, DYNAMICS_METRICS.items()):
        for i, (layer, line) in enumerate(data[data["metric"] == metric].groupby("layer")):
            ax.plot(line["progress"], line["mean"], color=colour(i), marker=".", label=f"layer {layer}")
            ax.fill_between(line["progress"], line["ci_low"], line["ci_high"], color=colour(i), alpha=0.2, lw=0)
        ax.set_ylabel(label)
    for ax in axes[-1]:
        ax.set_xlabel(PROGRESS_LABEL)
    axes[0, 0].legend(title="mean, 95% CI")
    n = int(data["n"].max())
    finish(fig, f"Sink dynamics{_model(rows, model)}", is_standin(rows),
           f"Means over {n} prompts (seeds, heads and CFG halves pooled per prompt), 95% t-intervals.")
    return Drawn(fig, data)


def type_shares(rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Share of top-1 sinks of each token type per group (each (prompt, seed, half, head) counts once)."""
    counts = rows.groupby(by + ["sink_type"]).size().rename("count").reset_index()
    counts["share"] = counts["count"] / counts.groupby(by)["count"].transform("sum")
    return counts


def _type_order(types) -> list[str]:
    known = [t for t in SINK_TYPES if t in set(types)]
    return known + sorted(set(types) - set(SINK_TYPES))


def plot_sink_position(rows: pd.DataFrame, layers: Sequence[int] | None = None,
                       condition: str | None = None, grid: tuple[int, int] | None = None,
                       model: str = "") -> Drawn:
    """Top row: token type of the top-1 sink vs progress; bottom row: where image sinks sit on
    the latent grid. One column per layer. `grid` = (rows, cols) of the image token grid
    (inferred from the largest sink_row/sink_col when None)."""
    rows, _ = one_condition(rows, condition)
    require_columns(rows, ["sink_row", "sink_col"], "dynamics rows")
    layers = _pick_layers(rows, layers)
    rows = rows[rows["layer"].isin(layers)]
    types = _type_order(rows["sink_type"].unique())
    shares = type_shares(rows, ["layer", "step"])
    image = rows[rows["sink_type"] == "image"]
    if grid is None:
        grid = (int(max(image["sink_row"].max(), 0)) + 1, int(max(image["sink_col"].max(), 0)) + 1) \
            if len(image) else (1, 1)
    spatial = image.groupby(["layer", "sink_row", "sink_col"]).size().rename("count").reset_index()
    spatial["share"] = spatial["count"] / spatial.groupby("layer")["count"].transform("sum")

    vmax = float(spatial["share"].max()) if len(spatial) else 1.0
    fig, axes = new_figure(2, len(layers))
    steps = sorted(rows["step"].unique())
    progress = rows.groupby("step")["progress"].mean()
    for j, layer in enumerate(layers):
        ax = axes[0, j]
        mat = shares[shares["layer"] == layer].pivot(index="sink_type", columns="step", values="share")
        mat = mat.reindex(index=types, columns=steps).fillna(0.0)
        im = ax.imshow(mat.to_numpy(), aspect="auto", cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1,
                       interpolation="nearest")
        ax.set_yticks(range(len(types)), types)
        ticks = [0, len(steps) // 2, len(steps) - 1] if len(steps) >= 5 else sorted({0, len(steps) - 1})
        ax.set_xticks(ticks, [f"{progress[steps[t]]:.2f}" for t in ticks])
        ax.set_xlabel("denoising progress")
        ax.set_title(f"layer {layer}")
        ax.grid(False)
        ax = axes[1, j]
        heat = np.zeros(grid)
        for r in spatial[spatial["layer"] == layer].itertuples():
            heat[int(r.sink_row), int(r.sink_col)] = r.share
        im2 = ax.imshow(heat, cmap=SEQUENTIAL_CMAP, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_xlabel("image column")
        ax.set_ylabel("image row")
        ax.grid(False)
        if spatial[spatial["layer"] == layer].empty:
            ax.text(0.5, 0.5, "no image sinks", transform=ax.transAxes, ha="center", va="center")
    axes[0, 0].set_ylabel("token type")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.9, label="share of top-1 sinks")
    fig.colorbar(im2, ax=list(axes[1]), shrink=0.9, label="share of image sinks")
    shares.insert(0, "panel", "type")
    spatial.insert(0, "panel", "position")
    finish(fig, f"Where the top-1 sink sits{_model(rows, model)}", is_standin(rows),
           "Top-1 incoming-mass key per (prompt, seed, CFG half, head, step), over all prompts and seeds.")
    return Drawn(fig, pd.concat([shares, spatial], ignore_index=True))


def attribution(rows: pd.DataFrame, condition: str | None = None) -> pd.DataFrame:
    """Per (layer, token type): share of top-1 sinks over all steps, mean over prompts with CI."""
    rows, _ = one_condition(rows, condition)
    types = _type_order(rows["sink_type"].unique())
    wide = (rows.assign(one=1.0).pivot_table(index=["layer", "prompt_id"], columns="sink_type",
                                             values="one", aggfunc="sum", fill_value=0.0)
            .reindex(columns=types, fill_value=0.0))
    wide = wide.div(wide.sum(axis=1), axis=0)
    wide["text (all)"] = wide[[t for t in types if t in TEXT_TYPES]].sum(axis=1)
    long = wide.reset_index().melt(id_vars=["layer", "prompt_id"], var_name="sink_type", value_name="share")
    return mean_ci(long, ["layer", "sink_type"], "share").rename(columns={"mean": "share"})


def plot_attribution(rows: pd.DataFrame, condition: str | None = None, model: str = "") -> Drawn:
    """Stacked bars per measured layer: share of top-1 sinks on image vs each text token type,
    with the 95% CI of the text share (over prompts) drawn at the image/text boundary."""
    data = attribution(rows, condition)
    fig, axes = new_figure(1, 1)
    ax = axes[0, 0]
    layers = sorted(data["layer"].unique())
    bottom = np.zeros(len(layers))
    for t in _type_order(set(data["sink_type"]) - {"text (all)"}):
        share = data[data["sink_type"] == t].set_index("layer")["share"].reindex(layers).fillna(0).to_numpy()
        ax.bar(layers, share, bottom=bottom, color=TOKEN_TYPE_COLOURS.get(t, "#666666"), label=t, width=0.8)
        bottom += share
    text = data[data["sink_type"] == "text (all)"].set_index("layer").reindex(layers)
    edge = 1 - text["share"].to_numpy()
    ax.errorbar(layers, edge, yerr=[text["ci_high"] - text["share"], text["share"] - text["ci_low"]],
                fmt="none", ecolor="black", capsize=2, lw=0.8, label="95% CI, text share")
    ax.set_xlabel("layer")
    ax.set_ylabel("share of top-1 sinks")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(layers)
    ax.legend(title="sink token type", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finish(fig, f"Text vs image sinks, every measured layer{_model(rows, model)}",
           is_standin(rows), "Shares pooled over all steps, heads and CFG halves; mean over prompts.")
    return Drawn(fig, data)
