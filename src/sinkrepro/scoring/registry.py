"""Metric name -> scorer class. Each class loads its model once and scores batches of images."""
from __future__ import annotations

import importlib

import numpy as np
import torch

from sinkrepro.scoring.spec import ScorerSpec
from sinkrepro.vocab import SCORER_OF

# per-image metric -> (module, class); its scorer directory holds the metric's scorer (vocab.SCORER_OF)
SCORERS = {
    "clip_t": ("sinkrepro.scoring.clip", "ClipTScorer"),
    "hps": ("sinkrepro.scoring.clip", "HpsScorer"),
    "imagereward": ("sinkrepro.scoring.imagereward", "ImageRewardScorer"),
    "lpips": ("sinkrepro.scoring.lpips_scorer", "LpipsScorer"),
    # paired Inception-feature L2 to the baseline image; uses the FID scorer's feature extractor
    "feat_l2": ("sinkrepro.scoring.fid", "FeatureDistanceScorer"),
}


class Scorer:
    """Base: one loaded model; `score_batch` returns one float64 per image."""

    metric: str = ""
    pairwise: bool = False

    def __init__(self, spec: ScorerSpec, device: str = "cpu"):
        self.spec, self.device = spec, torch.device(device)

    def score_batch(self, images, prompts, references=None) -> np.ndarray:
        raise NotImplementedError


def load_scorer(metric: str, scorer_dir, device: str = "cpu") -> Scorer:
    if metric not in SCORERS:
        raise ValueError(f"unknown per-image metric {metric!r}; choose one of {sorted(SCORERS)} (FID: score_fid)")
    module, cls_name = SCORERS[metric]
    dir_metric = SCORER_OF.get(metric, metric)
    spec = ScorerSpec.load(scorer_dir)
    if spec.metric != dir_metric:
        raise ValueError(f"{scorer_dir} holds a {spec.metric!r} scorer; metric {metric!r} needs a {dir_metric!r} one")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls(spec, device)
