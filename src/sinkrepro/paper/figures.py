"""File-level entry points for the figure rules: read contract files, draw, write PNG + PDF (+ CSV).

Each `*_figure` function is what one workflow/scripts/fig_*.py adapter calls. The drawing itself
lives in dynamics_figures, effect_figures, calibration_figures and panels; the style in style.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from sinkrepro.layout import DYNAMICS_FIGURES, STATS_FIGURES
from sinkrepro.paper import calibration_figures, dynamics_figures, effect_figures, panels
from sinkrepro.paper.style import Drawn, is_standin, save
from sinkrepro.paper.figcheck import problems
from sinkrepro.paper.sidecar import write_csv
from sinkrepro.paper.summarise import read_parquets
from sinkrepro.stats.pairing import own_rows


def save_drawn(drawn: Drawn, png: str | Path, pdf: str | Path, csv: str | Path | None = None,
               standin: bool = False) -> None:
    """Write the figure, and the table it drew as CSV with its sidecar: title, stand-in notice, and the
    legibility problems `figcheck` finds in the figure (none, for a figure fit to read)."""
    issues = problems(drawn.figure)
    for issue in issues:
        logging.warning("%s: %s", png, issue)
    save(drawn.figure, png, pdf)
    if csv:
        write_csv(csv, drawn.data, drawn.figure.get_suptitle(), f"The data drawn in {Path(png).name}.", standin,
                  {"legibility_problems": issues})


def _title(rows: pd.DataFrame, what: str) -> str:
    names = [" · ".join(sorted(rows[c].dropna().astype(str).unique())) for c in ("experiment", "model") if c in rows]
    names = [n for n in names if n]
    return f"{what} - {', '.join(names)}" if names else what


def dynamics_figure(figure: str, dynamics: Iterable[str | Path], png, pdf, csv=None,
                    layers: Sequence[int] | None = None, condition: str | None = "base",
                    grid: Sequence[int] | None = None, model: str = "", own: dict | None = None) -> Drawn:
    """figure: curves (mass, entropy, top-5, activation vs progress) | position (sink type and image
    position heatmaps) | attribution (text vs image sinks, every measured layer).
    `own`: {prompt_ids, seeds} of the experiment, whose shards may hold other experiments' rows."""
    if figure not in DYNAMICS_FIGURES:
        raise ValueError(f"figure={figure!r}: choose one of {DYNAMICS_FIGURES}")
    rows = own_rows(read_parquets(dynamics, "dynamics"), **(own or {}))
    if figure == "curves":
        drawn = dynamics_figures.plot_dynamics(rows, layers, condition, model)
    elif figure == "position":
        drawn = dynamics_figures.plot_sink_position(rows, layers, condition, tuple(grid) if grid else None, model)
    else:
        drawn = dynamics_figures.plot_attribution(rows, condition, model)
    save_drawn(drawn, png, pdf, csv, is_standin(rows))
    return drawn


def stats_figure(figure: str, stats: str | Path, png, pdf, csv=None, **options) -> Drawn:
    """figure: dose | forest (options: adjusted, alpha) | fid | categories (options: conditions, kind),
    all from one results/stats/{experiment}.parquet."""
    if figure not in STATS_FIGURES:
        raise ValueError(f"figure={figure!r}: choose one of {STATS_FIGURES}")
    rows = pd.read_parquet(stats)
    draw = {
        "dose": (effect_figures.plot_dose_response, "Dose response"),
        "forest": (effect_figures.plot_forest, "All comparisons, Δ and ΔΔ"),
        "fid": (calibration_figures.plot_fid_calibration, "FID calibration"),
        "categories": (calibration_figures.plot_category_breakdown, "Effect by prompt category"),
    }[figure]
    drawn = draw[0](rows, title=_title(rows, draw[1]), **options)
    save_drawn(drawn, png, pdf, csv, is_standin(rows))
    return drawn


def panel_figure(scores: Iterable[str | Path], shards: Iterable[str | Path], png, pdf, csv=None, *,
                 condition: str, control: str, baseline: str = "base", n_per_group: int = 5,
                 clip_tol: float = 0.01, own: dict | None = None) -> Drawn:
    """Qualitative panel for one sink condition and its equal-budget control; `csv` gets the
    selection table (the paper's taxonomy_k{k}.csv). `own` as in dynamics_figure."""
    rows = own_rows(read_parquets(scores, "scores"), **(own or {}))
    manifests = own_rows(panels.read_manifests(shards), **(own or {}))
    drawn = panels.qualitative_panel(rows, manifests, condition, control, baseline, n_per_group, clip_tol)
    save_drawn(drawn, png, pdf, csv, is_standin(rows))
    return drawn
