"""Attention maths for sink detection and key edits, without the [B, H, Nq, Nk] tensor.

Shapes: q [B, H, Nq, d], k and v [B, H, Nk, d]. `bias` is an additive float mask that broadcasts
to [B, H, Nq, Nk] (a boolean SDPA mask is converted by `as_bias`). The first `n_rows` query rows
are the ones a statistic or an edit applies to (image queries come first in diffusers' joint order).

Two facts keep this fast:
- the fused kernels return each row's log-sum-exp (lse) beside the stock output O, so the
  probability of any key is exp(s*q_i.k_j + bias_ij - lse_i) without a softmax pass;
- editing a small key set S is a rank-|S| correction of O. With w_i = sum_{j in S} P_ij and
  u_i = sum_{j in S} P_ij V_j, scaling the logits of S by factor f = exp(bias) gives
  O'_i = (O_i - (1 - f) u_i) / (1 - (1 - f) w_i). Rows where S holds more than CORRECTION_MAX_MASS
  of the probability are recomputed exactly from a key-masked attention call instead.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from sinkrepro.attention.fused import cpu_tile_bytes, fused_attention, fused_mass

# Budget for one chunk of fp32 [B, H, rows, Nk] scores (two buffers live at once): small chunks stay
# in cache on CPU; large ones keep a GPU busy.
CHUNK_BYTES = {"cpu": 16 << 20, "cuda": 512 << 20}
TOP_GROUP = 8  # columns a group in top_values
# Above this edited mass a row's correction divides by < 0.5: recompute it exactly instead.
CORRECTION_MAX_MASS = 0.5


def as_bias(attn_mask: Optional[torch.Tensor], dtype: torch.dtype = torch.float32) -> Optional[torch.Tensor]:
    """An SDPA mask as an additive 4-D float bias (True = attend, as SDPA reads boolean masks)."""
    if attn_mask is None:
        return None
    if attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device).masked_fill_(
            ~attn_mask, float("-inf"))
    while attn_mask.dim() < 4:
        attn_mask = attn_mask.unsqueeze(0)
    return attn_mask.to(dtype)


def _bias_rows(bias: Optional[torch.Tensor], start: int, stop: int) -> Optional[torch.Tensor]:
    if bias is None or bias.shape[-2] == 1:
        return bias
    return bias[..., start:stop, :]


def default_budget(device) -> int:
    return CHUNK_BYTES.get(torch.device(device).type, CHUNK_BYTES["cpu"])


def chunk_rows(batch_heads: int, n_keys: int, budget_bytes: int) -> int:
    """Query rows per chunk so that two fp32 [B*H, rows, Nk] buffers fit the budget."""
    return max(1, budget_bytes // (8 * batch_heads * n_keys))


def attention_with_lse(q, k, v, bias=None, scale=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention output [B, H, Nq, d] and per-row log-sum-exp [B, H, Nq] (fp32), fused where possible."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fused = fused_attention(q, k, v, bias, scale)
    if fused is not None:
        return fused
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype), scale=scale)
    return out, row_lse(q, k, bias, scale)


def row_lse(q, k, bias=None, scale=None, budget_bytes: Optional[int] = None) -> torch.Tensor:
    """Per-row log-sum-exp [B, H, Nq] in fp32, chunked over query rows."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B, H, Nq, _ = q.shape
    kt = k.float().transpose(-1, -2)  # [B, H, d, Nk]
    step = chunk_rows(B * H, k.shape[-2], default_budget(q.device) if budget_bytes is None else budget_bytes)
    parts = []
    for start in range(0, Nq, step):
        logits = torch.matmul(q[:, :, start:start + step].float(), kt).mul_(scale)  # [B, H, c, Nk]
        b = _bias_rows(bias, start, start + step)
        if b is not None:
            logits += b
        parts.append(torch.logsumexp(logits, dim=-1))
    return torch.cat(parts, dim=-1)


@dataclass
class SinkStats:
    mass: torch.Tensor                       # [B, H, Nk] mean probability over the first n_rows rows
    entropy: Optional[torch.Tensor] = None   # [B, H] mean row entropy (nats)
    top5: Optional[torch.Tensor] = None      # [B, H] mean over rows of the row's top-5 probability sum


