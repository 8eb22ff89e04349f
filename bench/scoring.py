"""Batched vs one-at-a-time scoring throughput per scorer, on the seeded stand-ins.

    python bench/scoring.py [--n 32] [--batch-size 16] [--size 64] [--threads 1]
Prints images/s both ways and their ratio; the last line is `scoring-bench: <metric>=<ratio>x ...`.
Stand-in models are tiny, so the ratio shows the per-call overhead batching saves, not real-model speed.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sinkrepro.scoring import build_standin_scorers, load_scorer  # noqa: E402

METRICS = {"clip_t": "clip_t", "hps": "hps", "imagereward": "imagereward", "lpips": "lpips", "feat_l2": "fid"}


def images(n: int, size: int, seed: int) -> list[Image.Image]:
    rng = np.random.RandomState(seed)
    return [Image.fromarray(rng.randint(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def throughput(scorer, imgs, prompts, refs, batch_size: int, repeats: int) -> float:
    """Best-of-`repeats` images per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(imgs), batch_size):
            scorer.score_batch(imgs[i:i + batch_size], prompts[i:i + batch_size],
                               refs[i:i + batch_size] if scorer.pairwise else None)
        best = min(best, time.perf_counter() - start)
    return len(imgs) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    imgs, refs = images(args.n, args.size, 0), images(args.n, args.size, 1)
    prompts = [f"a photo of {k} red apples on a table" for k in range(args.n)]
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_standin_scorers(tmp, seed=0)
        for metric, dir_metric in METRICS.items():
            scorer = load_scorer(metric, dirs[dir_metric])
            scorer.score_batch(imgs[:2], prompts[:2], refs[:2] if scorer.pairwise else None)  # warm-up
            single = throughput(scorer, imgs, prompts, refs, 1, args.repeats)
            batched = throughput(scorer, imgs, prompts, refs, args.batch_size, args.repeats)
            ratios[metric] = batched / single
            print(f"{metric:12s} one-at-a-time {single:8.1f} img/s   batch {args.batch_size}: {batched:8.1f} img/s"
                  f"   ratio {ratios[metric]:.2f}x", flush=True)
    print(f"(n={args.n}, {args.size}px, threads={args.threads}, stand-in scorers)")
    print("scoring-bench: " + " ".join(f"{m}={r:.2f}x" for m, r in ratios.items()))


if __name__ == "__main__":
    main()
