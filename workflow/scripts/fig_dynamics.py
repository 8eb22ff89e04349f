"""Adapter: dynamics shards -> one sink-dynamics figure (curves | position | attribution), PNG + PDF (+ CSV)."""
import logging

from sinkrepro.paper.figures import dynamics_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
params = snakemake.params  # noqa: F821
drawn = dynamics_figure(
    params.figure,
    snakemake.input.dynamics,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    layers=params.get("layers"),
    condition=params.get("condition", "base"),
    grid=params.get("grid"),
    model=params.get("model", ""),
    own=params.get("own"),
)
logging.info("%s: drew %d rows from %d dynamics files", params.figure, len(drawn.data),
             len(snakemake.input.dynamics))  # noqa: F821
