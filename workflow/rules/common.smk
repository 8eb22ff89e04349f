# Config validation, the job grid, and input functions shared by the rules.
import json

from snakemake.utils import validate

from sinkrepro.config import load_prompt_tables, validate_config
from sinkrepro.grid import PAIRWISE_METRICS, SCORE_METRICS, build_grid, config_hash


validate(config, "../schemas/config.schema.yaml")
validate_config(config)
PROMPTS = load_prompt_tables(config)
GRID = build_grid(config, PROMPTS)
EXPERIMENTS = GRID.experiments
DEVICE = config["device"]
GPU_JOBS = 0 if DEVICE == "cpu" else 1


wildcard_constraints:
    model="[^/]+",
    condition="[^/]+",
    seed=r"\d+",
    shard=r"shard\d{3}",
    metric="|".join(SCORE_METRICS),
    prompt_set="[^/]+",
    experiment="|".join(EXPERIMENTS),


def shard_job(wildcards):
    """Everything that decides a shard's images (its params: a change reruns the shard)."""
    shard = GRID.shard(wildcards.model, wildcards.condition, int(wildcards.seed), int(wildcards.shard[5:]))
    cond = GRID.conditions[(shard.model, shard.condition)]
    model_cfg = config["models"][shard.model]
    prompts = {r["prompt_id"]: r for rows in PROMPTS.values() for r in rows}
    job = {
        "model": shard.model, "family": model_cfg["family"], "condition": shard.condition,
        "seed": shard.seed, "seed_scheme": config["seed_scheme"], "sampler": cond.sampler,
        "spec": cond.spec.to_dict(), "prompts": [prompts[p] for p in shard.prompt_ids],
        "measure_layers": model_cfg["measure_layers"] if cond.measure else [],
        "batch_size": config["batch_size"], "dtype": model_cfg["dtype"],
    }
    job["config_hash"] = config_hash({**job, "model_cfg": model_cfg})
    return job


def shard_dirs(model, condition, seed):
    return [s.path for s in GRID.shards_of(model, condition, int(seed))]


def experiment_conditions(name):
    exp = EXPERIMENTS[name]
    return [exp["baseline"]] + [c["condition"] for c in exp["conditions"]]


def score_files(name):
    """Per-image score files of every condition, seed and shard of an experiment."""
    exp = EXPERIMENTS[name]
    files = []
    for metric in exp["metrics"]:
        if metric not in SCORE_METRICS:
            continue
        for condition in experiment_conditions(name):
            if metric in PAIRWISE_METRICS and condition == exp["baseline"]:
                continue
            for seed in exp["seeds"]:
                files += [f"results/scores/{metric}/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                          for s in GRID.shards_of(exp["model"], condition, seed)]
    return sorted(set(files))


def fid_files(name):
    exp = EXPERIMENTS[name]
    return [f"results/scores/fid/{exp['model']}/{p['condition']}/seed{p['seed']}"
            f"/vs_{p['reference']}_seed{p['reference_seed']}.parquet" for p in exp["fid_pairs"]]


def dynamics_files(name):
    exp = EXPERIMENTS[name]
    return sorted({f"results/dynamics/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                   for c in experiment_conditions(name) for seed in exp["seeds"]
                   for s in GRID.shards_of(exp["model"], c, seed)})


def all_tables():
    return sorted({t for exp in EXPERIMENTS.values() for t in exp["tables"]})


def scorer_config(wildcards):
    return {"metric": wildcards.scorer, **config["scorers"].get(wildcards.scorer, {})}


def score_inputs(wildcards):
    inputs = {"shard": f"results/images/{wildcards.model}/{wildcards.condition}/seed{wildcards.seed}/{wildcards.shard}",
              "scorer": f"resources/scorers/{wildcards.metric}"}
    if wildcards.metric in PAIRWISE_METRICS:
        shard = GRID.shard(wildcards.model, wildcards.condition, int(wildcards.seed), int(wildcards.shard[5:]))
        inputs["references"] = GRID.reference_shards(shard)[1]
    return inputs


def score_params(wildcards):
    cfg = config["scorers"][wildcards.metric]
    return {"metric": wildcards.metric, "batch_size": cfg["batch_size"], "tolerance": cfg["tolerance"]}


def fid_inputs(wildcards):
    return {"shards": shard_dirs(wildcards.model, wildcards.condition, wildcards.seed),
            "references": shard_dirs(wildcards.model, wildcards.reference, wildcards.reference_seed),
            "scorer": "resources/scorers/fid"}


def fid_params(wildcards):
    return {"batch_size": config["scorers"]["fid"]["batch_size"]}
