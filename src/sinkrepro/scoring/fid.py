"""FID-shift between an image set and its reference set, and a paired per-image feature distance.

Features: Inception-v3 pool3 (2048-d, pytorch-fid's FID weights) for the real scorer; a small
seeded random CNN for the stand-in. FID compares Gaussian fits; with N images in D dimensions the
covariance has rank <= N-1, so at N <= D (e.g. 553 images vs 2048-d) it is singular and the FID is
ill-conditioned. The output says so, and `feat_l2` (the L2 distance between each image's features
and its paired baseline image's features) gives a per-image measure that stays well defined.
"""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import scipy.linalg
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from sinkrepro.io import sha256_bytes, write_parquet
from sinkrepro.scoring.jobs import own_entries
from sinkrepro.scoring.registry import Scorer
from sinkrepro.scoring.shards import image_tensor, load_image, read_manifest
from sinkrepro.scoring.spec import ScorerSpec, write_spec

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's FID Inception weights
ILL_CONDITIONED_NOTE = (
    "FID fits a {dim}-d Gaussian to {n} images: the covariance has rank <= {rank} < {dim}, so the FID is "
    "ill-conditioned (dominated by estimation noise); prefer the paired feature distance feat_l2"
)


class StandinFeatureNet(nn.Module):
    """Stand-in feature extractor: three strided convs + global average pool; input [B, 3, S, S] in [0, 1]."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, dim, 3, stride=2, padding=1), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(2.0 * x - 1.0).mean(dim=(2, 3))  # [B, dim]


class InceptionPool3(nn.Module):
    """pytorch-fid's InceptionV3 pool3 block, with its FID weights read from a local file."""

    def __init__(self, weights: Path):
        super().__init__()
        try:
            import pytorch_fid.inception as pfi
        except ImportError as exc:
            raise ImportError("the real FID scorer needs pytorch-fid (pip install pytorch-fid==0.3.0)") from exc

        def local_only(url, *args, **kwargs):
            if Path(url).name != FID_WEIGHTS_FILE:
                raise RuntimeError(f"refusing to download {url}; scoring is offline")
            return torch.load(weights, map_location="cpu", weights_only=True)

        with mock.patch.object(pfi, "load_state_dict_from_url", local_only):
            self.net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                       normalize_input=True, use_fid_inception=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0][:, :, 0, 0]  # [B, 2048]


