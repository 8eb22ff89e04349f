"""Score one image shard: verify every image, load the scorer once, score in batches, one row per image.

Failure policy: a missing, unreadable or hash-mismatched image (or a missing baseline partner, or a
non-finite score) fails the job with the file's name. With `tolerance` set (a fraction in [0, 1)),
up to that fraction of the shard may fail instead; those images get explicit rows with
`failed=True`, `value=NaN` and the reason in `error`, and the tolerance is written on every row.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from sinkrepro.io import write_parquet
from sinkrepro.scoring.registry import Scorer, load_scorer
from sinkrepro.scoring.shards import Entry, ImageError, load_image, pair_with_reference, read_manifest
from sinkrepro.vocab import PAIRWISE_METRICS

SCORE_COLUMNS = [
    "metric", "value", "model", "condition", "seed", "prompt_id", "category", "generator_seed", "file",
    "image_sha256", "scorer_id", "weights_sha256", "package", "package_version", "standin",
    "reference_condition", "reference_file", "failed", "error", "tolerance",
]


class ScoringError(RuntimeError):
    pass


def _check_tolerance(tolerance):
    if tolerance is not None and not (0.0 <= float(tolerance) < 1.0):
        raise ValueError(f"tolerance={tolerance!r}: give a fraction in [0, 1) or None (fail on the first bad image)")


def _enforce(failures: dict[str, str], n: int, tolerance, shard_dir) -> None:
    if not failures:
        return
    listing = "; ".join(failures.values())
    if tolerance is None:
        raise ScoringError(f"{len(failures)} of {n} images in {shard_dir} cannot be scored: {listing}")
    if len(failures) > tolerance * n:
        raise ScoringError(
            f"{len(failures)} of {n} images in {shard_dir} failed, more than tolerance={tolerance}: {listing}"
        )


def _verify(entries, refs, by_ref) -> dict[str, str]:
    """prompt_id -> reason, for every image (and baseline partner) that cannot be used."""
    failures = {}
    for e in entries:
        try:
            load_image(e)
            if refs is not None:
                ref = by_ref.get(e.prompt_id)
                if ref is None:
                    raise ImageError(e.path, f"no baseline image for prompt_id {e.prompt_id!r} in {refs}")
                load_image(ref)
        except ImageError as exc:
            failures[e.prompt_id] = str(exc)
    return failures


def _row(scorer: Scorer, e: Entry, ref: Entry | None, value: float, error: str | None, tolerance) -> dict:
    spec, r = scorer.spec, e.row
    return {
        "metric": scorer.metric, "value": float(value), "model": r["model"], "condition": r["condition"],
        "seed": int(r["seed"]), "prompt_id": str(r["prompt_id"]), "category": r["category"],
        "generator_seed": int(r["generator_seed"]), "file": r["file"], "image_sha256": r["sha256"],
        "scorer_id": spec.scorer_id, "weights_sha256": spec.weights_sha256, "package": spec.package,
        "package_version": spec.package_version,
        # any stand-in (image generator or scorer) makes the number a pipeline check, not a result
        "standin": bool(spec.standin or r.get("standin", False)),
        "reference_condition": ref.row["condition"] if ref is not None else None,
        "reference_file": ref.row["file"] if ref is not None else None,
        "failed": error is not None, "error": error,
        "tolerance": float(tolerance) if tolerance is not None else None,
    }


def own_entries(entries: list[Entry], prompt_ids, shard_dir) -> list[Entry]:
    """The entries of `prompt_ids` (all when None); every one of them must be in the shard."""
    if prompt_ids is None:
        return entries
    wanted = set(prompt_ids)
    missing = sorted(wanted - {e.prompt_id for e in entries})
    if missing:
        raise ValueError(f"{shard_dir}: no image for prompt_id {missing[:3]}; the grid placed them in this shard")
    return [e for e in entries if e.prompt_id in wanted]


def score_shard(metric: str, scorer_dir, shard_dir, out_path=None, *, reference_shard_dir=None,
                device: str = "cpu", batch_size: int = 16, tolerance: float | None = None,
                scorer: Scorer | None = None, prompt_ids=None) -> pd.DataFrame:
    """Score the images of `shard_dir` (only those of `prompt_ids` when given); write the rows to
    `out_path` (parquet, atomic) when given."""
    _check_tolerance(tolerance)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    entries = own_entries(read_manifest(shard_dir), prompt_ids, shard_dir)
    pairwise = metric in PAIRWISE_METRICS
    refs, by_ref = None, {}
    if pairwise:
        if reference_shard_dir is None:
            raise ValueError(f"metric {metric!r} compares each image to its baseline: pass reference_shard_dir")
        # the baseline images of this shard's prompts may lie in several baseline shards
        dirs = [reference_shard_dir] if isinstance(reference_shard_dir, (str, Path)) else list(reference_shard_dir)
        refs = ", ".join(map(str, dirs))
        by_ref = pair_with_reference(entries, [e for d in dirs for e in read_manifest(d)])

    failures = _verify(entries, refs, by_ref)
    _enforce(failures, len(entries), tolerance, shard_dir)

    scorer = scorer or load_scorer(metric, scorer_dir, device)  # one model load per job
    good = [e for e in entries if e.prompt_id not in failures]
    values: dict[str, float] = {}
    for start in range(0, len(good), batch_size):
        batch = good[start:start + batch_size]
        images = [load_image(e) for e in batch]
        prompts = [e.row["prompt"] for e in batch]
        references = [load_image(by_ref[e.prompt_id]) for e in batch] if pairwise else None
        scores = scorer.score_batch(images, prompts, references)
        for e, v in zip(batch, scores, strict=True):
            if math.isfinite(v):
                values[e.prompt_id] = float(v)
            else:
                failures[e.prompt_id] = f"{e.path}: non-finite {metric} score {v}"
    _enforce(failures, len(entries), tolerance, shard_dir)

    rows = []
    for e in entries:  # manifest order
        ref = by_ref.get(e.prompt_id) if pairwise else None
        if e.prompt_id in failures:
            rows.append(_row(scorer, e, ref, np.nan, failures[e.prompt_id], tolerance))
        else:
            rows.append(_row(scorer, e, ref, values[e.prompt_id], None, tolerance))
    frame = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    frame["tolerance"] = frame["tolerance"].astype("float64")
    if out_path is not None:
        write_parquet(out_path, frame)
    return frame


def score_shard_metrics(metrics: dict[str, dict], scorer_dirs: dict[str, str], shard_dir, out_path=None, *,
                        reference_shard_dirs=None, device: str = "cpu") -> pd.DataFrame:
    """Every per-image metric of one shard in one job, each scorer loaded once, one parquet.

    `metrics`: metric -> {prompt_ids, batch_size, tolerance}; `scorer_dirs`: metric -> scorer dir.
    """
    if not metrics:
        raise ValueError(f"{shard_dir}: no metrics to score")
    frames = [score_shard(metric, scorer_dirs[metric], shard_dir, device=device,
                          reference_shard_dir=reference_shard_dirs if metric in PAIRWISE_METRICS else None,
                          batch_size=int(opts.get("batch_size", 16)), tolerance=opts.get("tolerance"),
                          prompt_ids=opts.get("prompt_ids"))
              for metric, opts in metrics.items()]
    frame = pd.concat(frames, ignore_index=True)
    if out_path is not None:
        write_parquet(out_path, frame)
    return frame
