"""Adapter: one experiment's score shards -> results/stats/{experiment}.parquet + .csv."""
from sinkrepro.stats.files import write_experiment_stats

experiment = snakemake.params.experiment  # noqa: F821
stats = write_experiment_stats(
    score_paths=snakemake.input.scores,  # noqa: F821
    prompts_path=snakemake.input.get("prompts"),  # noqa: F821
    experiment=experiment,
    stats_config=snakemake.params.get("stats"),  # noqa: F821
    out_parquet=snakemake.output.parquet,  # noqa: F821
    out_csv=snakemake.output.csv,  # noqa: F821
)
with open(snakemake.log[0], "w") as log:  # noqa: F821
    excluded = int(stats["n_excluded"].fillna(0).sum()) if "n_excluded" in stats else 0
    log.write(f"{experiment['name']}: {len(stats)} comparison rows; {excluded} failed/NaN score rows excluded "
              "(summed over comparisons)\n")
