# Config validation, the job grid, and input functions shared by the rules.
import json

from sinkrepro.codehash import code_hash
from sinkrepro.config import load_prompt_tables, scorer_identity, validate_config
from sinkrepro.grid import PAIRWISE_METRICS, SCORE_METRICS, SCORER_OF, build_grid, config_hash, per_image_metrics


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
        "measure_modules": model_cfg.get("measure_modules", []), "measure_blocks": model_cfg["measure_blocks"],
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
    for metric in per_image_metrics(exp["metrics"]):
        for condition in experiment_conditions(name):
            if metric in PAIRWISE_METRICS and condition == exp["baseline"]:
                continue
            for seed in exp["seeds"]:
                files += [f"results/scores/{metric}/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                          for s in GRID.shards_of(exp["model"], condition, seed)]
    return sorted(set(files))


FID_SCORES = "results/scores/fid/{model}/{condition}/seed{seed}/vs_{reference}_seed{reference_seed}.parquet"


def fid_files(name):
    exp = EXPERIMENTS[name]
    return [FID_SCORES.format(model=exp["model"], **pair) for pair in exp["fid_pairs"]]


def dynamics_files(name):
    exp = EXPERIMENTS[name]
    return sorted({f"results/dynamics/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                   for c in experiment_conditions(name) for seed in exp["seeds"]
                   for s in GRID.shards_of(exp["model"], c, seed)})


def all_tables():
    return sorted({t for exp in EXPERIMENTS.values() for t in exp["tables"]})


def scorer_config(wildcards):
    return scorer_identity(wildcards.scorer, config["scorers"].get(wildcards.scorer, {}))


def score_inputs(wildcards):
    inputs = {"shard": f"results/images/{wildcards.model}/{wildcards.condition}/seed{wildcards.seed}/{wildcards.shard}",
              "scorer": f"resources/scorers/{SCORER_OF.get(wildcards.metric, wildcards.metric)}"}
    if wildcards.metric in PAIRWISE_METRICS:
        shard = GRID.shard(wildcards.model, wildcards.condition, int(wildcards.seed), int(wildcards.shard[5:]))
        inputs["references"] = GRID.reference_shards(shard)[1]
    return inputs


def score_params(wildcards):
    """What decides a score file; runtime knobs (batch size, device) are read from the config."""
    scorer = SCORER_OF.get(wildcards.metric, wildcards.metric)
    return {"metric": wildcards.metric, "scorer": scorer, "tolerance": config["scorers"][scorer]["tolerance"]}


def fid_inputs(wildcards):
    return {"shards": shard_dirs(wildcards.model, wildcards.condition, wildcards.seed),
            "references": shard_dirs(wildcards.model, wildcards.reference, wildcards.reference_seed),
            "scorer": "resources/scorers/fid"}


def fid_params(wildcards):
    return {"scorer": "fid"}


def scores_of(name):
    return score_files(name) + fid_files(name)


def experiment_scores(wildcards):
    return scores_of(wildcards.experiment)


def experiment_prompts(wildcards):
    return f"results/prompts/{EXPERIMENTS[wildcards.experiment]['prompt_set']}.tsv"


def experiment_params(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def scored_experiments():
    return [name for name, exp in EXPERIMENTS.items() if exp["metrics"]]


def weight_dirs():
    models = {exp["model"] for exp in EXPERIMENTS.values()}
    scorers = {m for exp in EXPERIMENTS.values() for m in exp["metrics"]}
    return [f"resources/models/{m}" for m in sorted(models)] + [f"resources/scorers/{s}" for s in sorted(scorers)]


def all_scores():
    return sorted({f for name in EXPERIMENTS for f in scores_of(name)})


# ---- paper outputs -------------------------------------------------------------------------
from sinkrepro.paper.tables import FORMATS as TABLE_FORMATS, stats_tables

DYNAMICS_FIGURES = ("curves", "position", "attribution")
STATS_FIGURES = ("dose", "forest", "fid", "categories")


def paper_tables():
    return stats_tables(EXPERIMENTS[name] for name in scored_experiments())


def figure_names(name):
    """Which figures an experiment's data can draw."""
    exp = EXPERIMENTS[name]
    names = [f"dynamics_{f}" for f in DYNAMICS_FIGURES] if exp["measure"] else []
    per_image = per_image_metrics(exp["metrics"])
    if per_image:
        names += ["forest", "categories"]
        ks = {}
        for c in exp["conditions"]:
            ks.setdefault(c["label"], set()).add(c["k"])
        if any(len(k) > 1 for k in ks.values()):
            names.append("dose")
    if exp["fid_pairs"]:
        names.append("fid")
    if {"clip_t", "lpips"} <= set(per_image):
        names += [f"panels_k{c['k']}" for c in exp["contrasts"]]
    return names


def figure_files(name):
    return [f"paper/figures/{name}/{fig}.{ext}" for fig in figure_names(name) for ext in ("png", "pdf")]


def experiment_model(wildcards):
    return EXPERIMENTS[wildcards.experiment]["model"]


def experiment_baseline(wildcards):
    return EXPERIMENTS[wildcards.experiment]["baseline"]


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
    return [f"results/dynamics/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
            for seed in exp["seeds"] for s in GRID.shards_of(exp["model"], exp["baseline"], seed)]


def contrast_of(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    matches = [c for c in exp["contrasts"] if str(c["k"]) == wildcards.k]
    if not matches:
        raise ValueError(f"experiment {wildcards.experiment} has no contrast at k={wildcards.k}")
    return matches[0]


def panel_inputs(wildcards):
    exp = EXPERIMENTS[wildcards.experiment]
    contrast = contrast_of(wildcards)
    conditions = (exp["baseline"], contrast["condition"], contrast["control"])
    shards = [s for c in conditions for seed in exp["seeds"] for s in GRID.shards_of(exp["model"], c, seed)]
    scores = [f"results/scores/{metric}/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
              for s in shards for metric in ("clip_t", "lpips")
              if not (metric in PAIRWISE_METRICS and s.condition == exp["baseline"])]
    return {"scores": scores, "shards": [s.path for s in shards]}


def panel_condition(wildcards):
    return contrast_of(wildcards)["condition"]


def panel_control(wildcards):
    return contrast_of(wildcards)["control"]


def panel_labels(wildcards):
    return {"figure": "panels", "k": wildcards.k, "preset": contrast_of(wildcards)["condition"],
            "metric": "lpips, clip_t"}


# ---- tables from measured dynamics ------------------------------------------------------------
from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, check_experiments, dynamics_tables, experiments_filling


check_experiments(EXPERIMENTS.values())
DYNAMICS_TABLE_OF = {stem: table for table, stem in OUTPUT_STEMS.items()}


def dynamics_table_experiments(wildcards):
    return experiments_filling(DYNAMICS_TABLE_OF[wildcards.stem], EXPERIMENTS.values())


def dynamics_table_inputs(wildcards):
    """Table 4 reads every condition's dynamics shards; Tables 1 and 16 only the baselines'."""
    every_condition = DYNAMICS_TABLE_OF[wildcards.stem] == "table4"
    files = set()
    for exp in dynamics_table_experiments(wildcards):
        conditions = [exp["baseline"]] + ([c["condition"] for c in exp["conditions"]] if every_condition else [])
        files |= {f"results/dynamics/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                  for c in conditions for seed in exp["seeds"] for s in GRID.shards_of(exp["model"], c, seed)}
    return sorted(files)


def dynamics_table_files():
    """Every dynamics table output the config asks for (add to rule all)."""
    stems = [OUTPUT_STEMS[t] for t in dynamics_tables(EXPERIMENTS.values())]
    return expand("paper/tables/{stem}.{ext}", stem=stems, ext=("csv", "md", "tex"))




def dynamics_table_id(wildcards):
    return DYNAMICS_TABLE_OF[wildcards.stem]


def dynamics_table_labels(wildcards):
    return {"table": wildcards.stem, "format": "csv"}


def final_outputs():
    figures = [f for name in EXPERIMENTS for f in figure_files(name)]
    tables = expand("paper/tables/{table}.{ext}", table=paper_tables(), ext=TABLE_FORMATS)
    return tables + dynamics_table_files() + ["paper/claims.md"] + figures
