# paper/provenance.json: for each table and figure, the md5 of its input files (DVC's hash), and the
# config hash, git commit, package versions and weight hashes of the run. `sinkrepro verify`
# recomputes them. Hashing only: it runs on the submitting node, never as a cluster job.
from sinkrepro.provenance_record import outputs_config

PAPER_INPUTS = layout.paper_inputs(GRID)


localrules:
    provenance,


rule provenance:
    input:
        outputs=sorted(PAPER_INPUTS),
        inputs=sorted({f for files in PAPER_INPUTS.values() for f in files}),
        weights=layout.weight_dirs(GRID),
    output:
        layout.PROVENANCE,
    log:
        "logs/paper/provenance.log",
    params:
        code=code_hash("provenance.py"),
        paper_inputs=PAPER_INPUTS,
        config=outputs_config(config),
        standin=any(config["models"][m]["source"] == "standin" for m in layout.models_of(GRID))
        or any(config["scorers"][s].get("source", "standin") == "standin" for s in layout.scorer_names(GRID)),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/provenance.py"