class FeatureExtractor:
    def __init__(self, spec: ScorerSpec, device: torch.device):
        cfg = spec.config
        self.device, self.input_size, self.dim = device, int(cfg["input_size"]), int(cfg["dim"])
        if cfg["arch"] == "inception_pool3":
            self.net = InceptionPool3(spec.file("weights"))
        elif cfg["arch"] == "standin_cnn":
            self.net = StandinFeatureNet(self.dim)
            self.net.load_state_dict(load_file(spec.file("weights")), strict=True)
        else:
            raise ValueError(f"{spec.root}: unknown feature arch {cfg['arch']!r}")
        self.net.eval().to(device)

    @torch.no_grad()
    def __call__(self, images) -> np.ndarray:
        size = (self.input_size, self.input_size)
        # bilinear resize as pytorch-fid does inside the model (a no-op there once sizes match)
        x = torch.cat([F.interpolate(image_tensor(im)[None], size=size, mode="bilinear", align_corners=False)
                       for im in images]).to(self.device)  # [B, 3, S, S]
        return self.net(x).double().cpu().numpy()  # [B, dim]


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets [N, D]."""
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    cov_a, cov_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)  # [D, D]
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product: regularise both sides
        offset = eps * np.eye(cov_a.shape[0])
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


class FeatureDistanceScorer(Scorer):
    metric = "feat_l2"
    pairwise = True

    def __init__(self, spec, device="cpu"):
        super().__init__(spec, device)
        self.extract = FeatureExtractor(spec, self.device)

    def score_batch(self, images, prompts, references=None) -> np.ndarray:
        return np.linalg.norm(self.extract(images) - self.extract(references), axis=1)


def _set_features(extract, shard_dirs, batch_size, prompt_ids=None):
    entries = own_entries([e for d in shard_dirs for e in read_manifest(d)], prompt_ids, ", ".join(map(str, shard_dirs)))
    keys = {(e.row["model"], e.row["condition"], int(e.row["seed"])) for e in entries}
    if len(keys) != 1:
        raise ValueError(f"FID sets must be one (model, condition, seed); {list(shard_dirs)} mix {sorted(keys)}")
    for e in entries:
        load_image(e)  # verify every image before any feature work; raises naming the file
    feats = np.concatenate([extract([load_image(e) for e in entries[i:i + batch_size]])
                            for i in range(0, len(entries), batch_size)])
    standin = any(e.row.get("standin", False) for e in entries)
    digest = sha256_bytes("".join(sorted(e.row["sha256"] + "\n" for e in entries)).encode())
    return feats, keys.pop(), standin, digest


def score_fid(scorer_dir, shard_dirs, reference_shard_dirs, out_path=None, *, device: str = "cpu",
              batch_size: int = 32, prompt_ids=None) -> pd.DataFrame:
    """Set-level FID of the images in `shard_dirs` against those in `reference_shard_dirs` (one row).

    With `prompt_ids`, each set is exactly the images of those prompts (shards of a shared condition
    also hold other experiments' prompts)."""
    spec = ScorerSpec.load(scorer_dir)
    if spec.metric != "fid":
        raise ValueError(f"{scorer_dir} holds a {spec.metric!r} scorer; score_fid needs a 'fid' one")
    extract = FeatureExtractor(spec, torch.device(device))  # one model load for both sets
    feats, (model, condition, seed), standin, digest = _set_features(extract, shard_dirs, batch_size, prompt_ids)
    ref_feats, (ref_model, ref_condition, ref_seed), ref_standin, _ = _set_features(extract, reference_shard_dirs, batch_size, prompt_ids)
    if ref_model != model:
        raise ValueError(f"FID compares sets of one model; got {model!r} vs reference {ref_model!r}")
    n, n_ref, dim = len(feats), len(ref_feats), feats.shape[1]
    if min(n, n_ref) < 2:
        raise ValueError(f"FID needs >= 2 images per set; got {n} and {n_ref}")
    value = frechet_distance(feats, ref_feats)
    rank = min(np.linalg.matrix_rank(np.cov(feats, rowvar=False)), np.linalg.matrix_rank(np.cov(ref_feats, rowvar=False)))
    ill = bool(min(n, n_ref) <= dim)
    row = {
        "metric": "fid", "value": value, "model": model, "condition": condition, "seed": seed,
        "prompt_id": None, "category": None, "generator_seed": None, "file": None,
        "image_sha256": digest,  # sha256 over the sorted image hashes of the set
        "scorer_id": spec.scorer_id, "weights_sha256": spec.weights_sha256, "package": spec.package,
        "package_version": spec.package_version, "standin": bool(spec.standin or standin or ref_standin),
        "reference_condition": ref_condition, "reference_file": None, "failed": False, "error": None,
        "tolerance": None, "reference_seed": ref_seed, "n_images": n, "n_reference": n_ref, "dim": dim,
        "cov_rank": int(rank), "ill_conditioned": ill,
        "note": ILL_CONDITIONED_NOTE.format(dim=dim, n=min(n, n_ref), rank=min(n, n_ref) - 1) if ill else "",
    }
    frame = pd.DataFrame([row])
    frame["tolerance"] = frame["tolerance"].astype("float64")
    if out_path is not None:
        write_parquet(out_path, frame)
    return frame


STANDIN_DIM, STANDIN_INPUT = 64, 64


def build_standin(root: Path, seed: int) -> None:
    torch.manual_seed(seed)
    net = StandinFeatureNet(STANDIN_DIM)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, root / "features_standin.safetensors")
    write_spec(root, metric="fid", scorer_id=f"fid/standin-cnn{STANDIN_DIM}/seed{seed}", standin=True,
               package="torch", source=f"random init, seed {seed}",
               config={"arch": "standin_cnn", "dim": STANDIN_DIM, "input_size": STANDIN_INPUT},
               files={"weights": "features_standin.safetensors"})
