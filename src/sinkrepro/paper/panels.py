"""Qualitative panels: baseline | sink-removed | random-removed, picked by the paper's taxonomy.

Groups (docs/paper-items.md, "qualitative panels"), each from the sink condition's
per-image LPIPS (vs baseline) and ΔCLIP-T (sink − baseline):
  A  high LPIPS while CLIP-T is stable (|ΔCLIP-T| < clip_tol): the image changes, the alignment doesn't
  B  LPIPS between its 25th and 75th percentile and stable, closest to the median: a typical image
  C  largest |ΔCLIP-T|: where alignment moves most
  D  lowest LPIPS: where removal does least
Groups are drawn in that order from the images not yet picked, so no image appears twice.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from PIL import Image

from sinkrepro.io import read_jsonl
from sinkrepro.paper.numbers import sig
from sinkrepro.paper.style import FONT_SIZE, Drawn, finish, is_standin, new_figure
from sinkrepro.paper.summarise import paired_deltas
from sinkrepro.stats.groups import require_columns

GROUPS = {
    "A": "high LPIPS, stable CLIP-T",
    "B": "median LPIPS, stable CLIP-T",
    "C": "largest |ΔCLIP-T|",
    "D": "lowest LPIPS",
}
EXAMPLES_PER_ROW = 2
ROW_HEIGHT_IN = 2.0


def read_manifests(shard_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """One row per image of the given shard directories, with `path` to its PNG."""
    rows = []
    for shard in map(Path, shard_dirs):
        manifest = shard / "manifest.jsonl"
        if not manifest.exists():
            raise FileNotFoundError(f"{manifest}: image shard has no manifest.jsonl (docs/contracts.md)")
        rows += [dict(r, path=str(shard / r["file"])) for r in read_jsonl(manifest)]
    return pd.DataFrame(rows)


def panel_pairs(scores: pd.DataFrame, manifests: pd.DataFrame, condition: str, control: str,
                baseline: str = "base") -> pd.DataFrame:
    """Per (seed, prompt_id): prompt, LPIPS and ΔCLIP-T of sink and random removal, and the three PNGs."""
    require_columns(manifests, ["condition", "seed", "prompt_id", "prompt", "path"], "image manifests")
    keys = ["seed", "prompt_id"]
    wide = None
    for name, cond in (("sink", condition), ("random", control)):
        d = paired_deltas(scores[scores["metric"].isin(["lpips", "clip_t"])], cond, baseline)
        d = d.pivot_table(index=keys, columns="metric", values="delta")
        missing = {"lpips", "clip_t"} - set(d.columns)
        if missing:
            raise ValueError(f"scores: no {sorted(missing)} rows pairing {cond!r} with {baseline!r}")
        d.columns = [f"{'d_clip' if m == 'clip_t' else 'lpips'}_{name}" for m in d.columns]
        wide = d if wide is None else wide.join(d, how="inner")
    base_clip = scores[(scores["metric"] == "clip_t") & (scores["condition"] == baseline)]
    wide = wide.join(base_clip.groupby(keys)["value"].mean().rename("clip_base"), how="inner").reset_index()
    for name, cond in (("base", baseline), ("sink", condition), ("random", control)):
        m = manifests[manifests["condition"] == cond][keys + ["prompt", "path"]]
        m = m.rename(columns={"path": f"path_{name}"})
        if name != "base":
            m = m.drop(columns="prompt")
        wide = wide.merge(m, on=keys, how="left")
        lost = wide[wide[f"path_{name}"].isna()]
        if len(lost):
            first = lost.iloc[0]
            raise ValueError(f"image manifests: no {cond!r} image for seed {first['seed']}, prompt "
                             f"{first['prompt_id']!r}; pass that shard directory to the panels_figure rule")
    return wide


def select_taxonomy(pairs: pd.DataFrame, n_per_group: int = 5, clip_tol: float = 0.01) -> pd.DataFrame:
    """The picked images with `group` (A-D) and `rank` within the group."""
    lp, dc = pairs["lpips_sink"], pairs["d_clip_sink"].abs()
    stable = dc < clip_tol
    q25, q50, q75 = lp.quantile([0.25, 0.5, 0.75])
    candidates = {
        "A": lp[stable].sort_values(ascending=False).index,
        "B": (lp[stable & lp.between(q25, q75)] - q50).abs().sort_values(kind="stable").index,
        "C": dc.sort_values(ascending=False, kind="stable").index,
        "D": lp.sort_values(kind="stable").index,
    }
    picked, taken = [], set()
    for group, order in candidates.items():
        chosen = [i for i in order if i not in taken][:n_per_group]
        taken.update(chosen)
        picked.append(pairs.loc[chosen].assign(group=group, rank=range(1, len(chosen) + 1)))
    return pd.concat(picked, ignore_index=True)


def _show(ax, path: str, label: str, title: str | None) -> None:
    ax.imshow(np.asarray(Image.open(path).convert("RGB")))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel(label, fontsize=FONT_SIZE - 2)
    if title:
        ax.set_title(title, fontsize=FONT_SIZE - 1)


def plot_panels(selection: pd.DataFrame, condition: str, control: str, standin: bool = False,
                title: str = "") -> Drawn:
    """A grid of examples, two per row; each example shows its group, prompt and three images."""
    n = len(selection)
    if n == 0:
        raise ValueError("selection: no images to show; the scores hold no image pairs")
    nrows = -(-n // EXAMPLES_PER_ROW)
    fig, _ = new_figure(1, 1, height=nrows * ROW_HEIGHT_IN + 1.0)
    fig.delaxes(fig.axes[0])
    cells = fig.subfigures(nrows, EXAMPLES_PER_ROW, squeeze=False)
    columns = ("baseline", "sinks removed", "random removed")
    for cell, r in zip(cells.flat, selection.itertuples()):
        axes = cell.subplots(1, 3)
        prompt = textwrap.shorten(r.prompt, 90, placeholder="…")
        cell.suptitle(f"{r.group}{r.rank} · {GROUPS[r.group]} · seed {r.seed}\n“{prompt}”",
                      fontsize=FONT_SIZE - 1)
        _show(axes[0], r.path_base, f"CLIP-T {sig(r.clip_base)}", columns[0])
        _show(axes[1], r.path_sink, f"LPIPS {sig(r.lpips_sink, 2)}\nΔCLIP-T {sig(r.d_clip_sink, 2, signed=True)}",
              columns[1])
        _show(axes[2], r.path_random, f"LPIPS {sig(r.lpips_random, 2)}\nΔCLIP-T "
              f"{sig(r.d_clip_random, 2, signed=True)}", columns[2])
    for cell in list(cells.flat)[n:]:
        cell.set_visible(False)
    empty = [g for g in GROUPS if g not in set(selection["group"])]
    note = (f"Sinks removed: {condition}; random keys removed (equal budget): {control}. LPIPS against the "
            "baseline image; ΔCLIP-T = CLIP-T(edited) − CLIP-T(baseline).")
    if empty:
        note += f" No image met group {', '.join(empty)}."
    finish(fig, title or "Qualitative examples by selection group", standin, note)
    return Drawn(fig, selection)


def qualitative_panel(scores: pd.DataFrame, manifests: pd.DataFrame, condition: str, control: str,
                      baseline: str = "base", n_per_group: int = 5, clip_tol: float = 0.01) -> Drawn:
    """Pair, select and draw in one call."""
    pairs = panel_pairs(scores, manifests, condition, control, baseline)
    selection = select_taxonomy(pairs, n_per_group, clip_tol)
    return plot_panels(selection, condition, control, is_standin(scores),
                       f"Qualitative examples: {condition} vs {control}")
