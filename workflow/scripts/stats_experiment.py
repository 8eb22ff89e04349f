"""Adapter: one experiment's score shards -> results/stats/{experiment}.parquet + .csv."""
import logging

from sinkrepro.stats.files import write_experiment_stats

logging.basicConfig(filename=snakemake.log[0], level=logging.INFO)  # noqa: F821
experiment = snakemake.params.experiment  # noqa: F821
stats = write_experiment_stats(
    score_paths=snakemake.input.scores,  # noqa: F821
    prompts_path=snakemake.input.get("prompts"),  # noqa: F821
    experiment=experiment,
    stats_config=snakemake.params.get("stats"),  # noqa: F821
    out_parquet=snakemake.output.parquet,  # noqa: F821
    out_csv=snakemake.output.csv,  # noqa: F821
)
logging.info("%s: %d comparison rows, %d excluded score rows", experiment["name"], len(stats),
             int(stats.get("n_excluded", [0]).sum()) if len(stats) else 0)
