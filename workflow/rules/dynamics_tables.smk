# Paper tables from measured sink dynamics: Table 1 (sink statistics per layer), Table 4 (mass left
# on the edited keys) and Table 16's attribution part. One job per table, over every measured
# experiment that lists it; outputs are paper/tables/{table1,table4,table16_attribution}.*
# (Table 16's stats part stays paper/tables/table16.*).


rule dynamics_table:
    input:
        dynamics=get_dynamics_table_inputs,
    output:
        csv=report("paper/tables/{stem}.csv", caption="../report/dynamics_table.rst", category="tables",
                   labels=lambda wildcards: {"table": wildcards.stem, "format": "csv"}),
        meta="paper/tables/{stem}.csv-metadata.json",
        md="paper/tables/{stem}.md",
        tex="paper/tables/{stem}.tex",
    log:
        "logs/paper/{stem}.log",
    params:
        code=code_hash("paper_dynamics_tables.py"),
        table=get_dynamics_table,
        experiments=get_dynamics_table_experiments,
        stats=config["stats"],
    wildcard_constraints:
        stem="|".join(OUTPUT_STEMS.values()),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/paper_dynamics_tables.py"
