"""Loading and checking a workflow config outside Snakemake (the CLI uses this)."""
from __future__ import annotations

from pathlib import Path

import yaml

from sinkrepro.grid import Grid, build_grid
from sinkrepro.prompts import load_prompt_set

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
PROMPT_CACHE = Path("resources/prompts/sources")


def validate_config(config: dict) -> dict:
    """Schema-validate (filling defaults), then check what the schema cannot express."""
    from snakemake.utils import validate

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
    return config


def load_config(path: str | Path) -> dict:
    with open(path) as f:
        return validate_config(yaml.safe_load(f))


def load_prompt_tables(config: dict, root: Path = Path("."), cache_dir: Path = PROMPT_CACHE) -> dict:
    used = {exp["prompts"] for exp in config["experiments"].values()}
    return {name: load_prompt_set(name, config["prompt_sets"], root, cache_dir) for name in sorted(used)}


def grid_for(config: dict, root: Path = Path(".")) -> Grid:
    return build_grid(config, load_prompt_tables(config, root))
