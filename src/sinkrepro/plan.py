"""What a config will cost before anyone submits it: jobs, generations, steps, GPU-hours."""
from __future__ import annotations

from collections import Counter

from sinkrepro.grid import PAIRWISE_METRICS, Grid, per_image_metrics


def plan_summary(grid: Grid, seconds_per_step: dict[str, float]) -> dict:
    images, steps = Counter(), Counter()
    for shard in grid.shards:
        sampler = grid.conditions[(shard.model, shard.condition)].sampler
        images[shard.model] += len(shard.prompt_ids)
        steps[shard.model] += len(shard.prompt_ids) * sampler["steps"]
    score_jobs = set()
    fid_jobs = set()
    for exp in grid.experiments.values():
        conds = [exp["baseline"]] + [c["condition"] for c in exp["conditions"]]
        fid_jobs.update((exp["model"], p["condition"], p["seed"], p["reference"], p["reference_seed"])
                        for p in exp["fid_pairs"])
        for metric in per_image_metrics(exp["metrics"]):
            for cond in conds:
                if metric in PAIRWISE_METRICS and cond == exp["baseline"]:
                    continue
                for seed in exp["seeds"]:
                    score_jobs.update((metric, s.model, s.condition, s.seed, s.index)
                                      for s in grid.shards_of(exp["model"], cond, seed))
    gpu_hours = {m: steps[m] * seconds_per_step.get(m, seconds_per_step.get("*", 0.0)) / 3600 for m in steps}
    return {
        "models": sorted(images), "experiments": len(grid.experiments),
        "conditions": len(grid.conditions), "generate_jobs": len(grid.shards),
        "score_jobs": len(score_jobs), "fid_jobs": len(fid_jobs),
        "images": dict(images), "steps": dict(steps), "gpu_hours": gpu_hours,
        "generations": sum(images.values()),
    }


def format_plan(summary: dict, seconds_per_step: dict[str, float]) -> str:
    lines = [
        f"experiments: {summary['experiments']}",
        f"conditions (distinct, shared across experiments): {summary['conditions']}",
        f"jobs: generate {summary['generate_jobs']}, score {summary['score_jobs']}, fid {summary['fid_jobs']}",
        "per model: images, denoising steps, GPU-hours"
        + ("" if seconds_per_step else " (pass --seconds-per-step to estimate)"),
    ]
    for model in summary["models"]:
        lines.append(f"  {model}: {summary['images'][model]} images, {summary['steps'][model]} steps, "
                     f"{summary['gpu_hours'][model]:.2f} GPU-h")
    lines.append(f"total GPU-hours: {sum(summary['gpu_hours'].values()):.2f}")
    lines.append(f"generations: {summary['generations']}")
    return "\n".join(lines)


def parse_seconds_per_step(values: list[str]) -> dict[str, float]:
    """`2.5` (every model) or `sd3-medium=0.25` (one model)."""
    out = {}
    for value in values:
        model, _, seconds = value.rpartition("=")
        try:
            out[model or "*"] = float(seconds)
        except ValueError:
            raise ValueError(f"--seconds-per-step {value!r}: expected SECONDS or MODEL=SECONDS") from None
    return out