def top_values(x: torch.Tensor, k: int, members: int = TOP_GROUP) -> torch.Tensor:
    """The k largest values [..., k] of each row of x [..., N]: x.topk(k).values, faster for long rows.

    Columns g, g + G, g + 2G, ... form group g (G = N // members). The k largest values lie in the
    k groups with the largest maxima (a value elsewhere is beaten by all k of those maxima), so a
    max pass over whole rows leaves topks over G group maxima and k * members candidates.
    """
    n_groups = x.shape[-1] // members
    if n_groups <= k:
        return x.topk(min(k, x.shape[-1]), dim=-1).values
    body = x[..., : n_groups * members].unflatten(-1, (members, n_groups))  # [..., members, G]
    best = body.amax(dim=-2).topk(k, dim=-1).indices                        # [..., k] groups
    picked = torch.gather(body, -1, best.unsqueeze(-2).expand(*best.shape[:-1], members, k))
    return torch.cat([picked.flatten(-2), x[..., n_groups * members:]], dim=-1).topk(k, dim=-1).values


def chunk_shape(heads: int, n_rows: int, n_keys: int, budget_bytes: int) -> tuple[int, int]:
    """(heads, rows) per chunk so that two fp32 [heads, rows, Nk] buffers fit the budget."""
    rows = max(1, budget_bytes // (8 * n_keys))
    if rows < n_rows:
        return 1, rows
    return max(1, min(heads, rows // max(1, n_rows))), n_rows


def _bias_chunk(bias: Optional[torch.Tensor], b: int, heads: slice, rows: slice) -> Optional[torch.Tensor]:
    """The bias of batch row b, heads and query rows, broadcastable to [heads, rows, Nk]."""
    if bias is None:
        return None
    bias = bias[(None,) * (4 - bias.dim())]  # [B or 1, H or 1, Nq or 1, Nk]
    bias = bias[b if bias.shape[0] > 1 else 0]
    return bias[heads if bias.shape[0] > 1 else slice(None), rows if bias.shape[1] > 1 else slice(None)]


def incoming_mass(q, k, bias=None, scale=None, n_rows: Optional[int] = None, *, lse=None, row_stats: bool = False,
                  budget_bytes: Optional[int] = None, fused: bool = True) -> SinkStats:
    """Incoming mass m[b,h,j] = mean_{i < n_rows} softmax(s*q_i.k_j + bias_ij), exact in fp32.

    With `lse` [B, H, >=n_rows] (the rows' log-sum-exp from the fused attention call) and no row
    stats, fused.fused_mass gives the mass. Otherwise, or with fused=False, or where that does not
    apply, it chunks over heads and query rows in fp32 (chunks the size of a core's L2 on CPU),
    so the full probability tensor never exists. `row_stats` adds the mean row entropy and top-5
    concentration of the rows.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B, H, Nq, d = q.shape
    Nk = k.shape[-2]
    n_rows = Nq if n_rows is None else n_rows
    if fused and lse is not None and not row_stats:
        mass = fused_mass(q, k, lse, bias, scale, n_rows)
        if mass is not None:
            return SinkStats(mass)
    if q.dtype not in (torch.float32, torch.float64):
        lse = None  # a half-precision kernel's lse is good to ~1e-4: recompute it exactly here
    kt = k.float().transpose(-1, -2)  # [B, H, d, Nk]
    mass = torch.zeros(B, H, 1, Nk, dtype=torch.float32, device=q.device)
    entropy = torch.zeros(B, H, dtype=torch.float32, device=q.device) if row_stats else None
    top5 = torch.zeros_like(entropy) if row_stats else None
    if budget_bytes is None:
        budget_bytes = 2 * cpu_tile_bytes() if q.device.type == "cpu" else default_budget(q.device)
    g, step = chunk_shape(H, n_rows, Nk, budget_bytes)
    for b, h0, start in itertools.product(range(B), range(0, H, g), range(0, n_rows, step)):
        heads, rows = slice(h0, h0 + g), slice(start, min(start + step, n_rows))
        qc = q[b, heads, rows].float()  # [g, c, d]
        if lse is None:
            logits = torch.matmul(qc, kt[b, heads]).mul_(scale)
        else:  # logits - lse in one call: the log-probabilities
            logits = torch.baddbmm(-lse[b, heads, rows, None].float(), qc, kt[b, heads], alpha=scale)
        bias_c = _bias_chunk(bias, b, heads, rows)
        if bias_c is not None:
            logits += bias_c
        if lse is None:  # shift by the row max; the row sum of exp() then normalises
            logits -= logits.amax(dim=-1, keepdim=True)
        weights = torch.exp(logits)  # [g, c, Nk] unnormalised (or, given lse, the) probabilities
        total = weights.sum(dim=-1, keepdim=True) if lse is None else None  # [g, c, 1]
        inv = 1.0 / total if total is not None else torch.ones_like(logits[..., :1])
        mass[b, heads].baddbmm_(inv.transpose(-1, -2), weights)  # sum over rows of p_ij
        if row_stats:
            top5[b, heads] += (top_values(logits, 5).exp().sum(-1, keepdim=True) * inv).sum((-1, -2))
            if bias_c is not None:
                logits.clamp_(min=torch.finfo(torch.float32).min)  # masked keys: 0 * finite, not 0 * -inf
            plogp = logits.mul_(weights).sum(dim=-1, keepdim=True) * inv  # sum_j p_ij * logits_ij
            if total is not None:
                plogp -= total.log()  # log p_ij = logits_ij - log(total_i)
            entropy[b, heads] -= plogp.sum(dim=(-1, -2))
    mass = mass.view(B, H, Nk) / n_rows
    if row_stats:
        entropy /= n_rows
        top5 /= n_rows
    return SinkStats(mass, entropy, top5)


@dataclass(frozen=True)
class KeyEdit:
    """What happens to the selected keys (see InterventionSpec for the meaning of each field)."""
    path: str = "score"            # score | prob_scale | value | both (= prob_scale, then value)
    mask_bias: Optional[float] = None
    eta: float = 0.0
    value_mode: str = "zero"       # zero | mean | noise | lerp
    alpha: float = 0.0

    @property
    def logit_factor(self) -> float:
        """exp(mask_bias): the factor a score edit puts on the selected keys' unnormalised weights."""
        return 0.0 if self.mask_bias is None else math.exp(self.mask_bias)


def edited_values(v, keys, edit: KeyEdit, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Replacement values [B, H, n, d] (fp32) for the selected keys."""
    v_sel = _gather_keys(v, keys).float()
    if edit.value_mode == "zero":
        return torch.zeros_like(v_sel)
    mean = v.float().mean(dim=-2, keepdim=True).expand_as(v_sel)  # token mean per (b, h)
    if edit.value_mode == "mean":
        return mean.clone()
    if edit.value_mode == "lerp":
        return edit.alpha * v_sel + (1.0 - edit.alpha) * mean
    if edit.value_mode == "noise":
        if noise is None or noise.shape != v_sel.shape:
            raise ValueError(f"value_mode=noise needs a noise tensor of shape {tuple(v_sel.shape)}")
        return noise.to(v_sel)
    raise ValueError(f"value_mode: {edit.value_mode!r} is not one of zero, mean, noise, lerp")


def _gather_keys(x, keys):
    """x [B, H, Nk, d], keys [B, H, n] -> [B, H, n, d]."""
    return torch.gather(x, 2, keys.unsqueeze(-1).expand(*keys.shape, x.shape[-1]))


def _key_mask(keys, valid, n_keys: int, dtype, device) -> torch.Tensor:
    """Additive [B, H, 1, Nk] mask with -inf on the selected (valid) keys."""
    mask = torch.zeros(*keys.shape[:2], 1, n_keys, dtype=dtype, device=device)
    fill = torch.full(keys.shape, float("-inf"), dtype=dtype, device=device)
    if valid is not None:
        fill = fill.masked_fill(~valid, 0.0)
    return mask.scatter_(-1, keys.unsqueeze(2), fill.unsqueeze(2))


def edit_attention(q, k, v, keys, edit: KeyEdit, *, bias=None, scale=None, n_rows: Optional[int] = None,
                   n_stat_rows: Optional[int] = None, noise=None, valid=None, out=None, lse=None,
                   budget_bytes: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with the keys `keys` [B, H, n] edited for the first `n_rows` query rows.

    Keys must be unique per (b, h); `valid` [B, H, n] (optional) leaves the False ones unedited.
    Returns the edited output [B, H, Nq, d] (q's dtype) and the mass left on the edited keys
    [B, H], averaged over the first `n_stat_rows` rows (exact: no floors). `out`/`lse` may pass a
    stock output and its log-sum-exp computed earlier; that `out` is edited in place.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B, H, Nq, _ = q.shape
    n_rows = Nq if n_rows is None else n_rows
    n_stat_rows = n_rows if n_stat_rows is None else min(n_stat_rows, n_rows)
    if out is None or lse is None:
        out, lse = attention_with_lse(q, k, v, bias, scale)
    n = keys.shape[-1]
    left = torch.zeros(B, H, dtype=torch.float32, device=q.device)
    if n == 0:
        return out, left
    f = edit.logit_factor
    score_edit = edit.path in ("score", "prob_scale", "both")
    value_edit = edit.path in ("value", "both")
    k_sel = _gather_keys(k, keys).float().transpose(-1, -2)  # [B, H, d, n]
    v_sel = _gather_keys(v, keys).float()                     # [B, H, n, d]
    dv = edited_values(v, keys, edit, noise) - v_sel if value_edit else None
    exact = None  # key-masked output and lse, computed once if some row needs it
    scaled = edit.path in ("prob_scale", "both")  # "both": the eta scaling, then the value edit
    step = chunk_rows(B * H, n + 4 * q.shape[-1], default_budget(q.device) if budget_bytes is None else budget_bytes)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        logits = torch.matmul(q[:, :, start:stop].float(), k_sel).mul_(scale)  # [B, H, c, n]
        b = _bias_rows(bias, start, stop)
        if b is not None:
            logits += torch.gather(b.expand(B, H, b.shape[-2], b.shape[-1]), -1,
                                   keys.unsqueeze(2).expand(B, H, b.shape[-2], n))
        p_sel = (logits - lse[:, :, start:stop, None]).exp_()  # [B, H, c, n] stock P on the keys
        if valid is not None:
            p_sel = p_sel * valid[:, :, None, :]              # unedited keys drop out of the correction
        w = p_sel.sum(-1, keepdim=True)                         # [B, H, c, 1]
        u = torch.matmul(p_sel, v_sel)                          # [B, H, c, d]
        o = out[:, :, start:stop].float()
        if score_edit:
            if scaled:
                scale_sel = torch.full_like(w, edit.eta)        # P'_S = eta * P_S; the rest share 1 - eta*w
                new = edit.eta * u + (1 - edit.eta * w) / (1 - w) * (o - u)
            else:
                denom = 1 - (1 - f) * w
                scale_sel = f / denom
                new = o.add_(u, alpha=f - 1).div_(denom)       # in place: out's own rows when fp32
            risky = (w > CORRECTION_MAX_MASS).squeeze(-1)       # [B, H, c]
            if bool(risky.any()):
                if exact is None:
                    mask = _key_mask(keys, valid, k.shape[-2], torch.float32, q.device)
                    exact = attention_with_lse(q, k, v, mask if bias is None else bias + mask, scale)
                o_m = exact[0][:, :, start:stop].float()
                rest = (exact[1][:, :, start:stop, None] - lse[:, :, start:stop, None]).exp()  # 1 - w, exactly
                if scaled:
                    safe = edit.eta * u + (1 - edit.eta * w) * o_m
                    safe_scale = scale_sel
                else:
                    safe = (f * u + rest * o_m) / (f * w + rest)
                    safe_scale = f / (f * w + rest)
                new = torch.where(risky.unsqueeze(-1), safe, new)
                scale_sel = torch.where(risky.unsqueeze(-1), safe_scale, scale_sel)
            p_new = p_sel * scale_sel                           # [B, H, c, n] edited P on the keys
        else:
            new, p_new = o, p_sel
        if value_edit:
            new = new + torch.matmul(p_new, dv)
        if new is not o or out.dtype != torch.float32:
            out[:, :, start:stop] = new.to(out.dtype)
        if start < n_stat_rows:
            left += p_new[:, :, : n_stat_rows - start].sum(dim=(-1, -2))
    return out, left / n_stat_rows
