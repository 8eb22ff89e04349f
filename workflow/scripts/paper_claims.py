"""Adapter: every experiment's stats -> paper/claims.md."""
from sinkrepro.paper.claims import write_claims

text = write_claims(
    stats_paths=snakemake.input.stats,  # noqa: F821
    experiments=snakemake.params.experiments,  # noqa: F821
    stats_config=snakemake.params.get("stats"),  # noqa: F821
    out_path=snakemake.output.claims,  # noqa: F821
    baseline_scores=snakemake.input.baseline_scores,  # noqa: F821
)
with open(snakemake.log[0], "w") as log:  # noqa: F821
    log.write("".join(line + "\n" for line in text.splitlines() if line.startswith("| ") and "**" in line))
