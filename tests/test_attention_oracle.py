"""The fast chunked / rank-|S| attention edits against a naive oracle that materialises everything.

The oracle is sinkrepro.attention.reference: float64, full softmax, edit the probability (or value)
tensor, multiply by V.
"""
import itertools
from dataclasses import replace

import pytest
import torch

from sinkrepro.attention.intervene import intervene
from sinkrepro.attention.kernels import (CORRECTION_MAX_MASS, KeyEdit, as_bias, edit_attention,
                                         incoming_mass, row_lse)
from sinkrepro.attention.reference import naive_edit, naive_mass, naive_probs, naive_select
from sinkrepro.attention.seeding import cpu_generator
from sinkrepro.attention.spec import PRESETS, InterventionSpec
from sinkrepro.attention.tokens import build_layout

TOL = 1e-5


# ---------------------------------------------------------------- SD3-like small shapes
def sd3_like(seed=0, B=2, H=3, grid=8, clip=6, t5=9, d=16):
    g = torch.Generator().manual_seed(seed)
    n_img = grid * grid
    nk = n_img + clip + t5
    q, k, v = (torch.randn(B, H, nk, d, generator=g) for _ in range(3))
    layout = build_layout(B, n_img, clip + t5, n_img, clip_len=clip, clip_lengths=[3, 4], t5_lengths=[2, 5],
                          grid_width=grid)
    return q, k, v, layout


def allowed_keys(spec, layout):
    image = layout.region == 0
    return {"all": torch.ones_like(image), "image": image, "text": ~image}[spec.pool]


def test_incoming_mass_matches_naive_with_small_chunks_and_mask():
    q, k, v, layout = sd3_like()
    bias = torch.randn(1, 1, q.shape[2], k.shape[2]) * 0.5
    for b, given_lse in itertools.product((None, bias), (False, True)):
        lse = row_lse(q, k, b, 0.3) if given_lse else None
        got = incoming_mass(q, k, b, 0.3, layout.n_image_rows, lse=lse, row_stats=True, budget_bytes=4096)
        _, probs = naive_probs(q, k, b, 0.3)
        p = probs[:, :, : layout.n_image_rows]
        assert torch.allclose(got.mass.double(), p.mean(-2), atol=TOL)
        entropy = -(p * p.log()).sum(-1).mean(-1)
        assert torch.allclose(got.entropy.double(), entropy, atol=TOL)
        assert torch.allclose(got.top5.double(), p.topk(5, -1).values.sum(-1).mean(-1), atol=TOL)


def test_boolean_mask_is_honoured_like_sdpa():
    q, k, v, _ = sd3_like()
    mask = torch.rand(q.shape[0], 1, 1, k.shape[2]) > 0.3  # True = attend
    keys = torch.zeros(q.shape[0], q.shape[1], 1, dtype=torch.long)
    mask[:, :, :, 0] = True
    out, _ = edit_attention(q, k, v, keys[..., :0], KeyEdit(), bias=as_bias(mask))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (out - ref).abs().max() <= 1e-6
    got = incoming_mass(q, k, as_bias(mask), None, 10).mass
    assert got[~mask[:, :, 0].expand_as(got)].abs().max() == 0


PATHS = [
    dict(path="score"), dict(path="score", mask_bias=-1e4), dict(path="score", mask_bias=-65000.0),
    dict(path="score", mask_bias=-1.5), dict(path="prob_scale", eta=0.0), dict(path="prob_scale", eta=0.25),
    dict(path="value", value_mode="zero"), dict(path="value", value_mode="mean"),
    dict(path="value", value_mode="lerp", alpha=0.4), dict(path="value", value_mode="noise"),
    dict(path="both", eta=0.3, value_mode="mean"), dict(path="both", eta=0.0, value_mode="zero"),
]


@pytest.mark.parametrize("rows", ["image", "all"])
@pytest.mark.parametrize("scope", ["per_head", "shared"])
@pytest.mark.parametrize("fields", PATHS, ids=lambda f: "-".join(map(str, f.values())))
def test_every_path_matches_naive_oracle(fields, scope, rows):
    q, k, v, layout = sd3_like(seed=1)
    spec = InterventionSpec(select="top", k=2, layers=(0,), scope=scope, rows=rows, **fields)
    B, H, _, d = q.shape
    n = 2 if scope == "per_head" else 2 * H
    noise = torch.randn(B, H, n, d, generator=torch.Generator().manual_seed(5))
    got = intervene(q, k, v, spec, layout, noise=noise)
    keys = naive_select(spec, naive_mass(q, k, layout.n_image_rows), allowed_keys(spec, layout))
    assert torch.equal(got.keys.sort(-1).values, keys.sort(-1).values)
    n_rows = layout.n_image_rows if rows == "image" else q.shape[2]
    out, left = naive_edit(q, k, v, got.keys, spec, n_rows, layout.n_image_rows, noise=noise)
    assert (got.out.double() - out).abs().max() <= TOL
    assert (got.edited_mass.double() - left).abs().max() <= TOL


SELECTIVE = {f"dsp_{only}_only": dict(PRESETS["dsp"], only=only) for only in ("text", "image")}


