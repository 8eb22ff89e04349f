"""Adapter: measured sink dynamics -> paper/tables/<stem>.{csv,md,tex} (Table 1, 4, 16 attribution)."""
from pathlib import Path

from sinkrepro.paper.dynamics_tables import write_dynamics_table
from sinkrepro.scriptlog import job_log

outputs = [Path(p) for p in snakemake.output]  # noqa: F821
written = write_dynamics_table(
    table=snakemake.params.table,  # noqa: F821
    dynamics_paths=snakemake.input.dynamics,  # noqa: F821
    experiments=snakemake.params.experiments,  # noqa: F821
    stats_config=snakemake.params.stats,  # noqa: F821
    out_dir=outputs[0].parent,
)
missing = sorted(str(p) for p in outputs if p not in written)
if missing:
    raise SystemExit(f"paper_dynamics_tables: declared outputs not written {missing}; declare "
                     "paper/tables/{OUTPUT_STEMS[table]}.{csv,md,tex}")
job_log(snakemake).info("wrote\n%s", "\n".join(map(str, written)))  # noqa: F821
