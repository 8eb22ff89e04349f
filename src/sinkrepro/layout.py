"""Where every file lives, and which files each experiment reads (torch-free).

The rules (through sinkrepro.wiring), `sinkrepro plan` and the stats/paper code take their paths
and file lists from here, so what is planned is what runs. A shared condition's shards may hold
prompts and seeds of several experiments: every list below is filtered to the experiment's own.

Jobs, one per:
- generate: image shard (model, condition, seed, prompt chunk): images + sink dynamics;
- score: image shard that some experiment scores: every per-image metric any experiment needs of
  it, on the prompts that need it, each scorer loaded once;
- fid: (prompt key, condition set, reference set): an FID set holds exactly the images of one
  experiment's prompts (experiments with the same prompts share the job);
- stats: scored experiment; figures: one per figure file stem.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sinkrepro.grid import Grid, Shard
from sinkrepro.vocab import PAIRWISE_METRICS, SCORER_OF, per_image_metrics

MODEL = "resources/models/{model}"
SCORER = "resources/scorers/{scorer}"
PROMPT_TABLE = "results/prompts/{prompt_set}.tsv"
IMAGES = "results/images/{model}/{condition}/seed{seed}/{shard}"
DYNAMICS = "results/dynamics/{model}/{condition}/seed{seed}/{shard}.parquet"
SCORES = "results/scores/shards/{model}/{condition}/seed{seed}/{shard}.parquet"
FID = "results/scores/fid/{prompts}/{model}/{condition}/seed{seed}/vs_{reference}_seed{reference_seed}.parquet"
STATS = "results/stats/{experiment}.parquet"
STATS_CSV = "results/stats/{experiment}.csv"
TABLE = "paper/tables/{table}.{ext}"
FIGURE = "paper/figures/{experiment}/{figure}.{ext}"
CLAIMS = "paper/claims.md"
PROVENANCE = "paper/provenance.json"
FIGURE_FORMATS = ("png", "pdf")

DYNAMICS_FIGURES = ("curves", "position", "attribution")
STATS_FIGURES = ("dose", "forest", "fid", "categories")


def _of(template: str, shard: Shard) -> str:
    return template.format(model=shard.model, condition=shard.condition, seed=shard.seed, shard=shard.name)


def image_dir(shard: Shard) -> str:
    return _of(IMAGES, shard)


def dynamics_file(shard: Shard) -> str:
    return _of(DYNAMICS, shard)


def score_file(shard: Shard) -> str:
    return _of(SCORES, shard)


# --- one experiment's shards --------------------------------------------------------------------
def conditions_of(exp: dict) -> list[str]:
    """The baseline first, then each condition once."""
    return list(dict.fromkeys([exp["baseline"]] + [c["condition"] for c in exp["conditions"]]))


def shards_of(grid: Grid, exp: dict, condition: str, seeds=None) -> list[Shard]:
    """The shards of `condition` at the experiment's seeds that hold some of its prompts."""
    own = set(exp["prompt_ids"])
    return [s for seed in (exp["seeds"] if seeds is None else seeds)
            for s in grid.shards_of(exp["model"], condition, seed) if own & set(s.prompt_ids)]


def experiment_metrics(exp: dict, condition: str) -> list[str]:
    """Per-image metrics the experiment reads of one of its conditions (none pairwise on its baseline)."""
    return [m for m in per_image_metrics(exp["metrics"])
            if not (m in PAIRWISE_METRICS and condition == exp["baseline"])]


def dynamics_files(grid: Grid, exp: dict, conditions=None) -> list[str]:
    conditions = conditions_of(exp) if conditions is None else conditions
    return [dynamics_file(s) for c in conditions for s in shards_of(grid, exp, c)]


# --- score jobs ---------------------------------------------------------------------------------
def score_work(grid: Grid) -> dict[tuple, dict[str, list[str]]]:
    """(model, condition, seed, index) -> {metric: prompt ids to score}, over every experiment."""
    work: dict = defaultdict(lambda: defaultdict(set))
    for exp in grid.experiments.values():
        own = set(exp["prompt_ids"])
        for condition in conditions_of(exp):
            metrics = experiment_metrics(exp, condition)
            for shard in shards_of(grid, exp, condition):
                for metric in metrics:
                    work[shard.key][metric] |= own & set(shard.prompt_ids)
    order = {s.key: {p: i for i, p in enumerate(s.prompt_ids)} for s in grid.shards}
    return {key: {m: sorted(ids, key=order[key].__getitem__) for m, ids in sorted(metrics.items())}
            for key, metrics in sorted(work.items())}


