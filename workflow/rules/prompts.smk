# The prompt table of each prompt set (local file of ours, or a pinned URL checked by sha256).


rule prompt_table:
    output:
        layout.PROMPT_TABLE,
    log:
        "logs/prompts/{prompt_set}.log",
    params:
        code=code_hash("prompt_table.py"),
        sets=config["prompt_sets"],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/prompt_table.py"
