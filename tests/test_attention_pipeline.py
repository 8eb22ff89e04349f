"""attach() inside tiny-sd3 and tiny-sdxl: oracle agreement, stock equality, restore, phase, measurement."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sinkrepro.attention import PRESETS, InterventionSpec, attach
from sinkrepro.attention import runtime as runtime_mod
from sinkrepro.attention.processor import KeyEditProcessor
from sinkrepro.attention.runtime import attention_modules
from helpers import (PIPELINE_IDS, PIPELINE_PROMPTS, PIPELINE_STEPS, OracleSdpa, check_against_oracle, generate,
                     run)


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory):
    from sinkrepro.models.tiny import build_tiny_sd3

    return build_tiny_sd3(tmp_path_factory.mktemp("m") / "tiny-sd3")


@pytest.fixture(scope="module")
def sd3(sd3_dir):
    from sinkrepro.models.load import load_pipeline

    return load_pipeline(sd3_dir, "sd3")


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    from sinkrepro.models.load import load_pipeline
    from sinkrepro.models.tiny import build_tiny_sdxl

    return load_pipeline(build_tiny_sdxl(tmp_path_factory.mktemp("m") / "tiny-sdxl"), "sdxl")


SD3_SPECS = {name: dict(PRESETS[name], k=2, layers=(1,)) for name in PRESETS if name != "base"}
SD3_SPECS.update({
    "value_noise": dict(select="top", path="value", value_mode="noise", k=1, layers=(2,)),
    "value_lerp": dict(select="top", path="value", value_mode="lerp", alpha=0.3, k=1, layers=(0,)),
    "both_eta": dict(select="top", path="both", eta=0.2, value_mode="mean", k=1, layers=(3,), rows="all"),
    "prob_scale_text_pool": dict(select="top", path="prob_scale", eta=0.5, pool="text", k=3, layers=(1,)),
    "bottom_image_pool": dict(select="bottom", pool="image", k=2, layers=(1,)),
    "dsp_text_only": dict(PRESETS["dsp"], only="text", k=8, layers=(1,)),
    "empty": dict(PRESETS["empty"], layers=(1,)),
})


@pytest.mark.parametrize("name", sorted(SD3_SPECS))
def test_tiny_sd3_matches_oracle(sd3, monkeypatch, name):
    check_against_oracle(sd3, InterventionSpec(**SD3_SPECS[name]), monkeypatch)


@pytest.mark.parametrize("fields", [
    dict(modules=("attn1",), blocks="mid_block", select="top", k=2, rows="image", mask_bias=-1e4),
    dict(modules=("attn2",), blocks="mid_block", select="top", k=1, mask_bias=-1e4),
    dict(modules=("attn2",), blocks="", select="index", index_base="text", indices=(0,), path="prob_scale"),
    dict(modules=("attn1",), blocks="down_blocks", select="random", scope="shared", k=1),
    dict(modules=("attn2",), blocks="up_blocks", select="top", path="value", value_mode="mean", k=2),
], ids=["attn1-mid", "attn2-mid", "attn2-bos", "attn1-random", "attn2-value"])
def test_tiny_sdxl_matches_oracle(sdxl, monkeypatch, fields):
    check_against_oracle(sdxl, InterventionSpec(layers=(1,), **fields), monkeypatch)


def test_sdxl_block_filter_selects_mid_block_modules(sdxl):
    found = attention_modules(sdxl.unet, ("attn2",), "mid_block")
    assert found and all(n.startswith("mid_block") and n.endswith("attn2") for n, _ in found)
    everything = attention_modules(sdxl.unet, ("attn1", "attn2"))
    assert len(everything) > 2 * len(found)
    with pytest.raises(ValueError, match="spec.modules"):
        attention_modules(sdxl.unet, ("attn",))


def test_noop_is_bit_identical_and_patches_nothing(sd3):
    base = generate(sd3)
    for spec in (InterventionSpec(), InterventionSpec(**PRESETS["rds"])):  # rds without layers is a no-op
        images, handle = run(sd3, spec)
        assert np.array_equal(images, base) and handle.calls == 0


def test_empty_edit_runs_our_processor_and_matches_stock(sd3):
    base = generate(sd3)
    spec = InterventionSpec(select="top", k=0, layers=(0, 1, 2, 3))
    modules = [m for _, m in attention_modules(sd3.transformer, ("attn",))]
    originals = [m.processor for m in modules]
    with attach(sd3, spec, prompt_ids=PIPELINE_IDS, seed=0, num_inference_steps=PIPELINE_STEPS) as handle:
        images = generate(sd3)
        assert all(isinstance(m.processor, KeyEditProcessor) for m in modules)  # still ours after the call
    assert handle.calls == 4 * PIPELINE_STEPS and handle.edits == 4 * PIPELINE_STEPS
    assert np.abs(images - base).max() <= 1e-6
    assert [m.processor for m in modules] == originals


def test_processors_are_restored_after_an_error(sd3):
    modules = [m for _, m in attention_modules(sd3.transformer, ("attn",))]
    originals = [m.processor for m in modules]
    with pytest.raises(RuntimeError, match="boom"):
        with attach(sd3, InterventionSpec(select="top", k=1, layers=(1,)), prompt_ids=PIPELINE_IDS, seed=0,
                    num_inference_steps=PIPELINE_STEPS):
            raise RuntimeError("boom")
    assert [m.processor for m in modules] == originals


def test_measuring_leaves_images_bit_identical(sd3):
    base = generate(sd3)
    images, handle = run(sd3, InterventionSpec(), measure_layers=(0, 1, 2, 3))
    assert np.array_equal(images, base)
    edited, _ = run(sd3, InterventionSpec(**dict(PRESETS["dsp"], k=1, layers=(2,))))
    edited_measured, _ = run(sd3, InterventionSpec(**dict(PRESETS["dsp"], k=1, layers=(2,))), measure_layers=(1, 2))
    assert np.array_equal(edited, edited_measured) and not np.array_equal(edited, base)


def test_dynamics_rows_follow_the_contract(sd3):
    _, handle = run(sd3, InterventionSpec(**dict(PRESETS["rds"], k=1, layers=(1,))), measure_layers=(0, 1), measure_k=3)
    rows = handle.dynamics_rows()
    heads = sd3.transformer.config.num_attention_heads
    assert len(rows) == PIPELINE_STEPS * 2 * 2 * 2 * heads  # steps x layers x halves x prompts x heads
    cols = ("prompt_id seed step progress timestep layer batch_half head top1_mass topk_mass entropy top5_conc "
            "sink_index sink_type sink_row sink_col bos_mass edited_mass max_activation").split()
    assert all(list(r) == cols for r in rows)
    timesteps = sd3.scheduler.timesteps.tolist()
    for r in rows:
        assert r["timestep"] == timesteps[r["step"]] and r["progress"] == r["step"] / (PIPELINE_STEPS - 1)
        assert r["top1_mass"] <= r["topk_mass"] <= 1 + 1e-6 and r["top1_mass"] >= 1 / 1e4
        assert r["sink_type"] in ("image", "clip", "t5", "pad")
        assert (r["sink_row"] >= 0) == (r["sink_type"] == "image") == (r["sink_index"] < 16)
        if r["sink_type"] == "image":
            assert r["sink_row"] * 4 + r["sink_col"] == r["sink_index"]
        # the hard mask leaves exactly zero mass: no epsilon floor
        assert (r["edited_mass"] == 0.0) if r["layer"] == 1 else np.isnan(r["edited_mass"])
    assert {(r["prompt_id"], r["batch_half"]) for r in rows} == {(p, h) for p in PIPELINE_IDS for h in ("uncond", "cond")}


def test_padding_comes_from_the_tokenizer_masks(sd3, monkeypatch):
    layouts = []
    real = runtime_mod.intervene
    monkeypatch.setattr(runtime_mod, "intervene", lambda q, k, v, spec, layout, **kw: (
        layouts.append(layout), real(q, k, v, spec, layout, **kw))[1])
    run(sd3, InterventionSpec(select="top", k=1, layers=(0,)))
    layout = layouts[0]
    n_img = layout.n_image
    clip = sd3.tokenizer(["", ""] + PIPELINE_PROMPTS, padding="max_length", max_length=77, return_tensors="pt")
    t5 = sd3.tokenizer_3(["", ""] + PIPELINE_PROMPTS, padding="max_length", max_length=256, truncation=True,
                         return_tensors="pt")
    assert torch.equal(layout.is_pad[:, n_img:n_img + 77], clip.attention_mask == 0)
    assert torch.equal(layout.is_pad[:, n_img + 77:], t5.attention_mask == 0)
    assert layout.bos_index == n_img


def _edited_steps(pipe, window, steps=5):
    spec = InterventionSpec(select="top", k=1, layers=(1,), steps=window)
    _, handle = run(pipe, spec, steps=steps, measure_layers=(1,))
    return sorted({r["step"] for r in handle.dynamics_rows() if not np.isnan(r["edited_mass"])}), handle


def test_phase_windows_gate_on_the_steps_own_timestep(sd3):
    # progress = step / 4 for 5 steps: 0, .25, .5, .75, 1
    assert _edited_steps(sd3, (0.8, 1.0))[0] == [4]          # a late window never touches step 0
    assert _edited_steps(sd3, (0.0, 0.2))[0] == [0]
    assert _edited_steps(sd3, (0.25, 0.75))[0] == [1, 2, 3]  # inclusive ends
    assert _edited_steps(sd3, (0.0, 1.0))[1].edits == 5
    # a second call after a late-window call still starts clean at step 0
    assert _edited_steps(sd3, (0.8, 1.0))[0] == [4]


def test_matched_random_control_avoids_padding_and_keeps_token_types(sd3, monkeypatch):
    seen = []
    real = runtime_mod.intervene
    monkeypatch.setattr(runtime_mod, "intervene", lambda q, k, v, spec, layout, **kw: (
        lambda r: (seen.append((layout, r)), r)[1])(real(q, k, v, spec, layout, **kw)))
    spec = InterventionSpec(**dict(PRESETS["cf_random_matched"], k=2, layers=(1,)))
    run(sd3, spec)
    first = [r.keys.clone() for _, r in seen]
    seen.clear()
    run(sd3, spec)
    assert all(torch.equal(a, r.keys) for a, (_, r) in zip(first, seen))  # reproducible
    for layout, r in seen:
        keys = r.keys[:, 0]  # shared scope: one set per batch row
        assert not layout.is_pad.gather(1, keys).any()
        top = r.stats.mass.mean(1).topk(keys.shape[-1]).indices
        for b in range(keys.shape[0]):
            assert not set(keys[b].tolist()) & set(top[b].tolist())  # never a sink itself
            free = ~layout.is_pad[b]
            free[top[b]] = False
            for region in range(4):  # each sink type is matched as far as non-sink tokens of it exist
                need = int((layout.region[b, top[b]] == region).sum())
                have = int((layout.region[b, free] == region).sum())
                assert int((layout.region[b, keys[b]] == region).sum()) >= min(need, have)
        assert not torch.equal(keys[0], keys[2])  # uncond and cond halves draw separately


def test_qk_norm_is_honoured(monkeypatch):
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=2,
                                  attention_head_dim=8, num_attention_heads=2, joint_attention_dim=16,
                                  caption_projection_dim=16, pooled_projection_dim=16, pos_embed_max_size=16,
                                  qk_norm="rms_norm").eval()
    assert model.transformer_blocks[0].attn.norm_q is not None
    with torch.no_grad():
        for p in model.parameters():  # RMSNorm weights start at 1; make the norm matter
            p.add_(torch.randn_like(p) * 0.1)
    t = torch.tensor([500.0, 500.0])
    pipe = SimpleNamespace(transformer=model, scheduler=SimpleNamespace(timesteps=torch.tensor([800.0, 500.0])))
    inputs = dict(hidden_states=torch.randn(2, 4, 8, 8), encoder_hidden_states=torch.randn(2, 6, 16),
                  pooled_projections=torch.randn(2, 16), timestep=t)
    module = model.transformer_blocks[1].attn
    calls, seen = [], []
    hook = module.register_forward_hook(lambda m, a, kw, out: calls.append((a, kw, out)), with_kwargs=True)
    real = runtime_mod.intervene
    monkeypatch.setattr(runtime_mod, "intervene", lambda q, k, v, spec, layout, **kw: (
        lambda r: (seen.append(r), r)[1])(real(q, k, v, spec, layout, **kw)))
    spec = InterventionSpec(select="top", k=2, layers=(1,), rows="all")
    with torch.no_grad(), attach(pipe, spec, prompt_ids=["a"], seed=0, num_inference_steps=2) as handle:
        model(**inputs)
    hook.remove()
    assert handle.edits == 1
    args, kwargs, out = calls[0]
    with torch.no_grad(), OracleSdpa(spec, seen[0].keys, 16):
        ref = module(*args, **kwargs)
    assert max((a - b).abs().max() for a, b in zip(out, ref)) <= 1e-5


def test_cli_sinks_and_generate(sd3_dir, tmp_path, capsys):
    from sinkrepro.cli import main

    assert main(["sinks", "--model-dir", str(sd3_dir), "--family", "sd3", "--prompt", "a red dog",
                 "--layer", "1", "--steps", "2", "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index(next(l for l in lines if l.split()[:2] == ["step", "progress"])) + 1:]
    assert len(table) == 2 * 2 and {l.split()[0] for l in table} == {"0", "1"}
    assert all(l.split()[4] in ("image", "clip", "t5", "pad") for l in table)
    out = tmp_path / "img.png"
    assert main(["generate", "--model-dir", str(sd3_dir), "--family", "sd3", "--prompt", "a red dog",
                 "--preset", "rds", "--k", "1", "--layers", "1", "--steps", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 0 and "2 edited attention calls" in capsys.readouterr().out
    assert main(["generate", "--model-dir", str(sd3_dir), "--family", "sd3", "--prompt", "x",
                 "--preset", "rds", "--layers", "99", "--out", str(out)]) == 2
    assert "spec.layers: [99]" in capsys.readouterr().err
