"""Legibility check for any matplotlib Figure, from the text extents matplotlib computes when it draws:

- every drawn text lies inside the canvas;
- no two texts overlap (rotated texts as rotated rectangles);
- no text reads "nan";
- no text placed inside an Axes (an annotation, a slope box) covers a data point.

`problems(fig)` returns one line per defect ([] when the figure is clean).
"""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, LineCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.text import Text

TOLERANCE_PX = 0.5
NAN = re.compile(r"\bnan\b", re.IGNORECASE)


def problems(fig: Figure) -> list[str]:
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = drawn_texts(fig)
    boxes = [(t, corners(t, renderer)) for t in texts]
    width, height = fig.canvas.get_width_height()
    found = []
    for t, c in boxes:
        if NAN.search(t.get_text()):
            found.append(f"text {t.get_text()!r} reads 'nan'")
        x0, y0 = c.min(axis=0)
        x1, y1 = c.max(axis=0)
        if x0 < -TOLERANCE_PX or y0 < -TOLERANCE_PX or x1 > width + TOLERANCE_PX or y1 > height + TOLERANCE_PX:
            found.append(f"text {t.get_text()!r} extends outside the canvas "
                         f"([{x0:.0f}, {x1:.0f}] x [{y0:.0f}, {y1:.0f}] in {width} x {height} px)")
    for (a, ca), (b, cb) in itertools.combinations(boxes, 2):
        if overlap(ca, cb) > TOLERANCE_PX:
            found.append(f"texts {a.get_text()!r} and {b.get_text()!r} overlap")
    for ax in fig.get_axes():
        if not ax.get_visible():
            continue
        points = data_points(ax)
        for t in ax.texts:
            if not _shown(t) or not len(points):
                continue
            box = t.get_window_extent(renderer)
            patch = t.get_bbox_patch()
            if patch is not None:
                box = patch.get_window_extent(renderer)
            inside = (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & \
                (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)
            if inside.any():
                found.append(f"text {t.get_text()!r} covers {int(inside.sum())} data point(s)")
    return found


def _shown(t: Text) -> bool:
    if not (t.get_visible() and t.get_text().strip()):
        return False
    parent = t.axes or t.figure
    while parent is not None:
        if not parent.get_visible():
            return False
        parent = getattr(parent, "_parent", None) if isinstance(parent, SubFigure) else None
    return True


def drawn_texts(fig: Figure | SubFigure) -> list[Text]:
    """Every non-empty visible text the figure draws: titles, labels, the tick labels actually drawn,
    legends, annotations and figure texts, subfigures included."""
    texts = [fig._suptitle, fig._supxlabel, fig._supylabel, *fig.texts]
    for legend in fig.legends:
        texts += [*legend.get_texts(), legend.get_title()]
    for sub in fig.subfigs:
        texts += drawn_texts(sub)
    for ax in fig.axes:
        if ax.figure is not fig or not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts,
                  ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text()]
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks this draw shows (inside the view limits)
                texts += [tick.label1, tick.label2]
        if ax.get_legend():
            texts += [*ax.get_legend().get_texts(), ax.get_legend().get_title()]
    unique = {id(t): t for t in texts if t is not None and _shown(t)}
    return list(unique.values())


def corners(t: Text, renderer) -> np.ndarray:
    """The 4 display-space corners of the text's (possibly rotated) rectangle."""
    box = t.get_window_extent(renderer)
    angle = math.radians(t.get_rotation())
    if abs(math.sin(angle)) < 1e-6 or abs(math.cos(angle)) < 1e-6:
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    rotation = t.get_rotation()
    t.set_rotation(0)
    flat = t.get_window_extent(renderer)
    t.set_rotation(rotation)
    # a rotated rectangle's bounding box shares its centre
    cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
    w, h = flat.width / 2, flat.height / 2
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[cx + c * x - s * y, cy + s * x + c * y] for x, y in ((-w, -h), (w, -h), (w, h), (-w, h))])


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Penetration depth (px) of two convex quadrilaterals by the separating-axis test; <= 0: apart."""
    depth = math.inf
    for quad in (a, b):
        for i in range(4):
            edge = quad[(i + 1) % 4] - quad[i]
            normal = np.array([-edge[1], edge[0]])
            norm = np.hypot(*normal)
            if norm == 0:
                continue
            normal /= norm
            pa, pb = a @ normal, b @ normal
            depth = min(depth, min(pa.max(), pb.max()) - max(pa.min(), pb.min()))
    return depth


def data_points(ax) -> np.ndarray:
    """Display coordinates of the data drawn in `ax`: line vertices, scatter offsets, error-bar ends."""
    pts = []
    for line in ax.lines:
        if isinstance(line, Line2D) and line.get_visible() and line.get_marker() not in (None, "", "None", " "):
            xy = np.column_stack(line.get_data(orig=False)).astype(float)
            pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        if not coll.get_visible() or not isinstance(coll, Collection):
            continue
        if isinstance(coll, LineCollection):
            segs = [s for s in coll.get_segments() if len(s)]
            if segs:
                pts.append(coll.get_transform().transform(np.concatenate(segs)))
        elif len(coll.get_offsets()):
            pts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
    pts = [p[np.isfinite(p).all(axis=1)] for p in pts]
    return np.concatenate(pts) if pts else np.empty((0, 2))
