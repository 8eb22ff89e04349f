"""SD3.5 and FLUX.1 stand-ins: attach() agrees with the float64 oracle on every preset that applies,
QK-norm keys are the stock ones, the key layout is the stock processor's, measuring and the empty
edit leave images bit-identical, and the config checks know both families."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from sinkrepro.attention import PRESETS, InterventionSpec
from sinkrepro.attention import runtime as runtime_mod
from sinkrepro.attention.runtime import attention_modules, rotary_text_first
from sinkrepro.attention.tokens import IMAGE, T5
from helpers import PIPELINE_PROMPTS, REPO, check_against_oracle, default_config, generate, run

FLUX_CALL = {"max_sequence_length": 16}  # T5 keys per prompt in the FLUX tests
BOS_PRESETS = ("sa", "sa_value")  # edit the CLIP BOS key: no such key in FLUX


@pytest.fixture(scope="module")
def sd35_dir(tmp_path_factory):
    from sinkrepro.models.tiny import build_tiny_sd35

    return build_tiny_sd35(tmp_path_factory.mktemp("m") / "tiny-sd35")


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    from sinkrepro.models.tiny import build_tiny_flux

    return build_tiny_flux(tmp_path_factory.mktemp("m") / "tiny-flux")


@pytest.fixture(scope="module")
def sd35(sd35_dir):
    from sinkrepro.models.load import load_pipeline

    return load_pipeline(sd35_dir, "sd35")


@pytest.fixture(scope="module")
def flux(flux_dir):
    from sinkrepro.models.load import load_pipeline

    return load_pipeline(flux_dir, "flux")


def spy_intervene(monkeypatch):
    """Record (q, k, v, layout, result) of every edited attention call."""
    seen = []
    real = runtime_mod.intervene

    def spy(q, k, v, spec, layout, **kw):
        result = real(q, k, v, spec, layout, **kw)
        seen.append((q, k, v, layout, result))
        return result

    monkeypatch.setattr(runtime_mod, "intervene", spy)
    return seen


# ---------------------------------------------------------------- oracle agreement
SD35_SPECS = {name: dict(PRESETS[name], k=2, layers=(1,)) for name in PRESETS if name != "base"}
SD35_SPECS.update({
    "rds_last_block": dict(PRESETS["rds"], k=1, layers=(3,)),  # context_pre_only block
    "attn2_dsp": dict(PRESETS["dsp"], modules=("attn2",), k=2, layers=(1,)),
    "attn2_cf": dict(PRESETS["cf"], modules=("attn2",), k=1, layers=(0,)),
    "attn2_value_mean": dict(select="top", path="value", value_mode="mean", modules=("attn2",), k=2, layers=(1,)),
    "attn2_patch0_prob": dict(select="index", index_base="image", indices=(0,), path="prob_scale", eta=0.3,
                              modules=("attn2",), layers=(0,)),
    "both_modules": dict(PRESETS["dsp"], modules=("attn", "attn2"), k=1, layers=(1,)),  # blocks.0.attn2
})


@pytest.mark.parametrize("name", sorted(SD35_SPECS))
def test_tiny_sd35_matches_oracle(sd35, monkeypatch, name):
    check_against_oracle(sd35, InterventionSpec(**SD35_SPECS[name]), monkeypatch)


FLUX_SPECS = {f"{name}-{kind}": dict(PRESETS[name], k=2, layers=(layer,))
              for name in PRESETS if name not in ("base",) + BOS_PRESETS
              for kind, layer in (("joint", 1), ("single", 2))}
FLUX_SPECS.update({
    "value_noise-single": dict(select="top", path="value", value_mode="noise", k=1, layers=(3,)),
    "prob_scale_text_pool-joint": dict(select="top", path="prob_scale", eta=0.5, pool="text", k=3, layers=(0,)),
    "dsp_text_only-single": dict(PRESETS["dsp"], only="text", k=8, layers=(2,)),
    "single_blocks_filter": dict(PRESETS["cf"], blocks="single_transformer_blocks", k=1, layers=(1,)),
})


@pytest.mark.parametrize("name", sorted(FLUX_SPECS))
def test_tiny_flux_matches_oracle(flux, monkeypatch, name):
    check_against_oracle(flux, InterventionSpec(**FLUX_SPECS[name]), monkeypatch, call=FLUX_CALL)


def test_tiny_flux_dev_with_guidance_embedding_matches_oracle(tmp_path, monkeypatch):
    from sinkrepro.models.load import load_pipeline
    from sinkrepro.models.tiny import build_tiny_flux

    dev = load_pipeline(build_tiny_flux(tmp_path / "tiny-flux-dev", guidance_embeds=True), "flux")
    assert dev.transformer.config.guidance_embeds
    check_against_oracle(dev, InterventionSpec(**dict(PRESETS["cf"], k=1, layers=(2,))), monkeypatch, call=FLUX_CALL)
    base = generate(dev, **FLUX_CALL)
    images, handle = run(dev, InterventionSpec(select="top", k=0, layers=(0, 1, 2, 3)), call=FLUX_CALL)
    assert handle.edits == 4 * 3 and np.array_equal(images, base)


# ---------------------------------------------------------------- the keys and rows are the stock ones
def test_sd35_edits_the_keys_stock_attention_sees(sd35, monkeypatch):
    """k handed to the edit = norm_k on image keys and norm_added_k on text keys, recomputed from the
    module's weights; the authors' variant (norm_k on all keys) differs."""
    seen = spy_intervene(monkeypatch)
    for modules, block in ((("attn",), 1), (("attn2",), 1)):
        module = attention_modules(sd35.transformer, modules)[1][1]
        inputs = []
        hook = module.register_forward_pre_hook(lambda m, a, kw: inputs.append(kw), with_kwargs=True)
        seen.clear()
        run(sd35, InterventionSpec(select="top", k=1, layers=(1,), modules=modules), steps=1)
        hook.remove()
        kw, (_, k, _, layout, _) = inputs[0], seen[0]
        B, H, _, d = k.shape
        heads = lambda x: x.view(B, -1, H, d).transpose(1, 2)  # noqa: E731
        with torch.no_grad():
            image_k = module.norm_k(heads(module.to_k(kw["hidden_states"])))
            if modules == ("attn",):
                text = heads(module.add_k_proj(kw["encoder_hidden_states"]))
                want = torch.cat([image_k, module.norm_added_k(text)], dim=2)
                wrong = torch.cat([image_k, module.norm_k(text)], dim=2)
                assert (k - wrong).abs().max() > 1e-2  # a test that would catch norm_k on text keys
                assert layout.n_image == image_k.shape[2] and layout.image_start == 0
            else:
                want = image_k
                assert layout.n_image == k.shape[2] == layout.n_image_rows  # image-only attention
        assert (k - want).abs().max() <= 1e-6


def test_flux_layout_is_derived_from_the_call(flux, monkeypatch):
    seen = spy_intervene(monkeypatch)
    run(flux, InterventionSpec(select="top", k=1, layers=(0, 2)), steps=1, call=FLUX_CALL)
    t5 = flux.tokenizer_2(PIPELINE_PROMPTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    assert len(seen) == 2
    for _, k, _, layout, _ in seen:  # joint block 0, single-stream block 0
        assert k.shape[2] == 16 + 16 and layout.image_start == layout.row_start == 16 and layout.n_image == 16
        assert (layout.region[:, :16] == T5).all() and (layout.region[:, 16:] == IMAGE).all()
        assert layout.bos_index == -1 and layout.grid_width == 4  # 64 px -> 8x8 latent -> 4x4 packed
        assert torch.equal(layout.is_pad[:, :16], t5.attention_mask == 0)
        assert not layout.is_pad[:, 16:].any()


@pytest.mark.parametrize("layer", [1, 2], ids=["joint", "single"])
def test_flux_image_row_edit_leaves_the_text_stream_unchanged(flux, layer):
    """The stock module splits its output into text and image itself: an image-rows edit (dsp) must
    change only the image part, an all-rows edit (rds) the text part too."""
    module = attention_modules(flux.transformer, ("attn",))[layer][1]
    outs = {}
    for name in ("base", "dsp", "rds"):
        got = []
        hook = module.register_forward_hook(lambda m, a, kw, out: got.append(out), with_kwargs=True)
        run(flux, InterventionSpec(**dict(PRESETS[name], k=1, layers=(layer,))), steps=1, call=FLUX_CALL)
        hook.remove()
        out = got[0]
        outs[name] = out if isinstance(out, tuple) else (out[:, 16:], out[:, :16])  # single: [text, image]
    image, text = 0, 1
    if layer == 1:  # the joint module returns (image, text)
        assert outs["base"][image].shape[1] == 16
    assert torch.equal(outs["dsp"][text], outs["base"][text])
    assert (outs["dsp"][image] - outs["base"][image]).abs().max() > 1e-4
    assert (outs["rds"][text] - outs["base"][text]).abs().max() > 1e-4


def test_rotary_table_places_the_text_tokens():
    n_text, n_image, dim = 3, 4, 6
    angles = torch.arange(1, n_image + 1, dtype=torch.float32)[:, None].expand(n_image, dim)
    image = (angles.cos(), angles.sin())
    text = (torch.ones(n_text, dim), torch.zeros(n_text, dim))
    text_first = tuple(torch.cat([t, i]) for t, i in zip(text, image))
    image_first = tuple(torch.cat([i, t]) for t, i in zip(text, image))
    assert rotary_text_first(text_first, n_text, n_image) is True
    assert rotary_text_first(image_first, n_text, n_image) is False
    with pytest.raises(RuntimeError, match="does not mark the text tokens"):
        rotary_text_first(tuple(torch.cat([i[:1].expand(n_text, dim), i]) for i in image), n_text, n_image)
    with pytest.raises(RuntimeError, match="no rotary embedding"):
        rotary_text_first(None, n_text, n_image)


def test_flux_has_no_bos_key(flux):
    spec = InterventionSpec(**dict(PRESETS["sa"], layers=(1,)))
    with pytest.raises(ValueError, match="spec.index_base: 'text' counts from the CLIP BOS"):
        run(flux, spec, steps=1, call=FLUX_CALL)


# ---------------------------------------------------------------- stock equality
@pytest.mark.parametrize("family", ["sd35", "flux"])
def test_empty_edit_and_measuring_are_bit_identical(family, sd35, flux):
    pipe, call = (sd35, {}) if family == "sd35" else (flux, FLUX_CALL)
    base = generate(pipe, **call)
    n = len(attention_modules(pipe.transformer, ("attn",)))
    halves = 2 if family == "sd35" else 1  # FLUX is guidance-distilled: no CFG batch
    images, handle = run(pipe, InterventionSpec(select="top", k=0, layers=tuple(range(n))), call=call)
    assert handle.calls == handle.edits == n * 3 and np.array_equal(images, base)  # our processor ran
    images, handle = run(pipe, InterventionSpec(), measure_layers=tuple(range(n)), call=call)
    assert np.array_equal(images, base)
    rows = handle.dynamics_rows()
    heads = pipe.transformer.config.num_attention_heads
    assert len(rows) == 3 * n * halves * len(PIPELINE_PROMPTS) * heads
    assert {r["sink_type"] for r in rows} <= ({"image", "clip", "t5", "pad"} if family == "sd35" else {"image", "t5", "pad"})
    image_start = 16 if family == "flux" else 0  # FLUX's 16 T5 keys come first
    for r in rows:  # an image sink's grid position is counted from the first image key (4x4 grid)
        is_image = image_start <= r["sink_index"] < image_start + 16
        assert (r["sink_type"] == "image") == is_image == (r["sink_row"] >= 0)
        if is_image:
            assert r["sink_row"] * 4 + r["sink_col"] == r["sink_index"] - image_start
    if family == "flux":
        assert all(np.isnan(r["bos_mass"]) for r in rows)
        assert {r["batch_half"] for r in rows} == {"cond"}
    edited, _ = run(pipe, InterventionSpec(**dict(PRESETS["dsp"], k=1, layers=(1,))), call=call)
    assert not np.array_equal(edited, base)


def test_cli_sinks_on_both_stand_ins(sd35_dir, flux_dir, capsys):
    from sinkrepro.cli import main

    for family, model_dir, types in (("sd35", sd35_dir, {"image", "clip", "t5", "pad"}),
                                     ("flux", flux_dir, {"image", "t5", "pad"})):
        assert main(["sinks", "--model-dir", str(model_dir), "--family", family, "--prompt", "a red dog",
                     "--layer", "2", "--steps", "2", "--top", "2"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert any("stand-in" in line.lower() for line in lines)
        table = lines[lines.index(next(l for l in lines if l.split()[:2] == ["step", "progress"])) + 1:]
        assert len(table) == 2 * 2 and all(l.split()[4] in types for l in table)


# ---------------------------------------------------------------- architecture lists and config checks
def module_names(model):
    return [name for name, module in model.named_modules() if hasattr(module, "set_processor")]


def test_standin_lists_match_the_built_standins(sd35, flux):
    from sinkrepro.architecture import attention_names, patchable

    for family, pipe in (("sd35", sd35), ("flux", flux)):
        assert module_names(pipe.transformer) == attention_names({"family": family, "source": "standin"})
    assert len(attention_modules(sd35.transformer, ("attn2",))) == 2 == len(
        patchable({"family": "sd35", "source": "standin"}, ("attn2",)))
    assert len(attention_modules(flux.transformer, ("attn",), "single_transformer_blocks")) == 2


def test_hub_lists_match_the_reference_architectures():
    """SD3.5-medium, SD3.5-large and FLUX.1 on the meta device, from their published transformer
    configs as we know them (not checked against the hub here: no network)."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    from sinkrepro.architecture import attention_names

    common = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, attention_head_dim=64,
                  joint_attention_dim=4096, pooled_projection_dim=2048, qk_norm="rms_norm")
    with torch.device("meta"):
        medium = SD3Transformer2DModel(num_layers=24, num_attention_heads=24, caption_projection_dim=1536,
                                       pos_embed_max_size=384, dual_attention_layers=tuple(range(13)), **common)
        large = SD3Transformer2DModel(num_layers=38, num_attention_heads=38, caption_projection_dim=2432,
                                      pos_embed_max_size=192, **common)
        flux = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
                                      attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                                      pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))
    assert module_names(medium) == attention_names({"family": "sd35", "source": "hub"})
    assert module_names(large) == attention_names({"family": "sd35", "source": "hub", "n_layers": 38,
                                                   "dual_attention_layers": []})
    assert module_names(flux) == attention_names({"family": "flux", "source": "hub"})


