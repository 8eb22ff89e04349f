"""Torch's fused attention kernels: the attention output with its row log-sum-exp, and the incoming mass.

Both functions return None where no fused kernel takes the inputs; kernels.py then runs its
chunked fp32 path (which is also the tests' reference).

The incoming mass of key j over the first n query rows, given each row's log-sum-exp lse_i, is
    m_j = 1/n sum_{i<n} exp(s q_i.k_j + b_j - lse_i)
(only key-wise biases b [..., 1, Nk] fit; a bias that varies over query rows does not). Two ways:
- "blocks" (CPU): per head and [keys, rows] tile, one gemm whose extra dimensions add b_j - lse_i,
  exp in place, row sums. The tile stays in L2; no softmax output, no values. The exponents are
  log-probabilities (<= 0), so nothing overflows.
- "dims" (CUDA): it is a log-sum-exp over queries, so one fused call with the roles swapped gives
  it (the keys are that call's queries, the n rows its keys; ln(n m_j) - b_j comes out as its lse).
  -lse_i / s enters as extra head dimensions split into terms of q's dtype (their sum is exact to
  about fp32, as the kernels accumulate dot products in fp32); the keys carry 1 there, and the
  head dim is zero-padded to a multiple of 8. The kernels want values as wide as q, so this costs
  about a stock call over n rows.
"""
from __future__ import annotations

import itertools
from typing import Optional

import torch

# Terms of q's dtype that carry -lse / s as extra dimensions: enough for about fp32 precision.
SHIFT_TERMS = {torch.float16: 2, torch.bfloat16: 3}
HEAD_MULTIPLE = 8  # the swapped call's head dim is padded to this (what the CUDA kernels take)
TILE_BYTES = 1 << 20  # a thread's share of one CPU tile (here and in kernels.py): fits a core's L2
TILE_ROWS = 512  # query rows of such a tile (so a block of rows stays in cache too)
MASKED_BIAS = -1e30  # stands for a -inf key bias inside the CPU mass gemm: exp() of it is 0


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


def _key_bias(bias, shape, dtype) -> Optional[torch.Tensor]:
    """A bias that only depends on the key, as [B, H, Nk] of `dtype`; None if it varies over query rows."""
    if bias.shape[-2] != 1:
        return None
    return bias[..., 0, :].to(dtype).expand(shape)


def _split(x: torch.Tensor, dtype: torch.dtype, terms: int) -> torch.Tensor:
    """[..., terms] values of `dtype` whose fp32 sum is x (fp32) to about fp32 precision."""
    parts = []
    for _ in range(terms):
        part = x.to(dtype)
        parts.append(part)
        x = x - part.float()
    return torch.stack(parts, dim=-1)


def cpu_tile_bytes() -> int:
    """One CPU tile: a share per thread, as torch splits each op over its threads (fewer, larger
    ops also leave a shared host's scheduler fewer thread barriers to stall)."""
    return TILE_BYTES * torch.get_num_threads()


def _mass_by_blocks(q_rows, k, shift, key_bias, scale) -> torch.Tensor:
    """n m_j [B, H, Nk] in shift's dtype: per head, block of rows and block of keys one gemm, exp, row sums.

    Extra gemm dimensions bring the exponent's other terms: the rows carry [s q_i, -lse_i, 1] and
    the keys [k_j, 1, b_j], so the [keys, rows] tile comes out as s q_i.k_j + b_j - lse_i with no
    pass of its own (masked keys carry MASKED_BIAS: no -inf enters the gemm).
    """
    B, H, n, d = q_rows.shape
    Nk = k.shape[-2]
    dtype, device = shift.dtype, q_rows.device
    width = d + (1 if key_bias is None else 2)
    rows = torch.ones(width, n, dtype=dtype, device=device)
    keys = torch.ones(Nk, width, dtype=dtype, device=device)
    row_block = min(n, TILE_ROWS)
    key_block = max(1, cpu_tile_bytes() // (row_block * shift.element_size()))
    tile = torch.empty(min(key_block, Nk) * row_block, dtype=dtype, device=device)
    total = torch.zeros(B, H, Nk, dtype=dtype, device=device)
    for b in range(B):
        for h in range(H):
            rows[:d] = q_rows[b, h].t()
            rows[:d] *= scale
            rows[d] = shift[b, h]
            keys[:, :d] = k[b, h]
            if key_bias is not None:
                torch.clamp(key_bias[b, h], min=MASKED_BIAS, out=keys[:, d + 1])
            for r0, k0 in itertools.product(range(0, n, row_block), range(0, Nk, key_block)):
                block_rows, block_keys = rows[:, r0:r0 + row_block], keys[k0:k0 + key_block]
                logp = tile[: block_keys.shape[0] * block_rows.shape[1]].view(block_keys.shape[0], -1)
                torch.mm(block_keys, block_rows, out=logp)
                total[b, h, k0:k0 + key_block] += logp.exp_().sum(dim=1)
    return total


def _mass_by_dims(q_rows, k, shift, key_bias, scale) -> Optional[torch.Tensor]:
    """n m_j [B, H, Nk] (fp32) from one swapped fused call, -lse / s in extra head dims (any kernel)."""
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
    if result is None:
        return None
    log_total = result[1] if key_bias is None else result[1] + key_bias  # ln(n m_j)
    return log_total.exp_()


MASS_METHODS = {"blocks": _mass_by_blocks, "dims": _mass_by_dims}


def default_method(q) -> Optional[str]:
    """The incoming-mass method for q's device (one of MASS_METHODS), None where there is none."""
    return {"cpu": "blocks", "cuda": "dims"}.get(q.device.type)


def fused_mass(q, k, lse, bias=None, scale=None, n_rows: Optional[int] = None, *,
               method: Optional[str] = None) -> Optional[torch.Tensor]:
    """Incoming mass [B, H, Nk] (fp32) of the first n_rows query rows, from the rows' log-sum-exp.

    `lse` [B, H, >=n_rows] comes from the fused attention call (with the same bias and scale).
    `method` (one of MASS_METHODS) overrides default_method(q). None where neither applies (a
    bias varying over query rows, a device or shape the kernels reject).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    B, H, Nq, _ = q.shape
    n = Nq if n_rows is None else n_rows
    dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
    key_bias = None if bias is None else _key_bias(bias, (B, H, k.shape[-2]), dtype)
    method = method or default_method(q)
    if (bias is not None and key_bias is None) or n == 0 or method is None:
        return None
    shift = -lse[:, :, :n].to(dtype)  # [B, H, n]
    total = MASS_METHODS[method](q[:, :, :n], k, shift, key_bias, scale)
    return None if total is None else total.float().div_(n)
