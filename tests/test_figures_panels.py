"""Qualitative panels, FID calibration and per-category figures, checked through their data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import fid_stats_rows, image_shards, stats_rows
from sinkrepro.paper import calibration_figures as cal
from sinkrepro.paper import panels
from sinkrepro.paper.numbers import sig
from sinkrepro.paper.style import STANDIN_NOTICE

SINK, RAND = "cf-k1-L1", "cf_random-k1-L1"


@pytest.fixture(scope="module")
def shard_inputs(tmp_path_factory):
    shards, scores = image_shards(tmp_path_factory.mktemp("images"), n_prompts=10, seeds=(0, 1))
    return panels.read_manifests(shards), scores


def test_panel_pairs_match_a_naive_join(shard_inputs):
    manifests, scores = shard_inputs
    pairs = panels.panel_pairs(scores, manifests, SINK, RAND)
    assert len(pairs) == 20  # 10 prompts x 2 seeds
    r = pairs.iloc[7]

    def value(metric, cond):
        sel = scores[(scores.metric == metric) & (scores.condition == cond) & (scores.seed == r.seed)
                     & (scores.prompt_id == r.prompt_id)]
        return sel["value"].item()

    assert r.lpips_sink == pytest.approx(value("lpips", SINK))
    assert r.d_clip_sink == pytest.approx(value("clip_t", SINK) - value("clip_t", "base"))
    assert r.d_clip_random == pytest.approx(value("clip_t", RAND) - value("clip_t", "base"))
    assert r.clip_base == pytest.approx(value("clip_t", "base"))
    assert f"/{RAND}/seed{r.seed}/" in r.path_random and r.path_random.endswith(".png")
    m = manifests[(manifests.prompt_id == r.prompt_id) & (manifests.condition == "base")]
    assert r.prompt == m["prompt"].iloc[0]


def naive_taxonomy(lpips, dclip, n, tol):
    """The paper's rules written out with plain loops, groups drawn in order without repeats."""
    idx = list(range(len(lpips)))
    q25, q50, q75 = np.quantile(lpips, [0.25, 0.5, 0.75])
    stable = [i for i in idx if abs(dclip[i]) < tol]
    rules = {
        "A": sorted(stable, key=lambda i: -lpips[i]),
        "B": sorted([i for i in stable if q25 <= lpips[i] <= q75], key=lambda i: abs(lpips[i] - q50)),
        "C": sorted(idx, key=lambda i: -abs(dclip[i])),
        "D": sorted(idx, key=lambda i: lpips[i]),
    }
    taken, out = set(), {}
    for group, order in rules.items():
        out[group] = [i for i in order if i not in taken][:n]
        taken.update(out[group])
    return out


def test_taxonomy_follows_the_paper_rules():
    rng = np.random.default_rng(3)
    pairs = pd.DataFrame({"lpips_sink": rng.uniform(0, 1, 60), "d_clip_sink": rng.normal(0, 0.02, 60)})
    sel = panels.select_taxonomy(pairs, n_per_group=3, clip_tol=0.01)
    want = naive_taxonomy(pairs.lpips_sink.to_numpy(), pairs.d_clip_sink.to_numpy(), 3, 0.01)
    for group, rows in want.items():
        got = sel[sel.group == group]
        assert list(got.lpips_sink) == list(pairs.lpips_sink.iloc[rows])
        assert list(got["rank"]) == [1, 2, 3]
    assert (sel[sel.group.isin(["A", "B"])].d_clip_sink.abs() < 0.01).all()


