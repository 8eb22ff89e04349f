"""The legibility check (sinkrepro.paper.figcheck) on planted defects, and on every figure a whole
`make reproduce` draws."""
import json

import pytest
from matplotlib.figure import Figure

from sinkrepro.paper import calibration_figures as cal
from sinkrepro.paper import effect_figures as eff
from sinkrepro.paper.figcheck import corners, overlap, problems
from sinkrepro.paper.sidecar import read_metadata
from helpers import fid_stats_rows, stats_rows


def figure(width=4.0, height=3.0):
    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def test_a_clean_figure_has_no_problems():
    fig, ax = figure()
    ax.plot([0, 1], [0, 1], "o-")
    ax.set_title("title")
    ax.set_xlabel("x")
    fig.tight_layout()
    assert problems(fig) == []


def test_text_outside_the_canvas_is_found():
    fig, ax = figure()
    fig.text(0.9, 0.5, "runs off the right edge of the canvas")
    assert any("outside the canvas" in p for p in problems(fig))


def test_overlapping_texts_are_found_and_neighbours_are_not():
    fig, _ = figure()
    fig.text(0.1, 0.5, "first label")
    fig.text(0.15, 0.5, "second label")
    fig.text(0.1, 0.1, "apart")
    found = problems(fig)
    assert any("'first label' and 'second label' overlap" in p for p in found)
    assert not any("apart" in p for p in found)


def test_rotated_labels_are_rectangles_not_their_bounding_boxes():
    fig, ax = figure(3, 3)
    ax.set_xticks(range(4), ["category one", "category two", "category three", "category four"],
                  rotation=45, ha="right", fontsize=12)
    fig.tight_layout()
    assert problems(fig) == []  # their axis-aligned boxes overlap, the rotated text does not
    labels = ax.get_xticklabels()
    renderer = fig.canvas.get_renderer()
    a, b = corners(labels[0], renderer), corners(labels[1], renderer)
    box_a, box_b = labels[0].get_window_extent(renderer), labels[1].get_window_extent(renderer)
    assert box_a.overlaps(box_b) and overlap(a, b) <= 0
    ax.set_xticks(range(4), ["a much longer category name"] * 4, rotation=10, ha="right", fontsize=12)
    assert any("overlap" in p for p in problems(fig))


def test_nan_labels_are_found():
    fig, ax = figure()
    ax.set_xticks([0, 1], ["nan (nan)", "ok"])
    ax.set_title("fine, not a nanometre")
    found = problems(fig)
    assert any("reads 'nan'" in p and "nan (nan)" in p for p in found)
    assert not any("nanometre" in p for p in found)


def test_a_text_box_over_data_points_is_found():
    fig, ax = figure()
    ax.plot([0.1, 0.5, 0.9], [0.1, 0.5, 0.9], "o")
    ax.text(0.5, 0.5, "slope +0.1", transform=ax.transAxes, ha="center", va="center", bbox=dict(facecolor="w"))
    fig.tight_layout()
    assert any("covers 1 data point" in p for p in problems(fig))


@pytest.mark.parametrize("draw", [
    lambda: eff.plot_dose_response(stats_rows(ks=(1, 5, 10, 50))),
    lambda: eff.plot_forest(stats_rows(ks=(1, 5, 10, 50))),
    lambda: cal.plot_fid_calibration(fid_stats_rows()),
    lambda: cal.plot_category_breakdown(stats_rows(ks=(1, 5))),
], ids=["dose", "forest", "fid", "categories"])
def test_statistics_figures_are_legible(draw):
    assert problems(draw().figure) == []


@pytest.mark.slow
def test_every_figure_of_a_whole_run_is_legible(reproduced):
    """save_drawn runs the check on each figure it writes and records the result in the CSV sidecar."""
    work, _ = reproduced
    pngs = sorted((work / "paper" / "figures").rglob("*.png"))
    assert len(pngs) >= 8
    for png in pngs:
        meta = read_metadata(png.with_suffix(".csv"))
        assert meta["legibility_problems"] == [], (png.name, json.dumps(meta["legibility_problems"], indent=1))
        assert png.stat().st_size > 1000
