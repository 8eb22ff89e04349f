"""Which attention modules a model has, known without loading it (configs are checked at load).

An intervention's `layers` index the model's patchable attention modules in model order: those
whose name ends in one of `modules` and starts with `blocks` (attention.runtime.attention_modules).
The names come from the architecture:
- stand-ins (`source: standin`): the architecture models/tiny.py builds for the family;
- hub models: the family's reference checkpoint, SD3-medium (24 joint blocks; another depth via
  the model's `n_layers`), SD3.5-medium (24 blocks, the first 13 dual; SD3.5-large via
  `n_layers: 38, dual_attention_layers: []`), FLUX.1 (19 joint + 38 single-stream blocks, schnell
  and dev alike) or SDXL-base 1.0 (every released SDXL shares its UNet).
tests/test_config.py checks these lists against the instantiated architectures.

Module names per family (docs/families.md):
- sd3: `transformer_blocks.{i}.attn` (joint);
- sd35: the same, plus `transformer_blocks.{i}.attn2` (image-only self-attention) in dual blocks.
  `modules: [attn]` counts the joint attentions (layer i = block i, as on SD3), `modules: [attn2]`
  the dual blocks' image-only ones, `modules: [attn, attn2]` both in model order;
- flux: `transformer_blocks.{i}.attn` (joint), then `single_transformer_blocks.{j}.attn`; with
  `modules: [attn]` layers count all of them in forward order (joint first); `blocks:
  transformer_blocks` or `single_transformer_blocks` counts one kind only.
"""
from __future__ import annotations

# Modules whose layers `measure_layers` counts when a condition edits nothing.
MEASURE_MODULES = {"sd3": ("attn",), "sd35": ("attn",), "flux": ("attn",), "sdxl": ("attn2",)}
FAMILY_MODULES = {"sd3": ("attn",), "sd35": ("attn", "attn2"), "flux": ("attn",),
                  "sdxl": ("attn1", "attn2")}  # every module name a family has
# Families whose attention keys hold CLIP tokens, so a CLIP BOS key exists. FLUX attends to T5
# tokens only (its CLIP gives the pooled vector), and T5 has no BOS.
BOS_FAMILIES = ("sd3", "sd35", "sdxl")
IMAGE_ONLY_MODULES = {"sd35": ("attn2",), "sdxl": ("attn1",)}  # self-attention over image tokens: no text keys
SD3_MEDIUM_LAYERS = 24
SD35_MEDIUM_DUAL = tuple(range(13))
FLUX1_BLOCKS = (19, 38)  # joint, single-stream
TINY_SD35 = (4, (0, 1))  # models/tiny.py: blocks, dual blocks
TINY_FLUX = (2, 2)


def sd3_names(num_layers: int, dual: tuple = ()) -> list[str]:
    """SD3 / SD3.5 joint attentions, and `attn2` in the `dual` blocks, in registration order."""
    return [f"transformer_blocks.{i}.{a}" for i in range(num_layers) for a in ("attn", "attn2")
            if a == "attn" or i in dual]


def flux_names(joint: int, single: int) -> list[str]:
    return ([f"transformer_blocks.{i}.attn" for i in range(joint)]
            + [f"single_transformer_blocks.{i}.attn" for i in range(single)])


def unet_names(down: tuple, up: tuple, transformer_layers: tuple, layers_per_block: int) -> list[str]:
    """attn1/attn2 of every transformer block, in UNet2DConditionModel's registration order
    (down blocks, up blocks, then the mid block)."""
    def block(prefix: str, n_attentions: int, depth: int) -> list[str]:
        return [f"{prefix}.attentions.{j}.transformer_blocks.{t}.{a}"
                for j in range(n_attentions) for t in range(depth) for a in ("attn1", "attn2")]

    names = []
    for i, kind in enumerate(down):
        if kind.startswith("CrossAttn"):
            names += block(f"down_blocks.{i}", layers_per_block, transformer_layers[i])
    for i, kind in enumerate(up):
        if kind.startswith("CrossAttn"):
            names += block(f"up_blocks.{i}", layers_per_block + 1, transformer_layers[::-1][i])
    return names + block("mid_block", 1, transformer_layers[-1])


TINY_SDXL = unet_names(("DownBlock2D", "CrossAttnDownBlock2D"), ("CrossAttnUpBlock2D", "UpBlock2D"), (1, 2), 1)
SDXL_BASE = unet_names(("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                       ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), (1, 2, 10), 2)


def attention_names(model_cfg: dict) -> list[str]:
    family, standin = model_cfg["family"], model_cfg["source"] == "standin"
    if family == "sd3":
        return sd3_names(4 if standin else model_cfg.get("n_layers", SD3_MEDIUM_LAYERS))
    if family == "sd35":
        if standin:
            return sd3_names(*TINY_SD35)
        return sd3_names(model_cfg.get("n_layers", SD3_MEDIUM_LAYERS),
                         tuple(model_cfg.get("dual_attention_layers", SD35_MEDIUM_DUAL)))
    if family == "flux":
        return flux_names(*(TINY_FLUX if standin else FLUX1_BLOCKS))
    return TINY_SDXL if standin else SDXL_BASE


def patchable(model_cfg: dict, modules, blocks: str = "") -> list[str]:
    """The modules that `layers` index for this (modules, blocks) choice, in model order."""
    return [n for n in attention_names(model_cfg) if n.rsplit(".", 1)[-1] in modules and n.startswith(blocks)]


def check_bos(where: str, spec, model_name: str, model_cfg: dict) -> None:
    """Raise where `spec` edits text keys by index (the CLIP BOS) in modules without one."""
    if spec.select != "index" or spec.index_base != "text":
        return
    family = model_cfg["family"]
    if family not in BOS_FAMILIES:
        raise ValueError(f"{where}.index_base: 'text' counts from the CLIP BOS key (preset sa, sa_value), but "
                         f"{model_name} ({family}) has no BOS key: it attends to T5 tokens only and T5 has no "
                         "BOS; drop this condition for this model, or edit image keys (index_base: image)")
    if set(spec.modules) <= set(IMAGE_ONLY_MODULES.get(family, ())):
        raise ValueError(f"{where}.index_base: 'text' counts from the CLIP BOS key, but modules={list(spec.modules)} "
                         f"of {model_name} attend to image tokens only; use modules: {list(MEASURE_MODULES[family])} "
                         "for the BOS key, or index_base: image")


def check_layers(where: str, layers, model_name: str, model_cfg: dict, modules, blocks: str = "") -> None:
    """Raise a ValueError naming `where` when a layer index has no module behind it."""
    count = len(patchable(model_cfg, modules, blocks))
    scope = f"modules={list(modules)}" + (f" blocks={blocks!r}" if blocks else "")
    if count == 0:
        raise ValueError(f"{where}: {model_name} has no attention module matching {scope}; "
                         f"{model_cfg['family']} models have {list(FAMILY_MODULES[model_cfg['family']])}")
    bad = [layer for layer in layers if not 0 <= layer < count]
    if bad:
        raise ValueError(f"{where}: layer {bad[0]} does not exist: {model_name} has {count} attention modules "
                         f"matching {scope}; use layers 0..{count - 1}")