def score_files(grid: Grid, exp: dict) -> list[str]:
    return [score_file(s) for c in conditions_of(exp) if experiment_metrics(exp, c)
            for s in shards_of(grid, exp, c)]


def scorers_of(metrics) -> list[str]:
    """Scorer directories (by name) behind per-image metrics; feat_l2 uses the FID features."""
    return sorted({SCORER_OF.get(m, m) for m in metrics})


def reference_dirs(grid: Grid, shard: Shard, prompt_ids) -> list[str]:
    """The baseline image shards holding `prompt_ids`, for pairwise metrics of `shard`."""
    refs = grid.conditions[(shard.model, shard.condition)].references
    if len(refs) != 1:
        raise ValueError(f"{shard.model}/{shard.condition}: pairwise metrics need one baseline, found {sorted(refs)}")
    (reference,) = refs
    wanted = set(prompt_ids)
    return [image_dir(s) for s in grid.shards_of(shard.model, reference, shard.seed) if wanted & set(s.prompt_ids)]


# --- FID sets -----------------------------------------------------------------------------------
def prompt_key(exp: dict) -> str:
    """Names the experiment's prompts: its prompt set, or its first n_prompts of it."""
    n, total = exp["n_prompts"], exp["prompt_set_size"]
    return exp["prompt_set"] if n == total else f"{exp['prompt_set']}-first{n}"


@dataclass(frozen=True)
class FidJob:
    prompts: str          # prompt_key of the experiments it serves
    model: str
    condition: str
    seed: int
    reference: str
    reference_seed: int
    prompt_ids: tuple     # exactly these images are in each set

    @property
    def path(self) -> str:
        return FID.format(prompts=self.prompts, model=self.model, condition=self.condition, seed=self.seed,
                          reference=self.reference, reference_seed=self.reference_seed)


def fid_jobs(exp: dict) -> list[FidJob]:
    return [FidJob(prompt_key(exp), exp["model"], p["condition"], p["seed"], p["reference"], p["reference_seed"],
                   tuple(exp["prompt_ids"])) for p in exp["fid_pairs"]]


def all_fid_jobs(grid: Grid) -> dict[str, FidJob]:
    return {job.path: job for exp in grid.experiments.values() for job in fid_jobs(exp)}


def fid_set_dirs(grid: Grid, job: FidJob, reference: bool = False) -> list[str]:
    condition, seed = (job.reference, job.reference_seed) if reference else (job.condition, job.seed)
    own = set(job.prompt_ids)
    return [image_dir(s) for s in grid.shards_of(job.model, condition, seed) if own & set(s.prompt_ids)]


def experiment_scores(grid: Grid, exp: dict) -> list[str]:
    """Every score file the experiment's statistics read."""
    return score_files(grid, exp) + [job.path for job in fid_jobs(exp)]


# --- paper outputs ------------------------------------------------------------------------------
def figure_names(exp: dict) -> list[str]:
    """The figures an experiment's data can draw."""
    names = [f"dynamics_{f}" for f in DYNAMICS_FIGURES] if exp["measure"] else []
    per_image = per_image_metrics(exp["metrics"])
    if per_image:
        names += ["forest", "categories"]
        ks = defaultdict(set)
        for c in exp["conditions"]:
            ks[c["label"]].add(c["k"])
        if any(len(k) > 1 for k in ks.values()):
            names.append("dose")
    if exp["fid_pairs"]:
        names.append("fid")
    if {"clip_t", "lpips"} <= set(per_image):
        names += [f"panels_k{c['k']}" for c in exp["contrasts"]]
    return names


def figure_files(exp: dict) -> list[str]:
    return [FIGURE.format(experiment=exp["name"], figure=f, ext=ext)
            for f in figure_names(exp) for ext in FIGURE_FORMATS]


def scored_experiments(grid: Grid) -> list[str]:
    return [name for name, exp in grid.experiments.items() if exp["metrics"]]


def noise_floor_files(grid: Grid) -> list[str]:
    """Score files of the unedited baseline of each scored experiment with two or more seeds: the
    claims measure the seed-to-seed noise floor from them."""
    exps = [grid.experiments[name] for name in scored_experiments(grid)]
    return sorted({score_file(s) for exp in exps if len(exp["seeds"]) > 1 and experiment_metrics(exp, exp["baseline"])
                   for s in shards_of(grid, exp, exp["baseline"])})


