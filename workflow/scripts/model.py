"""Build a stand-in model from its seed, or fetch a pinned hub snapshot (the model config's variant files)."""
import logging

from sinkrepro.models.load import fetch_hub_model
from sinkrepro.models.tiny import BUILDERS

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
cfg = snakemake.params.model
if cfg["source"] == "standin":
    BUILDERS[cfg["family"]](snakemake.output[0], seed=cfg["seed"], variant=cfg["variant"])
else:
    fetch_hub_model(cfg["repo"], cfg["revision"], snakemake.output[0], variant=cfg["variant"], gated=cfg["gated"],
                    where=f"config.models.{snakemake.wildcards.model}")
logging.info("model ready: %s", snakemake.output[0])
