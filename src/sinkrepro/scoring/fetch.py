"""Fetch the real scorer weights into the scorer-directory layout (needs network; Hub files need HF_TOKEN).

The only place that downloads. Every file's sha256 goes into scorer.json; scoring jobs then load
from the directory alone, offline. The weights are then DVC-tracked.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from sinkrepro.io import atomic_dir
from sinkrepro.scoring.spec import write_spec

HUB = {  # metric -> (repo, file) on the Hugging Face Hub
    "clip_t": ("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
    "hps": ("xswu/HPSv2", "HPS_v2.1_compressed.pt"),
    "imagereward": ("THUDM/ImageReward", "ImageReward.pt"),
}


class FetchError(RuntimeError):
    pass


def _require_network(needs_token: bool) -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        raise FetchError("fetching scorer weights needs the network, but HF_HUB_OFFLINE is set; "
                         "run the fetch rule where the network is reachable (unset HF_HUB_OFFLINE)")
    token = os.environ.get("HF_TOKEN")
    if needs_token and not token:
        raise FetchError("fetching from the Hugging Face Hub needs HF_TOKEN in the environment")
    return token


def _hub_file(metric: str, dest: Path, token: str | None, filename: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    repo, default = HUB[metric]
    name = filename or default
    try:
        path = hf_hub_download(repo, name, token=token, local_dir=dest)
    except Exception as exc:
        raise FetchError(f"could not download {repo}/{name}: {exc}") from exc
    return Path(path)


def _fetch_clip_t(root: Path, token) -> None:
    import open_clip

    _hub_file("clip_t", root, token)
    pre = open_clip.pretrained.get_pretrained_cfg("ViT-B-32", "openai")
    model_cfg = dict(open_clip.get_model_config("ViT-B-32"), quick_gelu=True)  # 'openai' weights use QuickGELU
    preprocess = {"image_size": 224, "mean": list(pre["mean"]), "std": list(pre["std"]),
                  "interpolation": pre["interpolation"], "resize_mode": pre["resize_mode"]}
    write_spec(root, metric="clip_t", scorer_id="clip_t/ViT-B-32/openai", standin=False, package="open_clip_torch",
               source="hf:" + "/".join(HUB["clip_t"]), config={"model_cfg": model_cfg, "preprocess": preprocess},
               files={"weights": HUB["clip_t"][1]})


def _fetch_hps(root: Path, token) -> None:
    import open_clip

    _hub_file("hps", root, token)
    write_spec(root, metric="hps", scorer_id="hps/v2.1/ViT-H-14", standin=False, package="open_clip_torch",
               source="hf:" + "/".join(HUB["hps"]),
               config={"model_cfg": open_clip.get_model_config("ViT-H-14"), "preprocess": {"image_size": 224},
                       "hps_version": "v2.1"},
               files={"weights": HUB["hps"][1]})


def _fetch_imagereward(root: Path, token) -> None:
    from sinkrepro.scoring.imagereward import REAL_VISION, bert_vocab_file

    _hub_file("imagereward", root, token)
    _hub_file("imagereward", root, token, filename="med_config.json")
    shutil.copy(bert_vocab_file(), root / "vocab.txt")
    write_spec(root, metric="imagereward", scorer_id="imagereward/ImageReward-v1.0", standin=False,
               package="image-reward", source="hf:THUDM/ImageReward; bert-base-uncased vocab",
               config={"vision": REAL_VISION},
               files={"weights": HUB["imagereward"][1], "med_config": "med_config.json", "vocab": "vocab.txt"})


def _fetch_lpips(root: Path, token) -> None:
    import lpips
    import torchvision

    shutil.copy(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", root / "alex_v0.1.pth")
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    try:
        features = torch.hub.load_state_dict_from_url(url, model_dir=str(root / ".download"), map_location="cpu")
    except Exception as exc:
        raise FetchError(f"could not download {url}: {exc}") from exc
    # lpips splits alexnet.features into slices keeping each layer's index: sliceK.<i>.* = features.<i>.*
    skeleton = lpips.pretrained_networks.alexnet(requires_grad=False, pretrained=False).state_dict()
    backbone = {k: features["features." + k.split(".", 1)[1]].contiguous() for k in skeleton}
    save_file(backbone, root / "alexnet_features.safetensors")
    shutil.rmtree(root / ".download", ignore_errors=True)
    write_spec(root, metric="lpips", scorer_id="lpips/alex-v0.1", standin=False, package="lpips",
               source=f"linear heads from the lpips wheel; backbone {url}", config={"net": "alex", "version": "0.1"},
               files={"lin": "alex_v0.1.pth", "backbone": "alexnet_features.safetensors"})


def _fetch_fid(root: Path, token) -> None:
    from sinkrepro.scoring.fid import FID_WEIGHTS_FILE

    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL
    except ImportError as exc:
        raise FetchError("the real FID scorer needs pytorch-fid (pip install pytorch-fid==0.3.0)") from exc
    try:
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(root / FID_WEIGHTS_FILE))
    except Exception as exc:
        raise FetchError(f"could not download {FID_WEIGHTS_URL}: {exc}") from exc
    write_spec(root, metric="fid", scorer_id="fid/inception-v3-pool3", standin=False, package="pytorch-fid",
               source=FID_WEIGHTS_URL, config={"arch": "inception_pool3", "dim": 2048, "input_size": 299},
               files={"weights": FID_WEIGHTS_FILE})


FETCHERS = {"clip_t": _fetch_clip_t, "hps": _fetch_hps, "imagereward": _fetch_imagereward,
            "lpips": _fetch_lpips, "fid": _fetch_fid}


def fetch_scorer_weights(metric: str, out_dir) -> Path:
    """Download one real scorer into out_dir (atomic); return out_dir. Fails early when offline."""
    if metric not in FETCHERS:
        raise ValueError(f"unknown scorer {metric!r}; choose from {sorted(FETCHERS)}")
    token = _require_network(needs_token=metric in HUB)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        FETCHERS[metric](tmp, token)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # hf_hub_download's local_dir bookkeeping
    return out_dir