def test_qualitative_panel_shows_three_images_prompt_and_scores_per_example(shard_inputs):
    manifests, scores = shard_inputs
    drawn = panels.qualitative_panel(scores, manifests, SINK, RAND, n_per_group=2, clip_tol=0.05)
    sel = drawn.data
    assert len(sel) == 8 and set(sel.group) == {"A", "B", "C", "D"}
    image_axes = [ax for ax in drawn.figure.findobj(lambda o: hasattr(o, "get_images")) if ax.get_images()]
    assert len(image_axes) == 3 * len(sel)
    cells = [sf for sf in drawn.figure.subfigs if sf.get_visible()]
    assert len(cells) == len(sel)
    for cell, r in zip(cells, sel.itertuples()):
        assert r.prompt in cell.get_suptitle() and cell.get_suptitle().startswith(f"{r.group}{r.rank}")
        axes = cell.axes
        assert [ax.get_title() for ax in axes] == ["baseline", "sinks removed", "random removed"]
        assert axes[1].get_xlabel() == f"LPIPS {sig(r.lpips_sink, 2)}\nΔCLIP-T {sig(r.d_clip_sink, 2, signed=True)}"
        assert axes[2].get_xlabel().startswith(f"LPIPS {sig(r.lpips_random, 2)}")
        assert axes[0].get_images()[0].get_array().shape == (32, 32, 3)
    texts = " ".join(" ".join(t.get_text().split()) for t in drawn.figure.texts)
    assert STANDIN_NOTICE in texts


def test_panel_errors_name_the_missing_input(shard_inputs):
    manifests, scores = shard_inputs
    with pytest.raises(ValueError, match="no 'cf-k1-L1' image"):
        panels.panel_pairs(scores, manifests[manifests.condition != SINK], SINK, RAND)
    with pytest.raises(ValueError, match=r"no \['lpips'\] rows"):
        panels.panel_pairs(scores[scores.metric != "lpips"], manifests, SINK, RAND)
    with pytest.raises(FileNotFoundError, match="manifest.jsonl"):
        panels.read_manifests([manifests.path.iloc[0].rsplit("/", 1)[0] + "/nowhere"])


def test_fid_calibration_groups_perturbations_and_draws_the_seed_floor():
    rows = fid_stats_rows()
    drawn = cal.plot_fid_calibration(pd.concat([rows, stats_rows()]))
    data = drawn.data
    assert list(dict.fromkeys(data.family)) == ["seed", "CFG", "steps", "sampler", "random", "sink"]
    bars = data.drop_duplicates("bar")
    assert bars.set_index("bar")["bar_mean"]["cfg: CFG 6.5"] == pytest.approx(36.0)  # mean of its two seeds
    assert list(bars.bar) == ["another seed", "cfg: CFG 6.5", "steps: steps 3", "sampler: sampler euler",
                              "random (cf_random, k=1)", "sink (cf, k=1)"]
    ax = drawn.figure.axes[0]
    assert len(ax.patches) == len(bars) == 6
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == sorted(bars.bar_mean)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(bars.bar)
    floor = [ln for ln in ax.get_lines() if ln.get_label() == "seed-to-seed floor"]
    assert floor[0].get_xdata()[0] == pytest.approx(30.0)
    assert ax.get_xlabel() == "FID against the reference set"
    with pytest.raises(ValueError, match="kind=='fid'"):
        cal.plot_fid_calibration(stats_rows())


def test_category_breakdown_defaults_to_the_largest_k_and_draws_each_category():
    st = stats_rows(ks=(1, 5, 10))
    drawn = cal.plot_category_breakdown(st)
    data = drawn.data
    assert set(data.condition) == {"cf-k10-L1"}
    assert len(data) == 3 * 3  # 3 metrics x 3 categories in the synthetic stats
    axes = [ax for ax in drawn.figure.axes if ax.get_visible()]
    assert len(axes) == 3
    for ax in axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["single object", "two object", "counting"]
        (series,) = [c for c in ax.containers]
        assert len(series.lines[0].get_ydata()) == 3
    picked = cal.category_rows(st, conditions=["cf-k1-L1", "cf-k5-L1"])
    assert set(picked.condition) == {"cf-k1-L1", "cf-k5-L1"}
    with pytest.raises(ValueError, match="no per-category rows"):
        cal.category_rows(st, conditions=["nope"])
    with pytest.raises(ValueError, match="categories: true"):
        cal.category_rows(st[st.category == "all"])
