"""Adapter: every experiment's stats -> paper/claims.md."""
from sinkrepro.paper.claims import write_claims
from sinkrepro.scriptlog import job_log

text = write_claims(
    stats_paths=snakemake.input.stats,  # noqa: F821
    experiments=snakemake.params.experiments,  # noqa: F821
    stats_config=snakemake.params.stats,  # noqa: F821
    out_path=snakemake.output.claims,  # noqa: F821
    baseline_scores=snakemake.input.baseline_scores,  # noqa: F821
)
job_log(snakemake).info("\n".join(line for line in text.splitlines() if line.startswith("| ") and "**" in line))  # noqa: F821
