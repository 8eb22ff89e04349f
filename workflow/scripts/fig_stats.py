"""Adapter: results/stats/{experiment}.parquet -> one statistics figure (dose | forest | fid | categories)."""
import logging

from sinkrepro.paper.figures import stats_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
figure = snakemake.params.figure  # noqa: F821
drawn = stats_figure(
    figure, snakemake.input.stats,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    **(snakemake.params.get("options") or {}),  # noqa: F821  e.g. forest: {adjusted: p_adj_experiment, alpha: 0.05}
)
logging.info("%s: drew %d stats rows", figure, len(drawn.data))
