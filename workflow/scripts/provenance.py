"""Adapter: the paper's inputs, weights and run facts -> paper/provenance.json (sinkrepro.provenance_record)."""
from pathlib import Path

from sinkrepro.provenance_record import build_provenance, write_provenance

params = snakemake.params  # noqa: F821
record = build_provenance(Path("."), dict(params.paper_inputs), snakemake.input.weights,  # noqa: F821
                          dict(params.config), params.standin)
write_provenance(Path(snakemake.output[0]), record)  # noqa: F821
with open(snakemake.log[0], "w") as log:  # noqa: F821
    log.write(f"{len(record['outputs'])} outputs, {len(record['inputs'])} input files, "
              f"{len(record['weights'])} weight directories\n")
