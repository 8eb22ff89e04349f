"""What a config will cost before anyone submits it: jobs per rule, generations, steps, GPU-hours."""
from __future__ import annotations

from collections import Counter

from sinkrepro import layout
from sinkrepro.grid import Grid


def jobs_per_rule(grid: Grid) -> dict[str, int]:
    """The jobs a first run of the workflow plans, per rule (`snakemake -n`'s job stats, less `all`)."""
    experiments = list(grid.experiments.values())
    scored = [grid.experiments[name] for name in layout.scored_experiments(grid)]
    figures = Counter(layout.figure_rule(f) for exp in experiments for f in layout.figure_names(exp))
    jobs = {
        "model": len(layout.models_of(grid)),
        "scorer": len(layout.scorer_names(grid)),
        "prompt_table": len({exp["prompt_set"] for exp in scored}),
        "generate": len(grid.shards),
        "score": len(layout.score_work(grid)),
        "fid": len(layout.all_fid_jobs(grid)),
        "stats": len(scored),
        "paper_tables": int(bool(layout.stats_table_names(grid))),
        "paper_claims": 1,
        "paper_index": 1,
        "provenance": 1,
        "dynamics_table": len(layout.dynamics_table_stems(grid)),
        **figures,
    }
    return {rule: n for rule, n in jobs.items() if n}


def plan_summary(grid: Grid, seconds_per_step: dict[str, float]) -> dict:
    images, steps = Counter(), Counter()
    for shard in grid.shards:
        sampler = grid.conditions[(shard.model, shard.condition)].sampler
        images[shard.model] += len(shard.prompt_ids)
        steps[shard.model] += len(shard.prompt_ids) * sampler["steps"]
    jobs = jobs_per_rule(grid)
    gpu_hours = {m: steps[m] * seconds_per_step.get(m, seconds_per_step.get("*", 0.0)) / 3600 for m in steps}
    return {
        "models": sorted(images), "experiments": len(grid.experiments),
        "conditions": len(grid.conditions), "jobs": jobs, "generate_jobs": jobs.get("generate", 0),
        "score_jobs": jobs.get("score", 0), "fid_jobs": jobs.get("fid", 0),
        "images": dict(images), "steps": dict(steps), "gpu_hours": gpu_hours,
        "generations": sum(images.values()),
    }


def format_plan(summary: dict, seconds_per_step: dict[str, float]) -> str:
    jobs = summary["jobs"]
    lines = [
        f"experiments: {summary['experiments']}",
        f"conditions (distinct, shared across experiments): {summary['conditions']}",
        f"jobs per rule ({sum(jobs.values())} in all):",
        *(f"  {rule}: {n}" for rule, n in jobs.items()),
        "per model: images, denoising steps, GPU-hours"
        + ("" if seconds_per_step else " (pass --seconds-per-step to estimate)"),
    ]
    for model in summary["models"]:
        lines.append(f"  {model}: {summary['images'][model]} images, {summary['steps'][model]} steps, "
                     f"{summary['gpu_hours'][model]:.3g} GPU-h")
    lines.append(f"total GPU-hours: {sum(summary['gpu_hours'].values()):.3g}")
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
