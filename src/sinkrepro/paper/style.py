"""One look for every paper figure: palette, size, fonts, stand-in footer, PDF + PNG output.

Every figure function in `sinkrepro.paper` builds its Figure with `new_figure`, stamps it with
`finish`, and returns a `Drawn` (the Figure plus the tidy table it drew), so tests can check
content through the data and the Axes instead of pixels.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: no global figure registry, no GUI backend

from sinkrepro.io import atomic_path
from sinkrepro.provenance import STANDIN_NOTICE
from sinkrepro.vocab import SINK_TYPES

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
SEQUENTIAL_CMAP = "viridis"  # perceptually uniform, colour-blind safe
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

WIDTH_IN = 7.2                # one figure width for the whole set (two-column paper width)
HEIGHT_IN = 4.8               # standard height; tall panels (forest, qualitative) grow from it
FONT_SIZE = 9
PNG_DPI = 200

RC = {
    "font.family": "DejaVu Sans",
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE - 1,
    "xtick.labelsize": FONT_SIZE - 1,
    "ytick.labelsize": FONT_SIZE - 1,
    "figure.titlesize": FONT_SIZE + 2,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "pdf.fonttype": 42,       # embed TrueType: text in the PDF stays text
    "svg.fonttype": "none",
}

# The colour of a token type, fixed across every figure that shows sink positions.
TOKEN_TYPE_COLOURS = dict(zip(SINK_TYPES, (PALETTE[0], PALETTE[1], PALETTE[2], "#999999", PALETTE[3])))


@dataclass(frozen=True)
class Drawn:
    """A finished figure and the tidy table of everything it drew."""

    figure: Figure
    data: pd.DataFrame


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def new_figure(nrows: int = 1, ncols: int = 1, height: float = HEIGHT_IN, **subplot_kw):
    """A Figure in the house style with an nrows x ncols grid of Axes (always a 2-D array)."""
    matplotlib.rcParams.update(RC)
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def legend_entries(axes) -> dict:
    """label -> handle over all Axes, each label once, in drawing order."""
    entries: dict = {}
    for ax in getattr(axes, "flat", axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    return entries


def finish(fig: Figure, title: str, standin: bool, note: str = "", legend: dict | None = None,
           legend_cols: int = 3) -> Figure:
    """Title the figure; below the panels put the shared `legend` (label -> handle), then a footer:
    `note` and, when stand-ins made the inputs, the stand-in notice."""
    matplotlib.rcParams.update(RC)
    fig.suptitle(title, fontweight="bold")
    lines = [note] if note else []
    if standin:
        lines.append(STANDIN_NOTICE)
    width_pt = fig.get_figwidth() * 72
    # characters that fit across the figure at a font size (a glyph is about 0.6 em wide)
    fits = lambda size: int(width_pt / (0.6 * size))  # noqa: E731
    wrapped = "\n".join(textwrap.fill(line, fits(FONT_SIZE - 2)) for line in lines)
    if legend:  # as many columns as the longest label (plus its marker) allows
        legend_cols = max(1, min(legend_cols, fits(FONT_SIZE - 1) // (max(map(len, legend)) + 6)))
    line_in = 1.45 * (FONT_SIZE - 1) / 72
    footer_in = (line_in * (wrapped.count("\n") + 1) + 0.06) if lines else 0.0
    legend_rows = -(-len(legend) // legend_cols) if legend else 0
    legend_in = (line_in * 1.25 * legend_rows + 0.12) if legend else 0.0
    height_in = fig.get_figheight()
    # Reserve a strip below the panels; legend and footer live there and never overlap the axes.
    strip = (footer_in + legend_in) / height_in
    fig.get_layout_engine().set(rect=(0, strip, 1, 1 - strip))
    if legend:
        fig.legend(list(legend.values()), list(legend.keys()), loc="upper center", frameon=False,
                   bbox_to_anchor=(0.5, strip), ncols=legend_cols, fontsize=FONT_SIZE - 1)
    if lines:
        fig.text(0.5, footer_in / 2 / height_in, wrapped, ha="center", va="center", fontsize=FONT_SIZE - 2,
                 color="#B00000" if standin else "#333333")
    return fig


def is_standin(*frames: pd.DataFrame) -> bool:
    """True when any input row says a stand-in model made it (a missing column counts as real)."""
    return any(bool(f["standin"].astype(bool).any()) for f in frames if "standin" in f and len(f))


def save(fig: Figure, png: str | Path, pdf: str | Path) -> None:
    """Write the figure as a vector PDF and a PNG, each atomically."""
    matplotlib.rcParams.update(RC)
    meta_pdf = {"Subject": fig.get_suptitle(), "CreationDate": None}  # no date: rebuilds are byte-identical
    for path, fmt, kwargs in ((pdf, "pdf", {"metadata": meta_pdf}), (png, "png", {"dpi": PNG_DPI})):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, **kwargs)


# How each metric is named on an axis, in the order panels appear.
METRIC_LABELS = {"clip_t": "CLIP-T", "hps": "HPS v2.1", "imagereward": "ImageReward",
                 "lpips": "LPIPS", "fid": "FID", "feat_l2": "feature L2 (FID net)"}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def metric_order(metrics) -> list[str]:
    metrics = set(metrics)
    return [m for m in METRIC_LABELS if m in metrics] + sorted(metrics - set(METRIC_LABELS))
