"""Adapter: one image shard -> one parquet with every per-image metric it needs (sinkrepro.scoring.score_shard_metrics)."""
import os
from pathlib import Path

from sinkrepro.scriptlog import job_log

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = job_log(snakemake, stderr=True)  # noqa: F821

from sinkrepro.vocab import SCORER_OF  # noqa: E402
from sinkrepro.models.load import resolve_device  # noqa: E402
from sinkrepro.scoring import score_shard_metrics  # noqa: E402

# batch size and device are runtime knobs: read from the config, not params, so they rerun nothing
metrics = {m: {**opts, "batch_size": snakemake.config["scorers"][SCORER_OF.get(m, m)]["batch_size"]}  # noqa: F821
           for m, opts in snakemake.params.metrics.items()}  # noqa: F821
scorers = {Path(d).name: d for d in snakemake.input.scorers}  # noqa: F821
references = snakemake.input.get("references")  # noqa: F821
if references is not None:
    references = [references] if isinstance(references, str) else list(references)
frame = score_shard_metrics(metrics, {m: scorers[SCORER_OF.get(m, m)] for m in metrics}, snakemake.input.shard,  # noqa: F821
                            snakemake.output[0], reference_shard_dirs=references,  # noqa: F821
                            device=resolve_device(snakemake.config["device"]))  # noqa: F821
for metric, rows in frame.groupby("metric"):
    log.info("%s: %d rows (%d failed)", metric, len(rows), int(rows["failed"].sum()))
log.info("-> %s", snakemake.output[0])  # noqa: F821
