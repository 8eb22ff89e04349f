# Config validation, the job grid, and input functions shared by the rules. Paths and per-experiment
# file lists come from sinkrepro.layout (the one home of both).
import json

from sinkrepro import layout
from sinkrepro.codehash import code_hash
from sinkrepro.config import load_prompt_tables, scorer_identity, validate_config
from sinkrepro.grid import PAIRWISE_METRICS, build_grid, config_hash


validate_config(config)
PROMPTS = load_prompt_tables(config)
GRID = build_grid(config, PROMPTS)
EXPERIMENTS = GRID.experiments
SCORE_WORK = layout.score_work(GRID)
FID_JOBS = layout.all_fid_jobs(GRID)
DEVICE = config["device"]
GPU_JOBS = 0 if DEVICE == "cpu" else 1


wildcard_constraints:
    model="[^/]+",
    condition="[^/]+",
    seed=r"\d+",
    shard=r"shard\d{3}",
    prompt_set="[^/]+",
    prompts="[^/]+",
    experiment="|".join(EXPERIMENTS),


def shard_of(wildcards):
    return GRID.shard(wildcards.model, wildcards.condition, int(wildcards.seed), int(wildcards.shard[5:]))


def shard_job(wildcards):
    """Everything that decides a shard's images (its params: a change reruns the shard)."""
    shard = shard_of(wildcards)
    cond = GRID.conditions[(shard.model, shard.condition)]
    model_cfg = config["models"][shard.model]
    prompts = {r["prompt_id"]: r for rows in PROMPTS.values() for r in rows}
    job = {
        "model": shard.model, "family": model_cfg["family"], "condition": shard.condition,
        "seed": shard.seed, "seed_scheme": config["seed_scheme"], "sampler": cond.sampler,
        "spec": cond.spec.to_dict(), "prompts": [prompts[p] for p in shard.prompt_ids],
        "measure_layers": model_cfg["measure_layers"] if cond.measure else [],
        "measure_modules": model_cfg.get("measure_modules", []), "measure_blocks": model_cfg["measure_blocks"],
        "batch_size": config["batch_size"], "dtype": model_cfg["dtype"], "variant": model_cfg["variant"],
    }
    job["config_hash"] = config_hash({**job, "model_cfg": model_cfg})
    return job


# ---- scores: one job per image shard, every metric it needs ------------------------------------
def score_metrics(wildcards):
    return SCORE_WORK[shard_of(wildcards).key]


def score_inputs(wildcards):
    shard = shard_of(wildcards)
    metrics = SCORE_WORK[shard.key]
    inputs = {"shard": layout.image_dir(shard),
              "scorers": [layout.SCORER.format(scorer=s) for s in layout.scorers_of(metrics)]}
    pairwise = sorted({p for m, ids in metrics.items() if m in PAIRWISE_METRICS for p in ids})
    if pairwise:
        inputs["references"] = layout.reference_dirs(GRID, shard, pairwise)
    return inputs


def score_params(wildcards):
    """Per metric: the prompts to score and the scorer's failure tolerance (what decides the scores;
    the runtime knobs batch size and device are read from the config and rerun nothing)."""
    return {metric: {"prompt_ids": prompt_ids, "tolerance": config["scorers"][layout.scorers_of([metric])[0]]["tolerance"]}
            for metric, prompt_ids in score_metrics(wildcards).items()}


def all_score_files():
    return [layout.score_file(GRID.shard(*key)) for key in SCORE_WORK]


def scorer_config(wildcards):
    return scorer_identity(wildcards.scorer, config["scorers"].get(wildcards.scorer, {}))


# ---- FID: one job per (prompt key, set, reference set) -----------------------------------------
def fid_job(wildcards):
    path = layout.FID.format(**dict(wildcards.items()))
    if path not in FID_JOBS:
        raise ValueError(f"{path}: no experiment asks for this FID set")
    return FID_JOBS[path]


