# Paired statistics, one job per experiment (every comparison of its conditions and contrasts).


rule stats:
    input:
        scores=experiment_scores,
        prompts=experiment_prompts,
    output:
        parquet=layout.STATS,
        csv=layout.STATS_CSV,
    log:
        "logs/stats/{experiment}.log",
    params:
        code=code_hash("stats_experiment.py"),
        experiment=experiment_params,
        stats=config["stats"],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/stats_experiment.py"
