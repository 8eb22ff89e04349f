"""Adapter: dynamics shards -> one sink-dynamics figure (curves | position | attribution), PNG + PDF (+ CSV)."""
from sinkrepro.paper.figures import dynamics_figure
from sinkrepro.scriptlog import job_log

log = job_log(snakemake)  # noqa: F821
params = snakemake.params  # noqa: F821
drawn = dynamics_figure(
    params.figure,
    snakemake.input.dynamics,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    condition=params.condition,
    model=params.model,
    own=params.own,
)
log.info("%s: drew %d rows from %d dynamics files", params.figure, len(drawn.data),
             len(snakemake.input.dynamics))  # noqa: F821
