"""Adapter: results/stats/{experiment}.parquet -> FID calibration bars or the per-category figure."""
import logging

from sinkrepro.paper.figures import stats_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
figure = snakemake.params.figure  # noqa: F821
if figure not in ("fid", "categories"):
    raise ValueError(f"params.figure={figure!r}: fig_calibration draws 'fid' or 'categories'")
drawn = stats_figure(
    figure, snakemake.input.stats,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    **(snakemake.params.get("options") or {}),  # noqa: F821  categories: {conditions: [...], kind: delta}
)
logging.info("%s: drew %d stats rows", figure, len(drawn.data))
