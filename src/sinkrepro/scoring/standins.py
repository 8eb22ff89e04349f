"""Random-init stand-in scorers, built offline from a fixed seed into the real scorers' layout.

Each lands in `<out_dir>/<metric>/` with a scorer.json and is loaded by the same code as the real
weights. Their numbers exercise the pipeline; they are not scientific results.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from sinkrepro.io import atomic_dir
from sinkrepro.scoring.clip import OPENAI_MEAN, OPENAI_STD
from sinkrepro.scoring.spec import write_spec

# Tiny open_clip towers. The token embedding (49408 x text width) dominates the size on disk.
TINY_CLIP_T = {
    "embed_dim": 32, "quick_gelu": True,  # ViT-B-32 'openai' uses QuickGELU
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2},
}
TINY_HPS = {
    "embed_dim": 32,  # ViT-H-14 layout (patch 14, GELU), tiny widths
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 2},
}
CLIP_PREPROCESS = {"image_size": 224, "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD),
                   "interpolation": "bicubic", "resize_mode": "shortest"}


def _tiny_open_clip(cfg: dict, seed: int):
    import open_clip

    torch.manual_seed(seed)
    return open_clip.model.CLIP(**cfg).eval()


def build_clip_t(root: Path, seed: int) -> None:
    model = _tiny_open_clip(TINY_CLIP_T, seed)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, root / "open_clip_model.safetensors")
    write_spec(root, metric="clip_t", scorer_id=f"clip_t/standin-tiny-vit-b32/seed{seed}", standin=True,
               package="open_clip_torch", source=f"random init, seed {seed}",
               config={"model_cfg": TINY_CLIP_T, "preprocess": CLIP_PREPROCESS},
               files={"weights": "open_clip_model.safetensors"})


def build_hps(root: Path, seed: int) -> None:
    model = _tiny_open_clip(TINY_HPS, seed)
    # the HPS checkpoint format: {"state_dict": ...}, as hpsv2 loads it
    torch.save({"state_dict": model.state_dict()}, root / "hps_standin.pt")
    write_spec(root, metric="hps", scorer_id=f"hps/standin-tiny-vit-h14/seed{seed}", standin=True,
               package="open_clip_torch", source=f"random init, seed {seed}",
               config={"model_cfg": TINY_HPS, "preprocess": {"image_size": 224}, "hps_version": "standin"},
               files={"weights": "hps_standin.pt"})


def build_lpips(root: Path, seed: int) -> None:
    import lpips

    shutil.copy(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", root / "alex_v0.1.pth")
    torch.manual_seed(seed)
    backbone = lpips.pretrained_networks.alexnet(requires_grad=False, pretrained=False)
    # stored in fp16 to keep the stand-in small; the loader casts to fp32
    save_file({k: v.half().contiguous() for k, v in backbone.state_dict().items()}, root / "alexnet_features.safetensors")
    write_spec(root, metric="lpips", scorer_id=f"lpips/alex-v0.1/standin-random-backbone/seed{seed}", standin=True,
               package="lpips", source=f"linear heads from the lpips wheel; backbone random init, seed {seed}",
               config={"net": "alex", "version": "0.1"},
               files={"lin": "alex_v0.1.pth", "backbone": "alexnet_features.safetensors"})


def build_imagereward(root: Path, seed: int) -> None:
    from sinkrepro.scoring.imagereward import build_standin

    build_standin(root, seed)


def build_fid(root: Path, seed: int) -> None:
    from sinkrepro.scoring.fid import build_standin

    build_standin(root, seed)


BUILDERS = {"clip_t": build_clip_t, "hps": build_hps, "imagereward": build_imagereward,
            "lpips": build_lpips, "fid": build_fid}


def build_standin_scorers(out_dir, seed: int = 0, metrics=None) -> dict[str, Path]:
    """Build the stand-in scorers (all, or `metrics`) under out_dir/<metric>/; return metric -> dir."""
    metrics = list(metrics or BUILDERS)
    unknown = sorted(set(metrics) - set(BUILDERS))
    if unknown:
        raise ValueError(f"no stand-in for {unknown}; choose from {sorted(BUILDERS)}")
    out = {}
    for name in metrics:
        target = Path(out_dir) / name
        with atomic_dir(target) as tmp:
            BUILDERS[name](tmp, seed)
        out[name] = target
    return out