def contrast_at(exp: dict, k: int) -> dict:
    matches = [c for c in exp["contrasts"] if c["k"] == k]
    if not matches:
        raise ValueError(f"experiment {exp['name']} has no contrast at k={k}")
    return matches[0]


def panel_inputs(grid: Grid, exp: dict, k: int) -> dict[str, list[str]]:
    """Score files and image shards of the baseline, the k-contrast's condition and its control."""
    contrast = contrast_at(exp, k)
    conditions = (exp["baseline"], contrast["condition"], contrast["control"])
    shards = [s for c in conditions for s in shards_of(grid, exp, c)]
    return {"scores": [score_file(s) for s in shards], "shards": [image_dir(s) for s in shards]}


def models_of(grid: Grid) -> list[str]:
    return sorted({exp["model"] for exp in grid.experiments.values()})


def scorer_names(grid: Grid) -> list[str]:
    return sorted({m for exp in grid.experiments.values() for m in exp["metrics"]})  # scorer names = metrics


def weight_dirs(grid: Grid) -> list[str]:
    return [MODEL.format(model=m) for m in models_of(grid)] + [SCORER.format(scorer=s) for s in scorer_names(grid)]


def dynamics_table_inputs(grid: Grid, table: str) -> list[str]:
    """Table 4 reads every condition's dynamics shards; Tables 1 and 16 only the baselines'."""
    from sinkrepro.paper.dynamics_tables import experiments_filling

    files = set()
    for exp in experiments_filling(table, grid.experiments.values()):
        files |= set(dynamics_files(grid, exp, None if table == "table4" else [exp["baseline"]]))
    return sorted(files)


def stats_table_names(grid: Grid) -> list[str]:
    from sinkrepro.paper.tables import stats_tables

    return stats_tables(grid.experiments[name] for name in scored_experiments(grid))


def dynamics_table_stems(grid: Grid) -> list[str]:
    from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, dynamics_tables

    return [OUTPUT_STEMS[t] for t in dynamics_tables(grid.experiments.values())]


def table_files(grid: Grid) -> list[str]:
    """Table files: those built from statistics and those built from measured dynamics."""
    from sinkrepro.paper.tables import FORMATS

    return [TABLE.format(table=t, ext=ext) for t in stats_table_names(grid) + dynamics_table_stems(grid)
            for ext in FORMATS]


def figure_rule(name: str) -> str:
    """The rule that draws figure `name` (workflow/rules/paper.smk)."""
    if name.startswith("dynamics_"):
        return "dynamics_figure"
    return "panels_figure" if name.startswith("panels_") else "stats_figure"


def paper_outputs(grid: Grid) -> list[str]:
    """Everything `rule all` asks for: tables, claims, figures."""
    figures = [f for exp in grid.experiments.values() for f in figure_files(exp)]
    return table_files(grid) + [CLAIMS] + figures


def paper_inputs(grid: Grid) -> dict[str, list[str]]:
    """Each table and figure file -> the files and shard directories its job reads (the paper rules'
    inputs), for paper/provenance.json."""
    from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, dynamics_tables
    from sinkrepro.paper.tables import FORMATS

    stats = [STATS.format(experiment=name) for name in scored_experiments(grid)]
    inputs = {TABLE.format(table=t, ext=ext): stats for t in stats_table_names(grid) for ext in FORMATS}
    for table in dynamics_tables(grid.experiments.values()):
        files = dynamics_table_inputs(grid, table)
        inputs |= {TABLE.format(table=OUTPUT_STEMS[table], ext=ext): files for ext in FORMATS}
    for exp in grid.experiments.values():
        for name in figure_names(exp):
            rule = figure_rule(name)
            if rule == "dynamics_figure":
                files = dynamics_files(grid, exp, [exp["baseline"]])
            elif rule == "panels_figure":
                panel = panel_inputs(grid, exp, int(name.removeprefix("panels_k")))
                files = panel["scores"] + panel["shards"]
            else:
                files = [STATS.format(experiment=exp["name"])]
            inputs |= {FIGURE.format(experiment=exp["name"], figure=name, ext=ext): files for ext in FIGURE_FORMATS}
    return inputs
