"""Reading image shards for scoring: manifest rows, verified image bytes, baseline pairing."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sinkrepro.io import read_jsonl, sha256_bytes

MANIFEST = "manifest.jsonl"
REQUIRED_KEYS = ("prompt_id", "prompt", "category", "seed", "generator_seed", "file", "sha256", "model", "condition")


class ImageError(RuntimeError):
    """One image could not be used: missing, unreadable or not the bytes the manifest names."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


@dataclass(frozen=True)
class Entry:
    """One manifest row plus where its PNG lies."""

    row: dict
    path: Path

    @property
    def prompt_id(self) -> str:
        return str(self.row["prompt_id"])


def read_manifest(shard_dir: str | Path) -> list[Entry]:
    shard_dir = Path(shard_dir)
    manifest = shard_dir / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: an image shard needs its manifest.jsonl (docs/contracts.md)")
    rows = read_jsonl(manifest)
    if not rows:
        raise ValueError(f"{manifest} has no rows")
    for i, row in enumerate(rows):
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise ValueError(f"{manifest} line {i + 1} lacks {missing}; regenerate the shard")
    ids = [str(r["prompt_id"]) for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{manifest} repeats a prompt_id; one image per prompt per shard")
    return [Entry(row, shard_dir / row["file"]) for row in rows]


def load_image(entry: Entry) -> Image.Image:
    """The decoded RGB image, after checking its bytes against the manifest's sha256."""
    try:
        data = entry.path.read_bytes()
    except OSError as exc:
        raise ImageError(entry.path, f"unreadable ({exc.__class__.__name__}: {exc})") from exc
    digest = sha256_bytes(data)
    if digest != entry.row["sha256"]:
        raise ImageError(entry.path, f"sha256 {digest[:12]}... does not match the manifest's {str(entry.row['sha256'])[:12]}...")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ImageError(entry.path, f"not a decodable image ({exc})") from exc
    return image.convert("RGB")


def image_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as floats in [0, 1], [3, H, W] (torchvision's to_tensor, without importing torchvision)."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def pair_with_reference(entries: list[Entry], reference: list[Entry]) -> dict[str, Entry]:
    """Baseline entry per prompt_id; the pair must share model and seed (contracts: pairing keys)."""
    by_id = {e.prompt_id: e for e in reference}
    for e in entries:
        ref = by_id.get(e.prompt_id)
        if ref is None:
            continue
        for key in ("model", "seed", "generator_seed"):
            if ref.row[key] != e.row[key]:
                raise ValueError(
                    f"{e.path} and its reference {ref.path} differ in {key} ({e.row[key]!r} vs {ref.row[key]!r}); "
                    "pass the baseline shard of the same model and seed"
                )
    return by_id
