"""Fetch the real scorer weights into the scorer-directory layout (needs network; the repos are public).

The only place that downloads. Hub files are fetched at one commit (`scorers.X.revision`, or the
repo's head at fetch time, which is recorded), and each fetched file is checked against its
known-good sha256 (`scorers.X.sha256`, by path in the scorer directory) before the directory is
written. Every file's sha256 goes into scorer.json; scoring jobs then load from the directory
alone, offline. The weights are then DVC-tracked.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from sinkrepro.io import atomic_dir
from sinkrepro.scoring.spec import ScorerSpec, write_spec

HUB = {  # metric -> (repo, file) on the Hugging Face Hub
    "clip_t": ("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
    "hps": ("xswu/HPSv2", "HPS_v2.1_compressed.pt"),
    "imagereward": ("THUDM/ImageReward", "ImageReward.pt"),
}


class FetchError(RuntimeError):
    pass


def _require_network(metric: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        raise FetchError(f"fetching the {metric} scorer weights needs the network, but HF_HUB_OFFLINE is set; run "
                         f"the `scorer` rule (snakemake resources/scorers/{metric}) where the network is reachable "
                         "with HF_HUB_OFFLINE unset, or `dvc pull` the directory")


def _hub_commit(metric: str, revision: str | None) -> str:
    """The commit to fetch at: the pinned revision, or the repo's head now (recorded in scorer.json)."""
    from huggingface_hub import HfApi

    repo = HUB[metric][0]
    try:
        return HfApi().model_info(repo, revision=revision).sha
    except Exception as exc:
        raise FetchError(f"could not resolve {repo}@{revision or 'main'}: {exc}") from exc


def _hub_file(metric: str, dest: Path, revision: str, filename: str | None = None) -> Path:
    from huggingface_hub import hf_hub_download

    repo, default = HUB[metric]
    name = filename or default
    try:
        path = hf_hub_download(repo, name, revision=revision, local_dir=dest)
    except Exception as exc:
        raise FetchError(f"could not download {repo}/{name}@{revision}: {exc}") from exc
    return Path(path)


def _hub_source(metric: str, revision: str) -> str:
    return "hf:" + "/".join(HUB[metric]) + f"@{revision}"


def _fetch_clip_t(root: Path, revision: str) -> None:
    import open_clip

    _hub_file("clip_t", root, revision)
    pre = open_clip.pretrained.get_pretrained_cfg("ViT-B-32", "openai")
    model_cfg = dict(open_clip.get_model_config("ViT-B-32"), quick_gelu=True)  # 'openai' weights use QuickGELU
    preprocess = {"image_size": 224, "mean": list(pre["mean"]), "std": list(pre["std"]),
                  "interpolation": pre["interpolation"], "resize_mode": pre["resize_mode"]}
    write_spec(root, metric="clip_t", scorer_id="clip_t/ViT-B-32/openai", standin=False, package="open_clip_torch",
               source=_hub_source("clip_t", revision), config={"model_cfg": model_cfg, "preprocess": preprocess},
               files={"weights": HUB["clip_t"][1]})


def _fetch_hps(root: Path, revision: str) -> None:
    import open_clip

    _hub_file("hps", root, revision)
    write_spec(root, metric="hps", scorer_id="hps/v2.1/ViT-H-14", standin=False, package="open_clip_torch",
               source=_hub_source("hps", revision),
               config={"model_cfg": open_clip.get_model_config("ViT-H-14"), "preprocess": {"image_size": 224},
                       "hps_version": "v2.1"},
               files={"weights": HUB["hps"][1]})


def _fetch_imagereward(root: Path, revision: str) -> None:
    from sinkrepro.scoring.imagereward import REAL_VISION, bert_vocab_file

    _hub_file("imagereward", root, revision)
    _hub_file("imagereward", root, revision, filename="med_config.json")
    shutil.copy(bert_vocab_file(), root / "vocab.txt")
    write_spec(root, metric="imagereward", scorer_id="imagereward/ImageReward-v1.0", standin=False,
               package="image-reward", source=_hub_source("imagereward", revision) + "; bert-base-uncased vocab",
               config={"vision": REAL_VISION},
               files={"weights": HUB["imagereward"][1], "med_config": "med_config.json", "vocab": "vocab.txt"})


def _fetch_lpips(root: Path) -> None:
    import lpips
    import torchvision

    shutil.copy(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", root / "alex_v0.1.pth")
    url = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url
    try:
        features = torch.hub.load_state_dict_from_url(url, model_dir=str(root / ".download"), map_location="cpu",
                                                      check_hash=True)
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


def _fetch_fid(root: Path) -> None:
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


def check_pins(root: Path, pins: dict, where: str) -> None:
    """Each fetched file against its known-good sha256; unpinned files are logged with the pin to add."""
    fetched = {info["path"]: info["sha256"] for info in ScorerSpec.load(root, verify=False).files.values()}
    unknown = sorted(set(pins) - set(fetched))
    if unknown:
        raise FetchError(f"{where}.sha256: {unknown} are not files of this scorer; its files are {sorted(fetched)}")
    for name, got in sorted(fetched.items()):
        if name not in pins:
            logging.warning("%s.sha256: %s is not pinned; its sha256 now is %s (add `%s: %s` to pin it)",
                            where, name, got, name, got)
        elif got != pins[name]:
            raise FetchError(f"{where}.sha256.{name}: the fetched file has sha256 {got}, expected {pins[name]}; it "
                             "changed upstream or the pin is wrong. Check the file, then update the pin (or the "
                             "revision); nothing was written")


def fetch_scorer_weights(metric: str, out_dir, revision: str | None = None, sha256: dict | None = None) -> Path:
    """Download one real scorer into out_dir (atomic) at `revision`, checking `sha256` pins; return out_dir.

    Fails early when offline."""
    where = f"config.scorers.{metric}"
    if metric not in FETCHERS:
        raise ValueError(f"unknown scorer {metric!r}; choose from {sorted(FETCHERS)}")
    if revision and metric not in HUB:
        raise ValueError(f"{where}.revision: {metric} is not fetched from the hub; pin its files with {where}.sha256")
    _require_network(metric)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        if metric in HUB:
            commit = _hub_commit(metric, revision)
            if not revision:
                logging.warning("%s.revision is not pinned; fetched at %s (add `revision: %s` to pin it)",
                                where, commit, commit)
            FETCHERS[metric](tmp, commit)
        else:
            FETCHERS[metric](tmp)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # hf_hub_download's local_dir bookkeeping
        check_pins(tmp, sha256 or {}, where)
    return out_dir
