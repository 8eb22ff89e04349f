"""Loading pipelines from local directories, and fetching hub weights once.

Every generation job loads with `from_pretrained(local_dir, variant=..., local_files_only=True)`: the
stand-ins and the hub models go through the same call. Only `fetch_hub_model` touches the network.
"""
from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path

from sinkrepro.io import atomic_dir, write_text
from sinkrepro.models.tiny import STANDIN_MARKER

PIPELINE_CLASSES = {"sd3": "StableDiffusion3Pipeline", "sd35": "StableDiffusion3Pipeline", "flux": "FluxPipeline",
                    "sdxl": "StableDiffusionXLPipeline"}
TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def is_standin(model_dir: str | Path) -> bool:
    return (Path(model_dir) / STANDIN_MARKER).exists()


def load_pipeline(model_dir: str | Path, family: str, dtype: str = "float32", device: str = "cpu",
                  variant: str | None = None):
    """`variant` (the model config's, e.g. fp16) picks the `*.{variant}.safetensors` weight files."""
    import diffusers
    import torch

    model_dir = Path(model_dir)
    if family not in PIPELINE_CLASSES:
        raise ValueError(f"family: {family!r} is not one of {sorted(PIPELINE_CLASSES)}")
    if not (model_dir / "model_index.json").exists():
        raise FileNotFoundError(f"{model_dir}: no model_index.json; build or fetch the model first with the "
                                f"`model` rule (snakemake resources/models/<name>)")
    cls = getattr(diffusers, PIPELINE_CLASSES[family])
    try:
        pipe = cls.from_pretrained(model_dir, dtype=getattr(torch, TORCH_DTYPES[dtype]), variant=variant,
                                   local_files_only=True)
    except OSError as err:
        raise OSError(f"{model_dir}: cannot load with variant={variant!r} ({err}); the model config's `variant` "
                      f"must name the weight files the directory holds (e.g. variant: fp16 for "
                      f"*.fp16.safetensors)") from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


_HELD_LOCKS = []  # open lock files: a GPU stays claimed for the life of the job's process


def claim_gpu(count: int, lock_dir: Path) -> int:
    """Take an exclusive lock on one of `count` GPUs, so parallel local jobs never share one."""
    import fcntl

    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        handle = open(lock_dir / f"gpu{index}.lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _HELD_LOCKS.append(handle)
        return index
    raise RuntimeError(f"all {count} GPUs are claimed by other jobs; set resources.gpu in the profile to at "
                       f"most the number of GPUs")


def resolve_device(device: str, lock_dir: Path = Path(tempfile.gettempdir()) / "sinkrepro-gpus") -> str:
    """`auto`: a GPU when there is one, else the CPU. With several visible GPUs (and no scheduler
    that set CUDA_VISIBLE_DEVICES), each job claims a free one."""
    if device == "cpu":
        return device
    import torch

    if not torch.cuda.is_available():
        if device == "cuda":
            raise RuntimeError("device: cuda was asked for but no GPU is visible; use device: auto or cpu")
        return "cpu"
    count = torch.cuda.device_count()
    if count > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
        return f"cuda:{claim_gpu(count, lock_dir)}"
    return "cuda"


def hub_allow_patterns(variant: str | None) -> list[str] | None:
    """The files a fetch keeps: with a variant, only its weight files (what `load_pipeline(variant=...)`
    reads) plus configs and tokenizers; without one, the whole snapshot."""
    return None if variant is None else [f"*{variant}*", "*.json", "*.txt", "*.model"]


def is_commit(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", revision) is not None


def resolve_commit(repo: str, revision: str, token: str | None, where: str) -> str:
    """The commit a branch or tag points at now, logged as the pin to paste into the config."""
    from huggingface_hub import model_info

    commit = model_info(repo, revision=revision, token=token).sha
    logging.getLogger(__name__).warning(
        "%s.revision: %r is not a commit; fetching %s at its current commit. Pin it for reproducible runs: "
        "revision: %s", where, revision, repo, commit)
    return commit


def fetch_hub_model(repo: str, revision: str, out_dir: str | Path, variant: str | None = None, gated: bool = False,
                    where: str = "config.models.<name>") -> Path:
    """Download a hub snapshot into `out_dir`. Needs network; gated repos also need HF_TOKEN.

    A revision that is not a commit sha (a branch such as `main`) is resolved to its commit first, the
    download uses that commit, sinkrepro_source.json records both, and the log says what to pin."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise RuntimeError(f"fetch {repo}: HF_HUB_OFFLINE=1 is set; unset it on a machine with network access")
    token = os.environ.get("HF_TOKEN")
    if gated and not token:
        raise RuntimeError(f"fetch {repo}: {where}.gated is true (the repo needs its licence accepted on the hub) "
                           "but HF_TOKEN is not set; accept the licence and export HF_TOKEN=<token> before running "
                           "the `model` rule")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    out_dir = Path(out_dir)
    commit = revision if is_commit(revision) else resolve_commit(repo, revision, token, where)
    with atomic_dir(out_dir) as tmp:
        try:
            snapshot_download(repo_id=repo, revision=commit, local_dir=tmp, token=token,
                              allow_patterns=hub_allow_patterns(variant))
        except GatedRepoError as err:
            raise RuntimeError(f"fetch {repo}: the repo is gated; set {where}.gated: true, accept the licence "
                               "on the hub and export HF_TOKEN=<token>") from err
        write_text(tmp / "sinkrepro_source.json", json.dumps({"repo": repo, "revision": revision, "commit": commit,
                                                             "variant": variant},
                                                             indent=1))
    return out_dir
