"""Adapter: one image shard -> one per-image score parquet (see sinkrepro.scoring.score_shard)."""
import logging
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
sys.stderr = open(snakemake.log[0], "a")  # noqa: F821

from sinkrepro.models.load import resolve_device  # noqa: E402
from sinkrepro.scoring import score_shard  # noqa: E402

params = snakemake.params.scorer  # noqa: F821
runtime = snakemake.config["scorers"][params["scorer"]]  # noqa: F821  runtime knobs: not params, rerun nothing
references = snakemake.input.get("references")  # noqa: F821
if references is not None:
    references = [references] if isinstance(references, str) else list(references)
frame = score_shard(params["metric"], snakemake.input.scorer, snakemake.input.shard, snakemake.output[0],  # noqa: F821
                    reference_shard_dir=references, device=resolve_device(snakemake.config["device"]),  # noqa: F821
                    batch_size=int(runtime["batch_size"]), tolerance=params.get("tolerance"))
logging.info("%s: %d rows (%d failed) -> %s", params["metric"], len(frame), int(frame["failed"].sum()),
             snakemake.output[0])  # noqa: F821
