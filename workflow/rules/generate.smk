# One job per shard: (model, condition, seed, prompt chunk). Images + manifest, and the sink
# statistics of measured layers (an empty table when the condition is not measured).


rule generate:
    input:
        model=layout.MODEL,
    output:
        images=directory(layout.IMAGES),
        dynamics=layout.DYNAMICS,
    log:
        "logs/generate/{model}/{condition}/seed{seed}/{shard}.log",
    params:
        code=code_hash("generate_shard.py"),
        job=get_shard_job,
    resources:
        **WIRING.resources("generate"),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/generate_shard.py"
