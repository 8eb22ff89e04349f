"""A plain float64 attention that materialises everything: the reference the fast paths are tested
against (as nanoGPT keeps its manual attention beside the fused call). Softmax over the full logits,
the edit applied to the probability (or value) tensor, then multiplied by V.

It imports nothing from the fast paths (kernels, fused, runtime), so it stays an independent oracle;
it is slow and memory-hungry by design and never runs in the workflow.
"""
from __future__ import annotations

import torch


def naive_probs(q, k, bias=None, scale=None):
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = q.double() @ k.double().transpose(-1, -2) * scale  # [B, H, Nq, Nk]
    if bias is not None:
        logits = logits + bias.double()
    return logits, torch.softmax(logits, dim=-1)


def as_rows(rows):
    """An int n means the first n rows; a slice is taken as is."""
    return rows if isinstance(rows, slice) else slice(0, rows)


def naive_mass(q, k, n_rows, bias=None, scale=None):
    return naive_probs(q, k, bias, scale)[1][:, :, as_rows(n_rows)].mean(dim=-2)  # [B, H, Nk]


def naive_select(spec, mass, allowed):
    """Top/bottom keys by sorting (not topk); mass [B, H, Nk], allowed [B, Nk]."""
    B, H, Nk = mass.shape
    sign = -1.0 if spec.select == "top" else 1.0
    if spec.scope == "shared":
        score = (sign * mass.mean(1)).masked_fill(~allowed, float("inf"))
        n = min(spec.k * H, int(allowed[0].sum()))
        return torch.argsort(score, dim=-1)[:, None, :n].expand(B, H, n)
    score = (sign * mass).masked_fill(~allowed[:, None], float("inf"))
    return torch.argsort(score, dim=-1)[..., : spec.k]


def naive_edit(q, k, v, keys, spec, n_rows, n_stat_rows, bias=None, scale=None, noise=None, valid=None):
    """Edited output [B, H, Nq, d] and edited mass [B, H], from the materialised probabilities.

    `n_rows` (edited rows) and `n_stat_rows` (rows the edited mass averages) are a count of
    leading rows or a slice."""
    logits, probs = naive_probs(q, k, bias, scale)
    chosen = torch.ones(keys.shape, dtype=torch.bool) if valid is None else valid.cpu()
    sel = torch.zeros(probs.shape[:2] + probs.shape[-1:], dtype=torch.bool).scatter_(-1, keys, chosen)[:, :, None]
    edited = probs
    if spec.path == "score":
        shift = float("-inf") if spec.mask_bias is None else spec.mask_bias
        edited = torch.softmax(logits + torch.where(sel, shift, 0.0), dim=-1)
    elif spec.path in ("prob_scale", "both"):
        s = (probs * sel).sum(-1, keepdim=True)
        edited = torch.where(sel, spec.eta * probs, probs * (1 - spec.eta * s) / (1 - s))
        edited = edited / edited.sum(-1, keepdim=True)
    values = v.double()
    if spec.path in ("value", "both"):
        mean = values.mean(dim=-2, keepdim=True).expand_as(values)
        idx = keys[..., None].expand(*keys.shape, v.shape[-1])
        new = {"zero": torch.zeros_like(values), "mean": mean,
               "lerp": spec.alpha * values + (1 - spec.alpha) * mean}.get(spec.value_mode)
        new_sel = noise.double() if spec.value_mode == "noise" else torch.gather(new, 2, idx)
        values = values.scatter(2, idx, new_sel)
    out = probs @ v.double()
    rows = as_rows(n_rows)
    out[:, :, rows] = (edited @ values)[:, :, rows]
    left = (edited * sel).sum(-1)[:, :, as_rows(n_stat_rows)].mean(-1)
    return out, left
