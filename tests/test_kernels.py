"""The incoming mass from the rows' log-sum-exp (CPU key blocks; CUDA's swapped fused call, run here
on the CPU kernel) and the chunked row-stats pass against the materialised float64 softmax."""
import pytest
import torch

from sinkrepro.attention import fused
from sinkrepro.attention.fused import fused_mass
from sinkrepro.attention.kernels import as_bias, attention_with_lse, incoming_mass, top_values
from sinkrepro.attention.reference import naive_probs

METHODS = ["blocks", "dims"]  # CPU; CUDA (run here on the CPU flash kernel)


def qkv(B=2, H=3, Nq=37, Nk=53, d=24, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Nq, d, generator=g) * spread
    k, v = torch.randn(B, H, Nk, d, generator=g) * spread, torch.randn(B, H, Nk, d, generator=g)
    return q, k, v


def naive_mass(q, k, n_rows, bias=None, scale=None):
    return naive_probs(q, k, bias, scale)[1][:, :, :n_rows].mean(dim=-2)  # [B, H, Nk] float64


def exact_lse(q, k, bias=None, scale=None):
    return torch.logsumexp(naive_probs(q, k, bias, scale)[0], dim=-1).float()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [dict(), dict(Nq=5, Nk=300, d=13), dict(B=1, H=1, Nq=129, Nk=7, d=64)],
                         ids=["odd", "long-keys-odd-dim", "few-keys"])
def test_fused_mass_matches_materialised_softmax_fp32(method, shape):
    q, k, _ = qkv(**shape, spread=2.0)
    n_rows = max(1, q.shape[2] - 4)  # image rows first; the last rows (text) do not count
    for scale in (None, 0.3):
        got = fused_mass(q, k, exact_lse(q, k, None, scale), None, scale, n_rows, method=method)
        ref = naive_mass(q, k, n_rows, None, scale)
        assert got.dtype == torch.float32 and got.shape == ref.shape
        assert ((got.double() - ref).abs() / ref).max() <= 1e-5


def test_fused_mass_keeps_batch_halves_and_heads_apart():
    q, k, _ = qkv(B=2, H=2, seed=1)
    q, k = q.transpose(1, 2).contiguous().transpose(1, 2), k.transpose(1, 2).contiguous().transpose(1, 2)
    assert not q.is_contiguous()  # diffusers' layout: [B, N, H, d] viewed as [B, H, N, d]
    k[1, 0, 3] *= 6  # a sink only in the cond half, head 0
    got = fused_mass(q, k, exact_lse(q, k), n_rows=30)
    ref = naive_mass(q, k, 30)
    assert ((got.double() - ref).abs() / ref).max() <= 1e-5
    assert got[1, 0].argmax() == 3 and got[0, 0].argmax() != 3 and got[1, 1].argmax() != 3


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_mass_in_half_precision(dtype, method):
    """Large logits put lse near 30: one half-precision term for -lse would be off by ~1e-2."""
    q, k, _ = qkv(Nq=61, Nk=90, d=64, spread=3.0)
    q, k = q.to(dtype), k.to(dtype)
    lse = exact_lse(q, k)
    assert lse.mean() > 20
    got = fused_mass(q, k, lse, n_rows=50, method=method)
    ref = naive_mass(q, k, 50)  # the oracle sees the same half-precision inputs, in float64
    assert ((got.double() - ref).abs() / ref).max() <= 1e-4


@pytest.mark.parametrize("method", METHODS)
def test_fused_mass_with_key_masks_per_batch_half(method):
    q, k, _ = qkv(Nq=40, Nk=60)
    keep = torch.ones(2, 1, 1, 60, dtype=torch.bool)
    keep[0, ..., 45:] = False  # the halves pad different text keys
    keep[1, ..., 52:] = False
    soft = torch.randn(2, 1, 1, 60, generator=torch.Generator().manual_seed(3))  # a finite key bias
    for bias in (as_bias(keep), as_bias(keep) + soft):
        got = fused_mass(q, k, exact_lse(q, k, bias), bias, None, 32, method=method)
        ref = naive_mass(q, k, 32, bias)
        hidden = ~keep[:, :, 0].expand_as(got)
        assert torch.equal(got[hidden], torch.zeros_like(got[hidden]))  # exactly zero, no floor
        assert ((got[~hidden].double() - ref[~hidden]).abs() / ref[~hidden]).max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_cpu_key_blocks_match_the_chunked_path_and_the_oracle(dtype, monkeypatch):
    """Many blocks of rows and keys, the last ones partial; padding per batch half, a finite key
    bias, and a key whose huge logit a -1e4 bias hides (folded into the gemm: no inf - inf)."""
    q, k, _ = qkv(Nq=45, Nk=53, d=24, seed=11, spread=2.0)
    q[..., 0] = 4.0
    loud = k.clone()
    loud[:, :, 7] = 0.0
    loud[:, :, 7, 0] = 250.0  # every row's logit on key 7 is about 200, lse without it about 20
    q, k, loud = q.to(dtype), k.to(dtype), loud.to(dtype)
    n_rows = 41
    monkeypatch.setattr(fused, "TILE_ROWS", 16)  # 16 rows a block: 41 = 16 + 16 + 9
    monkeypatch.setattr(fused, "cpu_tile_bytes", lambda: 16 * 4 * 6 + 5)  # 6 keys a block (fp64: 3): 53 = 8 * 6 + 5
    keep = torch.ones(2, 1, 1, 53, dtype=torch.bool)
    keep[0, ..., 40:] = False
    keep[1, ..., 47:] = False
    soft = torch.randn(2, 1, 1, 53, generator=torch.Generator().manual_seed(12))
    soft[..., 7] = -1e4
    for k, bias in ((k, None), (k, as_bias(keep)), (loud, as_bias(keep) + soft)):
        lse = exact_lse(q, k, bias)
        got = fused_mass(q, k, lse, bias, None, n_rows)
        chunked = incoming_mass(q.double(), k.double(), bias, None, n_rows, lse=lse.double(), fused=False).mass
        ref = naive_mass(q, k, n_rows, bias)
        assert got.dtype == torch.float32 and torch.isfinite(got).all()
        assert torch.allclose(got.double(), chunked.double(), rtol=1e-5, atol=1e-12)
        live = ref > 1e-30
        assert ((got[live].double() - ref[live]).abs() / ref[live]).max() <= 1e-5
        assert (got[~live] <= 1e-29).all()
        if bias is not None:
            assert torch.equal(got[~keep[:, :, 0].expand_as(got)], torch.zeros(13 * 3 + 6 * 3))  # exactly zero


