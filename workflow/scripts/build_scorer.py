"""Adapter: make resources/scorers/{scorer}: a seeded stand-in, or the real weights fetched once."""
import os
from pathlib import Path

from sinkrepro.scoring import build_standin_scorers, fetch_scorer_weights
from sinkrepro.scriptlog import job_log

log = job_log(snakemake)  # noqa: F821
cfg = snakemake.params.scorer  # noqa: F821
out = Path(snakemake.output[0])  # noqa: F821
source = cfg.get("source", "standin")
if source == "standin":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    build_standin_scorers(out.parent, seed=int(cfg.get("seed", 0)), metrics=[cfg["metric"]])
elif source == "hub":  # needs network; fails early otherwise. Checks the pinned sha256 of each file.
    fetch_scorer_weights(cfg["metric"], out, revision=cfg["revision"], sha256=cfg["sha256"])
else:  # "local": the directory is supplied (dvc pull), never made here
    raise FileNotFoundError(f"{out} is missing: `dvc pull {out}`, or set scorers.{cfg['metric']}.source: hub to fetch it")
log.info("%s scorer ready (%s): %s", cfg["metric"], cfg.get("source", "standin"), (out / "scorer.json").read_text())
