"""Adapter: every experiment's stats -> paper/tables/<table>.{csv,md,tex}."""
from pathlib import Path

from sinkrepro.paper.tables import write_paper_tables
from sinkrepro.scriptlog import job_log

outputs = [Path(p) for p in snakemake.output]  # noqa: F821
written = write_paper_tables(
    stats_paths=snakemake.input.stats,  # noqa: F821
    experiments=snakemake.params.experiments,  # noqa: F821
    stats_config=snakemake.params.stats,  # noqa: F821
    out_dir=outputs[0].parent,
)
missing = sorted(str(p) for p in outputs if p not in written)
if missing:
    raise SystemExit(f"paper_tables: declared outputs not written {missing}; declare "
                     "sinkrepro.paper.tables.stats_tables(experiments) x FORMATS")
job_log(snakemake).info("wrote\n%s", "\n".join(map(str, written)))  # noqa: F821