def test_config_refuses_a_bos_edit_on_flux_and_checks_layers(tmp_path, monkeypatch, capsys):
    import yaml

    from sinkrepro import cli

    config = {**default_config(), "models": {"tiny-flux": {"family": "flux", "source": "standin", "heads": 4,
                                               "sampler": {"steps": 2, "guidance": 0.0, "height": 64, "width": 64,
                                                           "max_sequence_length": 16}}}}
    exp = {"description": "x", "model": "tiny-flux", "prompts": "tiny", "seeds": [0], "layers": [3], "k": [1],
           "metrics": ["clip_t"], "conditions": {"sink": {"preset": "cf"}}}
    prompts = tmp_path / "config" / "prompts" / "tiny.tsv"
    prompts.parent.mkdir(parents=True)
    prompts.write_text((REPO / "config" / "prompts" / "tiny.tsv").read_text())
    monkeypatch.chdir(tmp_path)
    cases = [({"layers": [3]}, None),
             ({"layers": [4]}, "layer 4 does not exist: tiny-flux has 4 attention modules"),
             ({"conditions": {"bos": {"preset": "sa"}}},
              "config.experiments.e.conditions.bos.index_base: 'text' counts from the CLIP BOS key"),
             ({"conditions": {"patch": {"preset": "image_patch0"}}}, None)]
    for change, error in cases:
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({**config, "experiments": {"e": {**exp, **change}}}))
        assert cli.main(["plan", "c.yaml"]) == (2 if error else 0)
        err = capsys.readouterr().err
        assert error in err if error else "error" not in err.lower()