def fid_inputs(wildcards):
    job = fid_job(wildcards)
    return {"shards": layout.fid_set_dirs(GRID, job), "references": layout.fid_set_dirs(GRID, job, reference=True),
            "scorer": layout.SCORER.format(scorer="fid")}


def fid_params(wildcards):
    return {"prompt_ids": list(fid_job(wildcards).prompt_ids)}


# ---- experiments ---------------------------------------------------------------------------------
def experiment_scores(wildcards):
    return layout.experiment_scores(GRID, EXPERIMENTS[wildcards.experiment])


def experiment_prompts(wildcards):
    return layout.PROMPT_TABLE.format(prompt_set=EXPERIMENTS[wildcards.experiment]["prompt_set"])


def experiment_params(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def scored_experiments():
    return layout.scored_experiments(GRID)


def weight_dirs():
    return layout.weight_dirs(GRID)


def all_scores():
    return all_score_files() + sorted(FID_JOBS)


# ---- paper outputs -------------------------------------------------------------------------
from sinkrepro.paper.tables import FORMATS as TABLE_FORMATS, stats_tables

DYNAMICS_FIGURES = layout.DYNAMICS_FIGURES
STATS_FIGURES = layout.STATS_FIGURES


def paper_tables():
    return stats_tables(EXPERIMENTS[name] for name in scored_experiments())


def experiment_model(wildcards):
    return EXPERIMENTS[wildcards.experiment]["model"]


def experiment_baseline(wildcards):
    return EXPERIMENTS[wildcards.experiment]["baseline"]


def experiment_own(wildcards):
    """The experiment's prompt ids and seeds: figures read only its own rows of shared shards."""
    exp = EXPERIMENTS[wildcards.experiment]
    return {"prompt_ids": exp["prompt_ids"], "seeds": exp["seeds"]}


def experiment_presets(wildcards):
    return ", ".join(sorted({c["preset"] for c in EXPERIMENTS[wildcards.experiment]["conditions"]})) or "base"


def figure_labels(wildcards):
    metric = {"curves": "sink statistics", "position": "sink position", "attribution": "sink attribution",
              "fid": "fid"}.get(wildcards.figure, "all")
    dynamics = wildcards.figure in DYNAMICS_FIGURES
    return {"figure": wildcards.figure, "k": "-" if dynamics else "all",
            "preset": experiment_baseline(wildcards) if dynamics else experiment_presets(wildcards),
            "metric": metric}


def baseline_dynamics(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    return layout.dynamics_files(GRID, exp, [exp["baseline"]])


def contrast_of(wildcards):
    return layout.contrast_at(EXPERIMENTS[wildcards.experiment], int(wildcards.k))


def panel_inputs(wildcards):
    return layout.panel_inputs(GRID, EXPERIMENTS[wildcards.experiment], int(wildcards.k))


def panel_condition(wildcards):
    return contrast_of(wildcards)["condition"]


def panel_control(wildcards):
    return contrast_of(wildcards)["control"]


def panel_labels(wildcards):
    return {"figure": "panels", "k": wildcards.k, "preset": contrast_of(wildcards)["condition"],
            "metric": "lpips, clip_t"}


# ---- tables from measured dynamics ------------------------------------------------------------
from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, check_experiments, experiments_filling


check_experiments(EXPERIMENTS.values())
DYNAMICS_TABLE_OF = {stem: table for table, stem in OUTPUT_STEMS.items()}


def dynamics_table_experiments(wildcards):
    return experiments_filling(DYNAMICS_TABLE_OF[wildcards.stem], EXPERIMENTS.values())


def dynamics_table_inputs(wildcards):
    return layout.dynamics_table_inputs(GRID, DYNAMICS_TABLE_OF[wildcards.stem])


def dynamics_table_id(wildcards):
    return DYNAMICS_TABLE_OF[wildcards.stem]


def dynamics_table_labels(wildcards):
    return {"table": wildcards.stem, "format": "csv"}


def final_outputs():
    return layout.paper_outputs(GRID)
