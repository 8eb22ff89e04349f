"""Loading and checking a workflow config, before any job runs and without loading weights.

The workflow (workflow/rules/common.smk) and the CLI call the same checks, so `snakemake -n`,
`snakemake` and `sinkrepro plan` reject a bad config with the same message: the config field,
what is wrong, and the fix.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from sinkrepro.grid import Grid, _expand_conditions, build_grid
from sinkrepro.architecture import MEASURE_MODULES, check_bos, check_layers
from sinkrepro.prompts import load_prompt_set

SCHEMA = Path(__file__).with_name("config.schema.yaml")  # package data, beside this module
PROMPT_CACHE = Path("resources/prompts/sources")
# Scorer options that say how a job runs, not which scorer it is or what it scores: the workflow
# keeps them out of params (scripts read them from the config), so changing them reruns nothing.
# The global `device` is one too.
SCORER_RUNTIME_KEYS = ("batch_size",)
SCORER_POLICY_KEYS = ("tolerance",)  # the score jobs' failure policy, not the scorer's weights


def scorer_identity(scorer: str, cfg: dict) -> dict:
    """What decides a scorer directory: its name and its options, less runtime knobs and policy."""
    return {"metric": scorer, **{k: v for k, v in cfg.items() if k not in SCORER_RUNTIME_KEYS + SCORER_POLICY_KEYS}}


def read_yaml(path: str | Path) -> dict:
    """Parse a YAML file; a syntax error names the file and the line."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise ValueError(f"{path}:{mark.line + 1}:{mark.column + 1}: YAML syntax error: {err.problem}; "
                         "fix the file at that line") from None


def checked_yaml(path: str) -> str:
    """`path`, once it parses (the workflow's default `configfile:` goes through this)."""
    read_yaml(path)
    return path


def _field(path) -> str:
    return "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def check_schema(config: dict) -> None:
    """The first schema violation, named by its config field."""
    import jsonschema

    schema = read_yaml(SCHEMA)
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = _field(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {allowed}")
    if error.validator == "enum":
        raise ValueError(f"{where}: {error.instance!r} is not allowed; use one of {error.validator_value}")
    raise ValueError(f"{where}: {error.message}")


def check_conditions(config: dict) -> None:
    """Layers exist in each model's attention modules; step windows lie in [0, 1] with start <= end."""
    for name, model in config["models"].items():
        check_layers(f"config.models.{name}.measure_layers", model["measure_layers"], name, model,
                     model.get("measure_modules") or MEASURE_MODULES[model["family"]], model["measure_blocks"])
    for name, exp in config["experiments"].items():
        model = config["models"][exp["model"]]
        for label, spec, _, _ in _expand_conditions(name, exp):
            where = f"config.experiments.{name}.conditions.{label}"
            if spec.select == "none":  # edits nothing: no layers to check
                continue
            layers_from = where if "layers" in exp["conditions"][label] else f"config.experiments.{name}"
            check_layers(f"{layers_from}.layers", spec.layers, exp["model"], model, spec.modules, spec.blocks)
            check_bos(where, spec, exp["model"], model)
            start, end = spec.steps
            if not 0.0 <= start <= end <= 1.0:
                raise ValueError(f"{where}.steps: [{start}, {end}] is not a window of denoising progress; give "
                                 "[start, end] with 0 <= start <= end <= 1, e.g. [0.0, 0.2]")


def validate_config(config: dict) -> dict:
    """Schema-check (filling defaults), then check what the schema cannot express."""
    from snakemake.utils import validate

    check_schema(config)
    validate(config, str(SCHEMA), set_default=True)
    for name, model in config["models"].items():
        if model["source"] == "hub":
            for key in ("repo", "revision"):
                if not model.get(key):
                    raise ValueError(f"config.models.{name}.{key}: required for source: hub (pin a revision)")
    for name, exp in config["experiments"].items():
        if exp["model"] not in config["models"]:
            raise ValueError(f"config.experiments.{name}.model: {exp['model']!r} is not in config.models "
                             f"({sorted(config['models'])})")
        for metric in exp["metrics"]:
            if metric not in config.get("scorers", {}):
                raise ValueError(f"config.experiments.{name}.metrics: {metric!r} has no entry under config.scorers")
    check_conditions(config)
    return config


def load_config(path: str | Path) -> dict:
    config = read_yaml(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a workflow config is a YAML mapping (models, prompt_sets, experiments, ...)")
    return validate_config(config)


def load_prompt_tables(config: dict, root: Path = Path("."), cache_dir: Path = PROMPT_CACHE) -> dict:
    """The prompt rows of every prompt set an experiment uses; an empty set is an error."""
    tables = {}
    for name in sorted({exp["prompts"] for exp in config["experiments"].values()}):
        rows = load_prompt_set(name, config["prompt_sets"], root, cache_dir)
        if not rows:
            raise ValueError(f"config.prompt_sets.{name}: has no prompts; fill its file or widen its selection")
        tables[name] = rows
    return tables


def grid_for(config: dict, root: Path = Path(".")) -> Grid:
    return build_grid(config, load_prompt_tables(config, root))
