"""Adapter: results/stats/{experiment}.parquet -> one statistics figure (dose | forest | fid | categories)."""
from sinkrepro.paper.figures import stats_figure
from sinkrepro.scriptlog import job_log

log = job_log(snakemake)  # noqa: F821
figure = snakemake.params.figure  # noqa: F821
drawn = stats_figure(
    figure, snakemake.input.stats,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
)
log.info("%s: drew %d stats rows", figure, len(drawn.data))