def test_row_varying_bias_falls_back_to_the_chunked_path():
    q, k, _ = qkv()
    bias = torch.randn(1, 1, q.shape[2], k.shape[2])
    lse = exact_lse(q, k, bias)
    assert fused_mass(q, k, lse, bias, None, 30) is None
    got = incoming_mass(q, k, bias, None, 30, lse=lse).mass
    assert ((got.double() - naive_mass(q, k, 30, bias)).abs()).max() <= 1e-6


def test_incoming_mass_fused_and_chunked_paths_agree_from_the_kernels_lse():
    q, k, v = qkv(Nq=70, Nk=70, d=32, seed=4)
    _, lse = attention_with_lse(q, k, v)
    fused = incoming_mass(q, k, None, None, 60, lse=lse).mass
    chunked = incoming_mass(q, k, None, None, 60, lse=lse, fused=False, budget_bytes=2048).mass
    ref = naive_mass(q, k, 60)
    assert ((fused.double() - ref).abs() / ref).max() <= 1e-5
    assert ((chunked.double() - ref).abs() / ref).max() <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_row_stats_with_masked_keys(dtype):
    """Entropy uses sum p*logit: masked keys (p = 0, logit = -inf) must add 0, not nan."""
    q, k, _ = qkv(Nq=45, Nk=300, seed=5)
    q, k = q.to(dtype), k.to(dtype)
    keep = torch.rand(2, 1, 1, 300, generator=torch.Generator().manual_seed(6)) > 0.2
    bias = as_bias(keep)
    got = incoming_mass(q, k, bias, None, 40, row_stats=True, budget_bytes=30_000)
    p = naive_probs(q, k, bias)[1][:, :, :40]
    assert torch.allclose(got.mass.double(), p.mean(-2), atol=1e-6)
    entropy = -torch.special.xlogy(p, p).sum(-1).mean(-1)
    assert torch.allclose(got.entropy.double(), entropy, atol=1e-5)
    assert torch.allclose(got.top5.double(), p.topk(5, -1).values.sum(-1).mean(-1), atol=1e-6)


@pytest.mark.parametrize("budget", [20_000, 2 * 8 * 90 * 66], ids=["1-head-x-27-rows", "2-heads-x-66-rows"])
@pytest.mark.parametrize("bias_shape", [(2, 3, 70, 90), (70, 90)], ids=["per-head", "2-d"])
def test_row_stats_with_a_row_bias_over_head_and_row_chunks(budget, bias_shape):
    q, k, _ = qkv(Nq=70, Nk=90, seed=8)
    bias = torch.randn(*bias_shape, generator=torch.Generator().manual_seed(9))
    got = incoming_mass(q, k, bias, 0.2, 66, row_stats=True, budget_bytes=budget)
    p = naive_probs(q, k, bias, 0.2)[1][:, :, :66]
    assert torch.allclose(got.mass.double(), p.mean(-2), atol=1e-6)
    assert torch.allclose(got.entropy.double(), -torch.special.xlogy(p, p).sum(-1).mean(-1), atol=1e-5)
    assert torch.allclose(got.top5.double(), p.topk(5, -1).values.sum(-1).mean(-1), atol=1e-6)


@pytest.mark.parametrize("n", [3, 40, 41, 300, 1357])
def test_top_values_equal_topk_with_ties_and_masked_columns(n):
    g = torch.Generator().manual_seed(n)
    x = torch.randint(0, 6, (4, 7, n), generator=g).float()  # many ties
    x[0] = float("-inf")
    x[1, :, : n // 2] = float("-inf")
    x[2, 0, -1] = 9.0  # the largest value in the tail columns
    k = min(5, n)
    assert torch.equal(top_values(x, k), x.topk(k, dim=-1).values)
    assert torch.equal(top_values(x, k, members=3), x.topk(k, dim=-1).values)
