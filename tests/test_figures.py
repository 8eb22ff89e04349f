"""Figure content, checked through the data each figure drew and its Axes, never pixels."""
from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from helpers import dynamics_rows, stats_rows
from sinkrepro.paper import dynamics_figures as dyn
from sinkrepro.paper import effect_figures as eff
from sinkrepro.paper.numbers import sig
from sinkrepro.paper.style import STANDIN_NOTICE, WIDTH_IN, save


def figure_text(fig) -> str:
    text = " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))
    return " ".join(text.split())  # the footer wraps long lines


# ---------------------------------------------------------------- dynamics
def test_dynamics_curves_match_a_naive_prompt_level_mean_and_t_interval():
    rows = dynamics_rows(n_prompts=4, seeds=(0, 1), steps=3, layers=(0, 1, 2))
    data = dyn.dynamics_curves(rows, layers=[0, 2])
    assert set(data["layer"]) == {0, 2} and set(data["metric"]) == set(dyn.DYNAMICS_METRICS)
    for metric in dyn.DYNAMICS_METRICS:
        for layer in (0, 2):
            for step in range(3):
                sel = rows[(rows.layer == layer) & (rows.step == step)]
                per_prompt = [sel[sel.prompt_id == p][metric].mean() for p in sorted(sel.prompt_id.unique())]
                lo, hi = stats.t.interval(0.95, len(per_prompt) - 1, loc=np.mean(per_prompt),
                                          scale=stats.sem(per_prompt))
                got = data[(data.metric == metric) & (data.layer == layer) & (data.step == step)].iloc[0]
                assert got["n"] == 4
                assert got["mean"] == pytest.approx(np.mean(per_prompt))
                assert (got["ci_low"], got["ci_high"]) == pytest.approx((lo, hi))
                assert got["progress"] == pytest.approx(step / 2)


def test_plot_dynamics_has_four_panels_one_line_per_layer_and_the_standin_notice():
    rows = dynamics_rows(n_prompts=3, steps=5, layers=(0, 1, 2))
    drawn = dyn.plot_dynamics(rows, layers=[0, 1])
    axes = drawn.figure.axes
    assert len(axes) == 4
    assert [ax.get_ylabel() for ax in axes] == list(dyn.DYNAMICS_METRICS.values())
    assert axes[2].get_xlabel() == dyn.PROGRESS_LABEL
    for ax in axes:
        lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("layer")]
        assert [ln.get_label() for ln in lines] == ["layer 0", "layer 1"]
        assert all(len(ln.get_xdata()) == 5 for ln in lines)
    assert STANDIN_NOTICE in figure_text(drawn.figure)
    assert tuple(drawn.figure.get_size_inches())[0] == WIDTH_IN
    real = dyn.plot_dynamics(dynamics_rows(standin=False), layers=[0])
    assert STANDIN_NOTICE not in figure_text(real.figure)


def test_dynamics_needs_one_condition_and_measured_layers():
    rows = pd.concat([dynamics_rows(condition="base"), dynamics_rows(condition="dsp-k1-L1")])
    with pytest.raises(ValueError, match="pass condition="):
        dyn.dynamics_curves(rows)
    assert set(dyn.dynamics_curves(rows, condition="base")["layer"]) == {0, 1, 2}
    with pytest.raises(ValueError, match=r"layers=\[7\]"):
        dyn.dynamics_curves(rows, layers=[7], condition="base")
    with pytest.raises(ValueError, match="missing columns"):
        dyn.dynamics_curves(rows.drop(columns="sink_type"), condition="base")


def test_sink_position_shares_and_image_grid_counts():
    rows = dynamics_rows(n_prompts=3, steps=4, layers=(0, 1), grid=(3, 5))
    drawn = dyn.plot_sink_position(rows, grid=(3, 5))
    assert len([ax for ax in drawn.figure.axes if ax.get_label() != "<colorbar>"]) == 4  # 2 rows x 2 layers
    types = drawn.data[drawn.data.panel == "type"]
    sums = types.groupby(["layer", "step"])["share"].sum()
    assert np.allclose(sums, 1.0) and len(sums) == 2 * 4
    pos = drawn.data[drawn.data.panel == "position"]
    for layer in (0, 1):
        image = rows[(rows.layer == layer) & (rows.sink_type == "image")]
        assert pos[pos.layer == layer]["count"].sum() == len(image)
        cell = image.groupby(["sink_row", "sink_col"]).size()
        r, c = cell.idxmax()
        got = pos[(pos.layer == layer) & (pos.sink_row == r) & (pos.sink_col == c)]["count"].item()
        assert got == cell.max()
    heat = drawn.figure.axes[2].get_images()[0].get_array()  # bottom-left: layer 0 position map
    assert heat.shape == (3, 5)


