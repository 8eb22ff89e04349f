"""Generate one image shard (see sinkrepro.generate)."""
import os

from sinkrepro.scriptlog import job_log

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = job_log(snakemake, stderr=True)

from sinkrepro.generate import ShardJob, run_shard  # noqa: E402
from sinkrepro.models.load import resolve_device  # noqa: E402

job = snakemake.params.job
rows = run_shard(ShardJob.from_params(job), snakemake.input.model, snakemake.output.images,
                 snakemake.output.dynamics, device=resolve_device(snakemake.config["device"]), dtype=job["dtype"],
                 variant=job["variant"])
log.info("wrote %d images to %s", len(rows), snakemake.output.images)
