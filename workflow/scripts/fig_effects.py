"""Adapter: results/stats/{experiment}.parquet -> one effect figure (dose | forest), PNG + PDF (+ CSV)."""
import logging

from sinkrepro.paper.figures import stats_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
figure = snakemake.params.figure  # noqa: F821
if figure not in ("dose", "forest"):
    raise ValueError(f"params.figure={figure!r}: fig_effects draws 'dose' or 'forest'")
drawn = stats_figure(
    figure, snakemake.input.stats,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    **(snakemake.params.get("options") or {}),  # noqa: F821  e.g. {adjusted: p_adj_family, alpha: 0.05}
)
logging.info("%s: drew %d stats rows", figure, len(drawn.data))
