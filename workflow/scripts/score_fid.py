"""Adapter: a condition's images vs its reference's, on one experiment's prompts -> one FID row (sinkrepro.scoring.score_fid)."""
import os

from sinkrepro.scriptlog import job_log

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = job_log(snakemake, stderr=True)  # noqa: F821

from sinkrepro.models.load import resolve_device  # noqa: E402
from sinkrepro.scoring import score_fid  # noqa: E402

params = snakemake.params.scorer  # noqa: F821
frame = score_fid(snakemake.input.scorer, list(snakemake.input.shards), list(snakemake.input.references),  # noqa: F821
                  snakemake.output[0], device=resolve_device(snakemake.config["device"]),  # noqa: F821
                  batch_size=int(snakemake.config["scorers"]["fid"]["batch_size"]),  # noqa: F821  runtime knob
                  prompt_ids=params["prompt_ids"])
row = frame.iloc[0]
log.info("FID %s vs %s: %.4g (n=%d, dim=%d) %s", row["condition"], row["reference_condition"], row["value"],
             row["n_images"], row["dim"], row["note"])
