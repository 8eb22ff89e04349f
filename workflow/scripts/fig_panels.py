"""Adapter: score shards + image shards -> qualitative panel (baseline | sink | random) + selection CSV."""
from sinkrepro.paper.figures import panel_figure
from sinkrepro.scriptlog import job_log

log = job_log(snakemake)  # noqa: F821
params = snakemake.params  # noqa: F821
drawn = panel_figure(
    snakemake.input.scores, snakemake.input.shards,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    condition=params.condition, control=params.control, baseline=params.baseline, own=params.own,
)
log.info("%s vs %s: %d examples in groups %s", params.condition, params.control, len(drawn.data),
             sorted(set(drawn.data["group"])))
