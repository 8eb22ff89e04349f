"""The stand-in twin of a shipped config (sinkrepro.twin): its prompt sources made offline, the map from
its conditions to the twin's, and a whole twin run from nothing to every paper output and the report."""
import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from sinkrepro.config import load_prompt_tables, validate_config
from sinkrepro import layout
from sinkrepro.grid import build_grid
from sinkrepro.plan import jobs_per_rule
from sinkrepro.twin import make_twin
from helpers import planned, snakemake, synthetic_paper_prompts

REPO = Path(__file__).resolve().parents[1]


def offline_and_twin(config: dict, tmp: Path) -> tuple[dict, dict]:
    """`config` validated with its prompt sources replaced by synthetic files of the same sizes, and its twin."""
    sources = synthetic_paper_prompts(tmp / "upstream")
    offline = copy.deepcopy(config)
    for name, path in sources.items():
        offline["prompt_sets"][name] = {k: v for k, v in offline["prompt_sets"][name].items() if k not in ("url", "sha256")}
        offline["prompt_sets"][name]["path"] = str(path)
    return validate_config(offline), validate_config(make_twin(config))


def condition_map(paper, twin) -> dict:
    """Paper (model, condition) -> twin (model, condition), from each experiment's labels and k."""
    mapping = {}
    for name, exp in paper.experiments.items():
        other = twin.experiments[name]
        pairs = [(exp["baseline"], other["baseline"])]
        assert [(c["label"], c["k"]) for c in exp["conditions"]] == [(c["label"], c["k"]) for c in other["conditions"]]
        pairs += [(a["condition"], b["condition"]) for a, b in zip(exp["conditions"], other["conditions"])]
        for a, b in pairs:
            key, value = (exp["model"], a), (other["model"], b)
            assert mapping.setdefault(key, value) == value, f"{name}: {a} is {mapping[key]} and {value} in the twin"
    return mapping


def run_twin(config: Path, work: Path) -> tuple[Path, str]:
    """`sinkrepro twin config`, then the whole workflow on it in `work` and the report; (work, log)."""
    shutil.copytree(REPO / "config" / "prompts", work / "config" / "prompts")
    twin = subprocess.run([sys.executable, "-m", "sinkrepro.cli", "twin", str(config), "-o", str(work / "twin.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert twin.returncode == 0, twin.stderr
    started = time.monotonic()
    log = snakemake(work, "--configfile", str(work / "twin.yaml"), timeout=3600)
    snakemake(work, "--configfile", str(work / "twin.yaml"), "--report", "paper/report.html")
    print(f"twin of {config.name}: {time.monotonic() - started:.0f} s")
    return work, log


def twin_grid(work: Path):
    """The job grid of the twin config a run_twin wrote into `work`."""
    config = validate_config(yaml.safe_load((work / "twin.yaml").read_text()))
    return build_grid(config, load_prompt_tables(config, work))


def check_complete_run(work: Path, log: str):
    """A twin run made every output its grid plans, each table marked stand-in, the report, and ran
    exactly the jobs `sinkrepro plan` counts; returns the grid."""
    grid = twin_grid(work)
    for path in layout.paper_outputs(grid):
        assert (work / path).exists(), path
    for table in (work / "paper" / "tables").glob("*.md"):
        assert "stand-in" in table.read_text().splitlines()[0], table.name
    assert (work / "paper" / "report.html").stat().st_size > 0
    counts = planned(log)
    assert counts["score"] <= counts["generate"]  # one score job per scored shard
    assert {rule: n for rule, n in counts.items() if rule not in ("all", "default", "total")} == jobs_per_rule(grid)
    return grid