def test_index_text_spec_is_allowed_where_a_bos_exists():
    from sinkrepro.architecture import check_bos

    spec = replace(InterventionSpec(**PRESETS["sa"]), layers=(1,))
    for family in ("sd3", "sd35", "sdxl"):
        check_bos("w", spec, "m", {"family": family})
    with pytest.raises(ValueError, match=r"w.index_base: .* m \(flux\) has no BOS key"):
        check_bos("w", spec, "m", {"family": "flux"})
    with pytest.raises(ValueError, match=r"modules=\['attn2'\] of m attend to image tokens only; use modules: \['attn'\]"):
        check_bos("w", replace(spec, modules=("attn2",)), "m", {"family": "sd35"})
    check_bos("w", replace(spec, modules=("attn2",)), "m", {"family": "sdxl"})  # SDXL attn2: cross-attention


def test_families_config_passes_the_checks():
    """config/families.yaml (not run in CI: it needs the hub weights) loads, and its middle layers
    are the modules its comments name."""
    from sinkrepro.architecture import patchable
    from sinkrepro.config import load_config

    config = load_config(REPO / "config" / "families.yaml")
    flux_modules = patchable(config["models"]["flux-schnell"], ("attn",))
    assert len(flux_modules) == 57 and flux_modules[28] == "single_transformer_blocks.9.attn"
    assert patchable(config["models"]["sd35-medium"], ("attn",))[12] == "transformer_blocks.12.attn"
    assert not any(c.get("preset", "").startswith("sa") for name, e in config["experiments"].items()
                   if e["model"] == "flux-schnell" for c in e.get("conditions", {}).values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_joint_key_order_is_found_in_half_precision_too(sd35, dtype):
    """The order probe projects one text token alone; in bf16 that rounds differently from the
    batched projection, and the order must still be found (and a wrong place refused)."""
    import copy

    from sinkrepro.attention.runtime import joint_text_first

    attn = copy.deepcopy(sd35.transformer.transformer_blocks[0].attn).to(dtype)
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(2, 16, 64, generator=g).to(dtype), torch.randn(2, 9, 64, generator=g).to(dtype)
    heads = lambda t: t.view(2, -1, 4, 16).transpose(1, 2)  # noqa: E731
    with torch.no_grad():
        image, text = heads(attn.to_v(x)), heads(attn.add_v_proj(c))
        assert joint_text_first(attn, c, torch.cat([image, text], dim=2), 16) is False
        assert joint_text_first(attn, c, torch.cat([text, image], dim=2), 16) is True
        with pytest.raises(RuntimeError, match="cannot find the text keys"):
            joint_text_first(attn, c, torch.cat([image, image], dim=2), 16)


@pytest.mark.parametrize("family", ["sd35", "flux"])
def test_a_generation_job_runs_on_each_stand_in(family, sd35_dir, flux_dir, tmp_path):
    """The workflow's shard job (load, sampler arguments, attach, manifest, dynamics) on each family."""
    import json

    import pandas as pd

    from sinkrepro.generate import ShardJob, run_shard

    model_dir = sd35_dir if family == "sd35" else flux_dir
    prompts = [dict(prompt_id=f"p{i}", prompt_index=i, prompt=p, category="x") for i, p in enumerate(PIPELINE_PROMPTS)]
    job = ShardJob(model=f"tiny-{family}", family=family, condition="cf-k1", seed=0, seed_scheme="hash",
                   sampler=dict(steps=2, guidance=0.0 if family == "flux" else 4.5, height=64, width=64,
                                max_sequence_length=16),
                   spec=InterventionSpec(**dict(PRESETS["cf"], k=1, layers=(2,))), prompts=prompts,
                   measure_layers=(1, 2), batch_size=2)
    manifest = run_shard(job, model_dir, tmp_path / "images", tmp_path / "dynamics.parquet")
    assert [m["prompt_id"] for m in manifest] == ["p0", "p1"] and all(m["standin"] for m in manifest)
    assert len((tmp_path / "images" / "manifest.jsonl").read_text().splitlines()) == 2
    assert json.loads((model_dir / "sinkrepro_standin.json").read_text())["standin"] == f"tiny-{family}"
    dynamics = pd.read_parquet(tmp_path / "dynamics.parquet")
    halves = 2 if family == "sd35" else 1
    assert len(dynamics) == 2 * 2 * halves * 2 * 4  # steps x layers x halves x prompts x heads
    assert (dynamics.loc[dynamics.layer == 2, "edited_mass"] == 0).all()  # cf's mask leaves no mass
