"""CLIP-T and HPS v2.1: open_clip models loaded from a local weights file.

CLIP-T = raw cosine of the (L2-normalised) image and text embeddings, as the paper stores it.
HPS = the same cosine for an HPS-finetuned ViT-H-14, but with HPSv2's own preprocessing, which
resizes the *tensor* (ToTensor before the resize) and pads non-square images instead of cropping;
open_clip's default transform resizes the PIL image and crops, which gives different pixels.
"""
from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import Compose, InterpolationMode, Normalize, ToTensor

from sinkrepro.scoring.registry import Scorer

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def load_open_clip(spec, device: torch.device):
    """open_clip CLIP from spec.config['model_cfg'] with the local weights (strict: every key must match)."""
    import open_clip

    model = open_clip.model.CLIP(**spec.config["model_cfg"])
    open_clip.load_checkpoint(model, str(spec.file("weights")), strict=True)
    return model.eval().to(device)


class ResizeLongestPad(torch.nn.Module):
    """Scale a [3, H, W] tensor so its longest side is `size`, then zero-pad it centred to size x size."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        height, width = img.shape[1:]
        scale = self.size / max(height, width)
        if scale == 1.0:
            return img
        new_h, new_w = round(height * scale), round(width * scale)
        img = TF.resize(img, [new_h, new_w], InterpolationMode.BICUBIC)
        pad_h, pad_w = self.size - new_h, self.size - new_w
        return TF.pad(img, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)


def hps_transform(image_size: int) -> Compose:
    """HPSv2's scoring transform (hpsv2.img_score builds it with light_augmentation=True): tensor
    first, longest side resized (bicubic) and zero-padded to a square, then CLIP normalisation."""
    return Compose([ToTensor(), ResizeLongestPad(image_size), Normalize(OPENAI_MEAN, OPENAI_STD)])


class _OpenClipCosine(Scorer):
    def __init__(self, spec, device="cpu"):
        import open_clip

        super().__init__(spec, device)
        self.model = load_open_clip(spec, self.device)
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=spec.config["model_cfg"]["text_cfg"]["context_length"])
        self.transform = self.make_transform(spec.config["preprocess"])

    def make_transform(self, cfg: dict):
        raise NotImplementedError

    @torch.no_grad()
    def score_batch(self, images, prompts, references=None) -> np.ndarray:
        pixels = torch.stack([self.transform(im) for im in images]).to(self.device)  # [B, 3, S, S]
        tokens = self.tokenizer(list(prompts)).to(self.device)  # [B, 77]
        img = self.model.encode_image(pixels, normalize=True)  # [B, D]
        txt = self.model.encode_text(tokens, normalize=True)  # [B, D]
        return (img * txt).sum(-1).double().cpu().numpy()


class ClipTScorer(_OpenClipCosine):
    metric = "clip_t"

    def make_transform(self, cfg):
        import open_clip

        return open_clip.image_transform(
            cfg["image_size"], is_train=False, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
            interpolation=cfg.get("interpolation", "bicubic"), resize_mode=cfg.get("resize_mode", "shortest"),
        )


class HpsScorer(_OpenClipCosine):
    metric = "hps"

    def make_transform(self, cfg):
        return hps_transform(cfg["image_size"])