def test_attribution_covers_every_layer_and_text_share_is_one_minus_image():
    rows = dynamics_rows(n_prompts=4, layers=(0, 1, 2, 3, 4))
    data = dyn.attribution(rows)
    assert sorted(data.layer.unique()) == [0, 1, 2, 3, 4]
    wide = data.pivot(index="layer", columns="sink_type", values="share")
    assert np.allclose(wide["text (all)"], 1 - wide["image"])
    one = rows[(rows.layer == 3) & (rows.prompt_id == "p0")]
    single = dyn.attribution(one)
    assert single.set_index("sink_type")["share"]["image"] == pytest.approx((one.sink_type == "image").mean())
    drawn = dyn.plot_attribution(rows)
    ax = drawn.figure.axes[0]
    assert len(ax.containers) == 4 + 1  # one bar stack per token type + the CI error bars
    assert list(ax.get_xticks()) == [0, 1, 2, 3, 4]
    assert ax.get_ylabel() == "share of top-1 sinks"


# ---------------------------------------------------------------- effects
def test_dose_series_one_series_per_kind_and_family_with_every_k():
    st = stats_rows(ks=(1, 5, 10, 50))
    data = eff.dose_series(st)
    assert set(data["kind"]) == {"delta", "delta_delta"}
    assert (data["category"] == "all").all()
    for metric in ("clip_t", "hps", "lpips"):
        per = data[data.metric == metric].groupby("series")["k"].apply(list)
        assert len(per) == 3 and all(ks == [1, 5, 10, 50] for ks in per)
    dd = data[(data.kind == "delta_delta") & (data.metric == "hps")]
    dose = st[(st.kind == "dose") & (st.basis == "delta_delta") & (st.metric == "hps")].iloc[0]
    assert (dd["slope"] == dose["mean"]).all() and (dd["slope_p"] == dose["p_adj_family"]).all()
    assert dd["series"].iloc[0] == "ΔΔ sink (cf − cf_random)"


def test_plot_dose_response_panels_axes_points_and_margin_band():
    st = stats_rows(ks=(1, 5, 10, 50))
    drawn = eff.plot_dose_response(st)
    axes = [ax for ax in drawn.figure.axes if ax.get_visible()]
    assert len(axes) == 3
    assert axes[0].get_ylabel() == "effect (Δ or ΔΔ)"
    for ax, metric, margin in zip(axes, ("CLIP-T", "HPS v2.1", "LPIPS"), (0.01, 0.005, 0.05)):
        assert ax.get_title().splitlines() == [metric, f"margin ±{sig(margin, 2)}"]
        assert ax.get_xscale() == "log"
        series = [c for c in ax.containers if c.get_label() and not c.get_label().startswith("_")]
        assert len(series) == 3 and all(len(c.lines[0].get_xdata()) == 4 for c in series)
        band = [p for p in ax.patches if p.get_label() == "equivalence margin"]
        assert len(band) == 1
        ys = band[0].get_path().vertices[:, 1] * 1.0
        y0, y1 = ax.transData.inverted().transform(band[0].get_transform().transform([[0, ys.min()], [0, ys.max()]]))[:, 1]
        assert (y0, y1) == pytest.approx((-margin, margin))


def test_dose_response_rejects_ambiguous_series_and_missing_k():
    st = stats_rows()
    twin = st[st.condition == "cf-k1-L1"].assign(condition="cf-k1-L2")
    with pytest.raises(ValueError, match="several rows per"):
        eff.dose_series(pd.concat([st, twin]))
    with pytest.raises(ValueError, match="needs a k sweep"):
        eff.dose_series(st.assign(k=np.nan))


def test_forest_marks_adjusted_significance_and_has_one_row_per_comparison():
    st = stats_rows(ks=(1, 5))
    drawn = eff.plot_forest(st, adjusted="p_adj_family", alpha=0.3)
    data = drawn.data
    overall = st[st.kind.isin(["delta", "delta_delta"]) & (st.category == "all")]
    assert len(data) == len(overall)
    n_rows = overall.drop_duplicates(["kind", "condition", "reference"]).shape[0]
    assert data["y"].nunique() == n_rows == 6
    assert (data["significant"] == (data["p_adj_family"] < 0.3)).all()
    axes = drawn.figure.axes
    assert len(axes) == 3
    assert [t.get_text() for t in axes[0].get_yticklabels()][:1] == ["Δ cf-k1-L1"]
    for ax, metric in zip(axes, ("clip_t", "hps", "lpips")):
        want = data[data.metric == metric]
        filled = hollow = 0
        for c in ax.containers:
            face = mcolors.to_hex(c.lines[0].get_markerfacecolor())
            n = len(c.lines[0].get_xdata())
            filled, hollow = (filled, hollow + n) if face == "#ffffff" else (filled + n, hollow)
        assert filled == want["significant"].sum() and hollow == (~want["significant"]).sum()
    with pytest.raises(ValueError, match="not a stats column"):
        eff.plot_forest(st.drop(columns="p_adj_family"))


def test_save_writes_vector_pdf_and_png(tmp_path):
    drawn = eff.plot_forest(stats_rows(ks=(1,)))
    save(drawn.figure, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))
