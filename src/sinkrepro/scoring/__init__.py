"""Image scorers (CLIP-T, HPS v2.1, ImageReward, LPIPS, FID-shift + paired feature distance).

    build_standin_scorers(out_dir, seed=0) -> {metric: dir}      offline, seconds, a few MB each
    fetch_scorer_weights(metric, out_dir, revision, sha256) -> dir   real weights (network), pinned
    score_shard(metric, scorer_dir, shard_dir, out_path, ...)    one row per image (parquet)
    score_shard_metrics(metrics, scorer_dirs, shard_dir, ...)   every metric of a shard, one job
    score_fid(scorer_dir, shard_dirs, reference_shard_dirs, out_path, ...)   one row per set pair
Per-image metrics: clip_t, hps, imagereward, lpips and feat_l2 (the last two need the baseline shard).
"""
from sinkrepro.scoring.fetch import fetch_scorer_weights
from sinkrepro.scoring.fid import frechet_distance, score_fid
from sinkrepro.scoring.jobs import SCORE_COLUMNS, ScoringError, score_shard, score_shard_metrics
from sinkrepro.scoring.registry import PAIRWISE, PER_IMAGE, load_scorer
from sinkrepro.scoring.shards import ImageError
from sinkrepro.scoring.spec import ScorerSpec
from sinkrepro.scoring.standins import build_standin_scorers

__all__ = [
    "PAIRWISE", "PER_IMAGE", "SCORE_COLUMNS", "ImageError", "ScorerSpec", "ScoringError",
    "build_standin_scorers", "fetch_scorer_weights", "frechet_distance", "load_scorer", "score_fid", "score_shard",
    "score_shard_metrics",
]
