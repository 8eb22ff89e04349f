"""Torch's fused attention kernels: the attention output with its row log-sum-exp, and the incoming mass.

Both functions return None where no fused kernel takes the inputs; kernels.py then runs its
chunked fp32 path (which is also the tests' reference).

The incoming mass of key j over the first n query rows is itself a log-sum-exp, over queries:
    m_j = 1/n sum_{i<n} exp(s q_i.k_j + b_j - lse_i) = exp(b_j + LSE_{i<n}(s k_j.q_i - lse_i)) / n.
So one fused call with the roles swapped computes it: the keys are that call's queries, the n
rows its keys, and ln(n m_j) - b_j comes out of it. The -lse_i term goes in (SWAPPED_CALL):
- "values" (CPU, fp32/fp64): not in the logits at all; the values' first column carries the row
  weights exp(-lse_i - c), c = max_i -lse_i, so ln(n m_j) = lse'_j + ln(out'_j) + c. No mask: faster;
- "mask" (CPU, any dtype): as an fp32 additive mask [B, H, 1, n];
- "dims" (CUDA): as extra head dimensions: the rows carry -lse_i / s split into terms of q's dtype
  (their sum is exact to about fp32, as the kernels accumulate dot products in fp32), the keys
  carry 1 there, and the head dim is zero-padded to a multiple of 8.
The kernels want values as wide as q, so the swapped call costs about a stock call over n rows.
Only key-wise biases b [..., 1, Nk] fold in; a bias that varies over query rows does not.
"""
from __future__ import annotations

from typing import Optional

import torch

# Terms of q's dtype that carry -lse / s as extra dimensions: enough for about fp32 precision.
SHIFT_TERMS = {torch.float16: 2, torch.bfloat16: 3}
HEAD_MULTIPLE = 8  # the swapped call's head dim is padded to this (what the CUDA kernels take)


def fused_attention(q, k, v, bias=None, scale=None) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Output [B, H, Nq, d] and row log-sum-exp [B, H, Nq] (fp32), or None without a fitting kernel."""
    if bias is not None:
        bias = bias.to(q.dtype)
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, attn_mask=bias, scale=scale)
        return out, lse.float()
    if q.device.type != "cuda":
        return None
    try:
        if bias is None and q.dtype in (torch.float16, torch.bfloat16) and q.shape[-1] == v.shape[-1]:
            out, lse = torch.ops.aten._scaled_dot_product_flash_attention.default(
                q, k, v, 0.0, False, False, scale=scale)[:2]
        else:
            out, lse = torch.ops.aten._scaled_dot_product_efficient_attention.default(
                q, k, v, bias, True, 0.0, False, scale=scale)[:2]
    except RuntimeError:  # shapes, dtypes or alignments the kernels reject
        return None
    return out, lse[..., : q.shape[-2]].float()


def _key_bias(bias, shape) -> Optional[torch.Tensor]:
    """A bias that only depends on the key, as [B, H, Nk] fp32; None if it varies over query rows."""
    if bias.shape[-2] != 1:
        return None
    return bias[..., 0, :].float().expand(shape)


def _split(x: torch.Tensor, dtype: torch.dtype, terms: int) -> torch.Tensor:
    """[..., terms] values of `dtype` whose fp32 sum is x (fp32) to about fp32 precision."""
    parts = []
    for _ in range(terms):
        part = x.to(dtype)
        parts.append(part)
        x = x - part.float()
    return torch.stack(parts, dim=-1)


def _cpu_flash(q, k, v, mask, scale):
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=mask, scale=scale)


def _swapped_by_values(q_rows, k, shift, scale) -> torch.Tensor:
    """ln(n m_j) with exp(-lse) as row weights in the values' first column (CPU kernel, fp32/fp64).

    The call without a mask returns l_j = LSE_i(s k_j.q_i) and O_j = sum_i softmax_i(.) w_i with
    w_i = exp(shift_i - top); so ln(n m_j) = l_j + ln(O_j) + top.
    """
    top = shift.amax(dim=-1, keepdim=True)  # [B, H, 1]: keeps the weights in (0, 1]
    values = torch.zeros_like(q_rows, memory_format=torch.contiguous_format)
    values[..., 0] = (shift - top).exp()
    out, lse = _cpu_flash(k, q_rows, values, None, scale)
    return lse.to(shift.dtype) + out[..., 0].to(shift.dtype).log() + top


def _swapped_by_mask(q_rows, k, shift, scale) -> torch.Tensor:
    """ln(n m_j) with -lse as an additive fp32 mask [B, H, 1, n] (CPU kernel, any dtype)."""
    mask = shift[:, :, None, :].contiguous()  # a strided mask takes the kernel's slow path
    return _cpu_flash(k, q_rows, torch.zeros_like(q_rows), mask, scale)[1].to(shift.dtype)


def _swapped_by_dims(q_rows, k, shift, scale) -> Optional[torch.Tensor]:
    """ln(n m_j) with -lse / s as extra head dimensions, split into terms of q's dtype (any kernel)."""
    B, H, n, d = q_rows.shape
    terms = _split(shift.float() / scale, q_rows.dtype, SHIFT_TERMS.get(q_rows.dtype, 1))  # [B, H, n, t]
    t = terms.shape[-1]
    width = -(-(d + t) // HEAD_MULTIPLE) * HEAD_MULTIPLE
    rows = q_rows.new_zeros(B, H, n, width)
    rows[..., :d] = q_rows
    rows[..., d:d + t] = terms
    keys = k.new_zeros(B, H, k.shape[-2], width)
    keys[..., :d] = k
    keys[..., d:d + t] = 1.0
    result = fused_attention(keys, rows, torch.zeros_like(rows), None, scale)
    return None if result is None else result[1]


SWAPPED_CALL = {"values": _swapped_by_values, "mask": _swapped_by_mask, "dims": _swapped_by_dims}


def default_carrier(q) -> Optional[str]:
    """How -lse enters the swapped call: the cheapest exact way on q's device and dtype."""
    if q.device.type == "cpu":
        return "values" if q.dtype in (torch.float32, torch.float64) else "mask"
    return "dims" if q.device.type == "cuda" else None


def fused_mass(q, k, lse, bias=None, scale=None, n_rows: Optional[int] = None, *,
               carrier: Optional[str] = None) -> Optional[torch.Tensor]:
    """Incoming mass [B, H, Nk] (fp32) of the first n_rows query rows from one swapped fused call.

    `lse` [B, H, >=n_rows] is the rows' log-sum-exp (with the same bias and scale). `carrier`
    (one of SWAPPED_CALL) overrides default_carrier(q). None where no fused kernel applies (a
    bias varying over query rows, a device or shape the kernels reject).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B, H, Nq, _ = q.shape
    n = Nq if n_rows is None else n_rows
    key_bias = None if bias is None else _key_bias(bias, (B, H, k.shape[-2]))
    carrier = carrier or default_carrier(q)
    if (bias is not None and key_bias is None) or n == 0 or carrier is None:
        return None
    shift = -lse[:, :, :n].to(torch.float64 if q.dtype == torch.float64 else torch.float32)  # [B, H, n]
    log_mass = SWAPPED_CALL[carrier](q[:, :, :n], k, shift, scale)  # [B, H, Nk] = ln(n m_j) - b_j
    if log_mass is None:
        return None
    if key_bias is not None:
        log_mass = log_mass + key_bias
    return log_mass.float().exp_().div_(n)
