"""Adapter: the config's experiments -> paper/README.md (the index) and the report's front page."""
from sinkrepro.paper.index import write_index
from sinkrepro.scriptlog import job_log

written = write_index(snakemake.params.experiments, snakemake.params.guide,  # noqa: F821
                      snakemake.output.index, snakemake.output.front)  # noqa: F821
job_log(snakemake).info("wrote\n%s", "\n".join(map(str, written)))  # noqa: F821
