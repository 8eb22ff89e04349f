"""Adapter: one experiment's score shards -> results/stats/{experiment}.parquet + .csv."""
from sinkrepro.scriptlog import job_log
from sinkrepro.stats.files import write_experiment_stats

experiment = snakemake.params.experiment  # noqa: F821
stats = write_experiment_stats(
    score_paths=snakemake.input.scores,  # noqa: F821
    prompts_path=snakemake.input.prompts,  # noqa: F821
    experiment=experiment,
    stats_config=snakemake.params.stats,  # noqa: F821
    out_parquet=snakemake.output.parquet,  # noqa: F821
    out_csv=snakemake.output.csv,  # noqa: F821
)
excluded = int(stats["n_excluded"].fillna(0).sum()) if "n_excluded" in stats else 0
job_log(snakemake).info("%s: %d comparison rows; %d failed/NaN score rows excluded (summed over comparisons)",  # noqa: F821
                        experiment["name"], len(stats), excluded)
