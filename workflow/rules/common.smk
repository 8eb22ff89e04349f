# Wiring only: the config validated once, the job grid, wildcard constraints and the rules' input and
# params functions (get_*). What each returns is computed in sinkrepro.wiring; paths in sinkrepro.layout.
from sinkrepro import layout
from sinkrepro.codehash import code_hash
from sinkrepro.config import load_prompt_tables, validate_config
from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS
from sinkrepro.paper.tables import FORMATS as TABLE_FORMATS
from sinkrepro.wiring import Wiring

validate_config(config)
WIRING = Wiring(config, load_prompt_tables(config))
GRID = WIRING.grid
EXPERIMENTS = WIRING.experiments
SCORED = [exp["name"] for exp in WIRING.scored()]


wildcard_constraints:
    model="[^/]+",
    condition="[^/]+",
    seed=r"\d+",
    shard=r"shard\d{3}",
    prompt_set="[^/]+",
    prompts="[^/]+",
    experiment="|".join(EXPERIMENTS),


def get_shard_job(wildcards):
    return WIRING.shard_job(wildcards.model, wildcards.condition, wildcards.seed, wildcards.shard)


def get_score_inputs(wildcards):
    return WIRING.score_inputs(wildcards.model, wildcards.condition, wildcards.seed, wildcards.shard)


def get_score_params(wildcards):
    return WIRING.score_params(wildcards.model, wildcards.condition, wildcards.seed, wildcards.shard)


def get_scorer_config(wildcards):
    return WIRING.scorer_config(wildcards.scorer)


def get_fid_inputs(wildcards):
    return WIRING.fid_inputs(**dict(wildcards.items()))


def get_fid_params(wildcards):
    return WIRING.fid_params(**dict(wildcards.items()))


def get_experiment(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def get_experiment_scores(wildcards):
    return WIRING.experiment_scores(wildcards.experiment)


def get_experiment_prompts(wildcards):
    return WIRING.experiment_prompts(wildcards.experiment)


def get_experiment_key(key):
    """An input or params function giving the experiment's `key` (model, baseline)."""
    return lambda wildcards: EXPERIMENTS[wildcards.experiment][key]


def get_experiment_own(wildcards):
    return WIRING.experiment_own(wildcards.experiment)


def get_baseline_dynamics(wildcards):
    return WIRING.baseline_dynamics(wildcards.experiment)


def get_figure_labels(wildcards):
    return WIRING.figure_labels(wildcards.experiment, wildcards.figure)


def get_panel_inputs(wildcards):
    return WIRING.panel_inputs(wildcards.experiment, wildcards.k)


def get_contrast_key(key):
    """A params function giving the panel's k-contrast's `key` (condition, control)."""
    return lambda wildcards: WIRING.contrast(wildcards.experiment, wildcards.k)[key]


def get_panel_labels(wildcards):
    return WIRING.panel_labels(wildcards.experiment, wildcards.k)


def get_dynamics_table(wildcards):
    return WIRING.dynamics_table(wildcards.stem)


def get_dynamics_table_inputs(wildcards):
    return WIRING.dynamics_table_inputs(wildcards.stem)


def get_dynamics_table_experiments(wildcards):
    return WIRING.dynamics_table_experiments(wildcards.stem)
