"""Adapter: score shards + image shards -> qualitative panel (baseline | sink | random) + selection CSV."""
import logging

from sinkrepro.paper.figures import panel_figure

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
params = snakemake.params  # noqa: F821
drawn = panel_figure(
    snakemake.input.scores, snakemake.input.shards,  # noqa: F821
    png=snakemake.output.png, pdf=snakemake.output.pdf, csv=snakemake.output.get("csv"),  # noqa: F821
    condition=params.condition, control=params.control, baseline=params.get("baseline", "base"),
    n_per_group=params.get("n_per_group", 5), clip_tol=params.get("clip_tol", 0.01),
    own=params.get("own"),
)
logging.info("%s vs %s: %d examples in groups %s", params.condition, params.control, len(drawn.data),
             sorted(set(drawn.data["group"])))
