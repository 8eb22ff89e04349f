"""Adapter: the paper's inputs, weights and run facts -> paper/provenance.json (sinkrepro.provenance_record)."""
from pathlib import Path

from sinkrepro.provenance_record import build_provenance, write_provenance
from sinkrepro.scriptlog import job_log

params = snakemake.params  # noqa: F821
record = build_provenance(Path("."), dict(params.paper_inputs), snakemake.input.weights,  # noqa: F821
                          dict(params.config), params.standin)
write_provenance(Path(snakemake.output[0]), record)  # noqa: F821
job_log(snakemake).info("%d outputs, %d input files, %d weight directories", len(record["outputs"]),  # noqa: F821
                        len(record["inputs"]), len(record["weights"]))
