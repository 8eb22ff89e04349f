"""Build a stand-in model from its seed, or fetch a pinned hub snapshot (the model config's variant files)."""
from sinkrepro.models.load import fetch_hub_model
from sinkrepro.models.tiny import BUILDERS
from sinkrepro.scriptlog import job_log

log = job_log(snakemake)
cfg = snakemake.params.model
if cfg["source"] == "standin":
    BUILDERS[cfg["family"]](snakemake.output[0], seed=cfg["seed"], variant=cfg["variant"])
else:
    fetch_hub_model(cfg["repo"], cfg["revision"], snakemake.output[0], variant=cfg["variant"], gated=cfg["gated"],
                    where=f"config.models.{snakemake.wildcards.model}")
log.info("model ready: %s", snakemake.output[0])
