"""One attention call under an InterventionSpec: detect, select, edit (pure tensor code)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from sinkrepro.attention.kernels import KeyEdit, SinkStats, attention_with_lse, edit_attention, incoming_mass
from sinkrepro.attention.select import needs_mass, only_mask, select_keys
from sinkrepro.attention.spec import InterventionSpec
from sinkrepro.attention.tokens import KeyLayout


def key_edit(spec: InterventionSpec) -> KeyEdit:
    return KeyEdit(path=spec.path, mask_bias=spec.mask_bias, eta=spec.eta, value_mode=spec.value_mode,
                   alpha=spec.alpha)


@dataclass
class Intervention:
    out: torch.Tensor                 # [B, H, Nq, d] edited attention output
    keys: torch.Tensor                # [B, H, n] chosen keys
    valid: Optional[torch.Tensor]     # [B, H, n] which chosen keys are edited (spec.only); None = all
    edited_mass: torch.Tensor         # [B, H] mass left on the edited keys (image-query mean)
    stats: Optional[SinkStats]        # incoming mass before the edit (when computed)


def intervene(q, k, v, spec: InterventionSpec, layout: KeyLayout, *, bias=None, scale=None,
              generators: Optional[Sequence[torch.Generator]] = None, noise=None,
              row_stats: bool = False) -> Intervention:
    """Run `spec` on one attention call. q [B, H, Nq, d], k/v [B, H, Nk, d]; `layout` describes keys.

    `generators` (one CPU generator per batch row) drive random selections; `noise` [B, H, n, d]
    (or a function of n returning it) is the replacement for value_mode="noise".

    The kernels treat the first rows as the image rows. Where the image rows sit later (FLUX's
    [text, image] sequence), the query rows are rotated to the front and the output rotated back:
    attention is computed row by row, so this changes which rows are image rows and nothing else.
    """
    shift = layout.row_start
    if shift:
        q = q.roll(-shift, dims=-2)
        if bias is not None and bias.shape[-2] != 1:
            bias = bias.roll(-shift, dims=-2)
    result = _intervene(q, k, v, spec, layout, bias, scale, generators, noise, row_stats)
    if shift:
        result.out = result.out.roll(shift, dims=-2)
    return result


def _intervene(q, k, v, spec, layout, bias, scale, generators, noise, row_stats) -> Intervention:
    n_rows = layout.n_image_rows
    out, lse = attention_with_lse(q, k, v, bias, scale)  # the stock output and its row log-sum-exp
    stats = None
    if row_stats or needs_mass(spec):
        stats = incoming_mass(q, k, bias, scale, n_rows, lse=lse, row_stats=row_stats)
    keys = select_keys(spec, layout, q.shape[1], k.shape[-2], stats.mass if stats else None, generators)
    if callable(noise):
        noise = noise(keys.shape[-1])
    valid = only_mask(spec, layout, keys)
    out, left = edit_attention(q, k, v, keys, key_edit(spec), bias=bias, scale=scale,
                               n_rows=n_rows if spec.rows == "image" else q.shape[-2], n_stat_rows=n_rows,
                               noise=noise, valid=valid, out=out, lse=lse)
    return Intervention(out, keys, valid, left, stats)
