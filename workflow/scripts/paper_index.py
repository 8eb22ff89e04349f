"""Adapter: the config's experiments -> paper/README.md (the index) and the report's front page."""
from sinkrepro.paper.index import write_index

written = write_index(snakemake.params.experiments, snakemake.params.guide,  # noqa: F821
                      snakemake.output.index, snakemake.output.front)  # noqa: F821
with open(snakemake.log[0], "w") as log:  # noqa: F821
    log.write("".join(f"{p}\n" for p in written))
