# Scorers (stand-ins built from a seed, or real weights fetched once) and per-image scores, one
# job per (metric, shard). Pairwise metrics (LPIPS) read the same shard of the baseline too.


rule scorer:
    output:
        directory("resources/scorers/{scorer}"),
    log:
        "logs/scorer/{scorer}.log",
    params:
        scorer=scorer_config,
    wildcard_constraints:
        scorer="clip_t|hps|imagereward|lpips|fid",
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/build_scorer.py"


rule score:
    input:
        unpack(score_inputs),
    output:
        "results/scores/{metric}/{model}/{condition}/seed{seed}/{shard}.parquet",
    log:
        "logs/score/{metric}/{model}/{condition}/seed{seed}/{shard}.log",
    params:
        code=code_hash("score_shard.py"),
        scorer=score_params,
    resources:
        gpu=GPU_JOBS,
        mem_mb=4000,
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/score_shard.py"


rule fid:
    input:
        unpack(fid_inputs),
    output:
        FID_SCORES,
    log:
        "logs/fid/{model}/{condition}/seed{seed}/vs_{reference}_seed{reference_seed}.log",
    params:
        code=code_hash("score_fid.py"),
        scorer=fid_params,
    resources:
        gpu=GPU_JOBS,
        mem_mb=4000,
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/score_fid.py"
