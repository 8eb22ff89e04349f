# Model weights: stand-ins are built from a fixed seed; hub models are fetched once (network + HF_TOKEN).
# Every other job loads from resources/models/<name> with from_pretrained, offline.


rule model:
    output:
        directory(layout.MODEL),
    log:
        "logs/model/{model}.log",
    params:
        model=lambda w: config["models"][w.model],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/model.py"
