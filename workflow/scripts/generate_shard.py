"""Generate one image shard (see sinkrepro.generate)."""
import logging
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)
sys.stderr = open(snakemake.log[0], "a")

from sinkrepro.generate import ShardJob, run_shard  # noqa: E402
from sinkrepro.models.load import resolve_device  # noqa: E402

job = snakemake.params.job
rows = run_shard(ShardJob.from_params(job), snakemake.input.model, snakemake.output.images,
                 snakemake.output.dynamics, device=resolve_device(snakemake.config["device"]), dtype=job["dtype"],
                 variant=job["variant"])
logging.info("wrote %d images to %s", len(rows), snakemake.output.images)
