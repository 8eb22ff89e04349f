"""Image scorers (CLIP-T, HPS v2.1, ImageReward, LPIPS, FID-shift + paired feature distance).

    build_standin_scorers(out_dir, seed=0) -> {metric: dir}      offline, seconds, a few MB each
    fetch_scorer_weights(metric, out_dir, revision, sha256) -> dir   real weights (network), pinned
    score_shard(metric, scorer_dir, shard_dir, out_path, ...)    one row per image (parquet)
    score_shard_metrics(metrics, scorer_dirs, shard_dir, ...)   every metric of a shard, one job
    score_fid(scorer_dir, shard_dirs, reference_shard_dirs, out_path, ...)   one row per set pair
Per-image metrics: clip_t, hps, imagereward, lpips and feat_l2 (the last two need the baseline shard).
"""
import importlib

# Imported on first use: a score job needs neither the fetcher nor FID, a FID job needs no CLIP.
_HOMES = {
    "fetch_scorer_weights": "fetch", "frechet_distance": "fid", "score_fid": "fid",
    "SCORE_COLUMNS": "jobs", "ScoringError": "jobs", "score_shard": "jobs", "score_shard_metrics": "jobs",
    "SCORERS": "registry", "load_scorer": "registry", "ImageError": "shards",
    "ScorerSpec": "spec", "build_standin_scorers": "standins",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
