"""LPIPS (alex, v0.1) of each image against its paired baseline image, at full resolution in [-1, 1].

The lpips package is used as is. Its backbone is built without a download (pnet_rand) and then
loaded from the scorer directory: torchvision's ImageNet AlexNet features for the real scorer, a
seeded random backbone for the stand-in. The linear heads are the ones shipped in the lpips wheel.
"""
from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from sinkrepro.scoring.registry import Scorer
from sinkrepro.scoring.shards import image_tensor


def build_lpips(spec, device: torch.device):
    import lpips

    cfg = spec.config
    model = lpips.LPIPS(net=cfg["net"], version=cfg["version"], pretrained=True, pnet_rand=True,
                        model_path=str(spec.file("lin")), verbose=False)
    backbone = {k: v.float() for k, v in load_file(spec.file("backbone")).items()}
    model.net.load_state_dict(backbone, strict=True)
    return model.eval().to(device)


def to_signed(image) -> torch.Tensor:
    return image_tensor(image) * 2.0 - 1.0  # [3, H, W] in [-1, 1]


class LpipsScorer(Scorer):
    metric = "lpips"
    pairwise = True

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self.model = build_lpips(spec, self.device)

    @torch.no_grad()
    def score_batch(self, images, prompts, references=None) -> np.ndarray:
        out = np.empty(len(images))
        by_size: dict[tuple, list[int]] = {}
        for i, (im, ref) in enumerate(zip(images, references, strict=True)):
            if im.size != ref.size:
                raise ValueError(f"image {i} is {im.size} but its baseline is {ref.size}; LPIPS needs equal sizes")
            by_size.setdefault(im.size, []).append(i)
        for idx in by_size.values():
            a = torch.stack([to_signed(images[i]) for i in idx]).to(self.device)  # [b, 3, H, W]
            b = torch.stack([to_signed(references[i]) for i in idx]).to(self.device)
            out[idx] = self.model(a, b).flatten().double().cpu().numpy()  # [b]
        return out
