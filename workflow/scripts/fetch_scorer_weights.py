"""Adapter: download one real scorer's weights (network + HF_TOKEN) into its directory, with sha256s."""
import logging

from sinkrepro.scoring import fetch_scorer_weights

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
metric = snakemake.params.scorer["metric"]  # noqa: F821
out = fetch_scorer_weights(metric, snakemake.output[0])  # noqa: F821
logging.info("%s weights fetched: %s", metric, (out / "scorer.json").read_text())
