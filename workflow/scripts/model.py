"""Build a stand-in model from its seed, or fetch a pinned hub snapshot."""
import logging

from sinkrepro.models.load import fetch_hub_model
from sinkrepro.models.tiny import BUILDERS

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
cfg = snakemake.params.model
if cfg["source"] == "standin":
    BUILDERS[cfg["family"]](snakemake.output[0], seed=cfg["seed"])
else:
    fetch_hub_model(cfg["repo"], cfg["revision"], snakemake.output[0], variant=cfg.get("variant"))
logging.info("model ready: %s", snakemake.output[0])
