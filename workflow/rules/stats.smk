# Paired statistics, one job per experiment (every comparison of its conditions and contrasts).


rule stats:
    input:
        scores=get_experiment_scores,
        prompts=get_experiment_prompts,
    output:
        parquet=layout.STATS,
        csv=layout.STATS_CSV,
    log:
        "logs/stats/{experiment}.log",
    params:
        code=code_hash("stats_experiment.py"),
        experiment=get_experiment,
        stats=config["stats"],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/stats_experiment.py"
