# Scorers (stand-ins built from a seed, or real weights fetched once), per-image scores and FIDs.
# One score job per image shard scores every per-image metric any experiment needs of it, on the
# prompts that need it, loading each scorer once; pairwise metrics (LPIPS, feat_l2) also read the
# baseline's shards. One FID job per (experiment prompts, set, reference set): sets hold exactly
# the images of those prompts.


rule scorer:
    output:
        directory(layout.SCORER),
    log:
        "logs/scorer/{scorer}.log",
    params:
        scorer=get_scorer_config,
    wildcard_constraints:
        scorer="clip_t|hps|imagereward|lpips|fid",
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/build_scorer.py"


rule score:
    input:
        unpack(get_score_inputs),
    output:
        layout.SCORES,
    log:
        "logs/score/{model}/{condition}/seed{seed}/{shard}.log",
    params:
        code=code_hash("score_shard.py"),
        metrics=get_score_params,
    resources:
        **WIRING.resources("score"),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/score_shard.py"


rule fid:
    input:
        unpack(get_fid_inputs),
    output:
        layout.FID,
    log:
        "logs/fid/{prompts}/{model}/{condition}/seed{seed}/vs_{reference}_seed{reference_seed}.log",
    params:
        code=code_hash("score_fid.py"),
        scorer=get_fid_params,
    resources:
        **WIRING.resources("fid"),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/score_fid.py"