@pytest.mark.parametrize("name", [p for p in PRESETS if p not in ("base", "empty")] + sorted(SELECTIVE))
def test_every_preset_matches_naive_oracle(name):
    q, k, v, layout = sd3_like(seed=2)
    k[:, :, 64:67] += q[:, :, :64].mean(2, keepdim=True) * 3  # text keys among the sinks, for 'only'
    spec = replace(InterventionSpec(**{**PRESETS, **SELECTIVE}[name]), k=3, layers=(0,))
    gens = [cpu_generator(7 + b) for b in range(q.shape[0])]
    got = intervene(q, k, v, spec, layout, generators=gens)
    if spec.select in ("top", "bottom"):
        keys = naive_select(spec, naive_mass(q, k, layout.n_image_rows), allowed_keys(spec, layout))
        assert torch.equal(got.keys.sort(-1).values, keys.sort(-1).values)
    elif spec.select == "index":
        base = layout.n_image if spec.index_base == "text" else 0
        assert got.keys.unique().tolist() == [base + i for i in spec.indices]
    if spec.only != "all":
        kept_image = (got.keys < layout.n_image)[got.valid]
        assert kept_image.all() if spec.only == "image" else not kept_image.any()
        assert 0 < got.valid.sum() < got.valid.numel()
    n_rows = layout.n_image_rows if spec.rows == "image" else q.shape[2]
    out, left = naive_edit(q, k, v, got.keys, spec, n_rows, layout.n_image_rows, valid=got.valid)
    assert (got.out.double() - out).abs().max() <= TOL
    assert (got.edited_mass.double() - left).abs().max() <= TOL


def test_sa_targets_the_clip_bos_and_rds_masks_text_rows_too():
    q, k, v, layout = sd3_like(seed=3)
    sa = intervene(q, k, v, replace(InterventionSpec(**PRESETS["sa"]), layers=(0,)), layout)
    assert sa.keys.unique().tolist() == [layout.n_image]  # the BOS sits right after the image keys
    rds = intervene(q, k, v, replace(InterventionSpec(**PRESETS["rds"]), k=1, layers=(0,)), layout)
    dsp = intervene(q, k, v, replace(InterventionSpec(**PRESETS["dsp"]), k=1, layers=(0,)), layout)
    text_rows = slice(layout.n_image_rows, None)
    stock = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert torch.equal(dsp.out[:, :, text_rows], stock[:, :, text_rows])
    assert (rds.out[:, :, text_rows] - stock[:, :, text_rows]).abs().max() > 1e-4


def test_empty_edit_runs_custom_path_and_matches_stock():
    q, k, v, layout = sd3_like(seed=4)
    stock = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    for path in ("score", "prob_scale", "value"):
        out, left = edit_attention(q, k, v, torch.zeros(2, 3, 0, dtype=torch.long), KeyEdit(path=path))
        assert (out - stock).abs().max() <= 1e-6
        assert torch.equal(left, torch.zeros(2, 3))


def test_guard_recomputes_rows_where_the_edited_keys_hold_most_mass():
    q, k, v, layout = sd3_like(seed=5)
    q[..., 0] += 2.0
    k[:, :, 70, 0] = 8.0  # one key draws most of the mass of most rows
    keys = torch.full((2, 3, 1), 70, dtype=torch.long)
    w = naive_probs(q, k)[1][..., 70]
    assert 0.1 < (w > CORRECTION_MAX_MASS).float().mean() < 0.9  # both regimes occur
    for fields in (dict(path="score"), dict(path="score", mask_bias=-2.0), dict(path="prob_scale", eta=0.1)):
        spec = InterventionSpec(select="index", layers=(0,), rows="all", **fields)
        edit = KeyEdit(path=spec.path, mask_bias=spec.mask_bias, eta=spec.eta)
        out, left = edit_attention(q, k, v, keys, edit, n_stat_rows=64)
        ref, ref_left = naive_edit(q, k, v, keys, spec, q.shape[2], 64)
        assert (out.double() - ref).abs().max() <= TOL
        assert (left.double() - ref_left).abs().max() <= TOL


def test_hard_mask_leaves_exactly_zero_mass():
    q, k, v, layout = sd3_like(seed=6)
    for bias in (None, -1e4):
        spec = InterventionSpec(select="top", k=1, layers=(0,), mask_bias=bias)
        got = intervene(q, k, v, spec, layout)
        assert torch.equal(got.edited_mass, torch.zeros_like(got.edited_mass))  # no epsilon floor


def test_shared_scope_uses_k_times_heads_keys_for_every_head():
    q, k, v, layout = sd3_like(seed=7)
    got = intervene(q, k, v, InterventionSpec(**{**PRESETS["cf"], "k": 3, "layers": (0,)}), layout)
    assert got.keys.shape == (2, 3, 9)
    assert torch.equal(got.keys[:, 0], got.keys[:, 2])


def test_k_larger_than_pool_is_a_clear_error():
    q, k, v, layout = sd3_like()
    with pytest.raises(ValueError, match="spec.k"):
        intervene(q, k, v, InterventionSpec(select="top", k=99, pool="text", layers=(0,)), layout)
