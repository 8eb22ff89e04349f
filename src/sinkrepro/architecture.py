"""Which attention modules a model has, known without loading it (configs are checked at load).

An intervention's `layers` index the model's patchable attention modules in model order: those
whose name ends in one of `modules` and starts with `blocks` (attention.runtime.attention_modules).
The names come from the architecture:
- stand-ins (`source: standin`): the architecture models/tiny.py builds for the family;
- hub models: the family's reference checkpoint, SD3-medium (24 joint blocks; another depth via
  the model's `n_layers`) or SDXL-base 1.0 (every released SDXL shares its UNet).
tests/test_config.py checks these lists against the instantiated architectures.
"""
from __future__ import annotations

# Modules whose layers `measure_layers` counts when a condition edits nothing.
MEASURE_MODULES = {"sd3": ("attn",), "sdxl": ("attn2",)}
FAMILY_MODULES = {"sd3": ("attn",), "sdxl": ("attn1", "attn2")}  # every module name a family has
SD3_MEDIUM_LAYERS = 24


def sd3_names(num_layers: int) -> list[str]:
    return [f"transformer_blocks.{i}.attn" for i in range(num_layers)]


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
    return TINY_SDXL if standin else SDXL_BASE


def patchable(model_cfg: dict, modules, blocks: str = "") -> list[str]:
    """The modules that `layers` index for this (modules, blocks) choice, in model order."""
    return [n for n in attention_names(model_cfg) if n.rsplit(".", 1)[-1] in modules and n.startswith(blocks)]


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
