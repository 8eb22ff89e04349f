# Paper tables from measured sink dynamics: Table 1 (sink statistics per layer), Table 4 (mass left
# on the edited keys) and Table 16's attribution part. One job per table, over every measured
# experiment that lists it; outputs are paper/tables/{table1,table4,table16_attribution}.*
# (Table 16's stats part stays paper/tables/table16.*).
from sinkrepro.paper.dynamics_tables import OUTPUT_STEMS, check_experiments, dynamics_tables, experiments_filling

check_experiments(EXPERIMENTS.values())
DYNAMICS_TABLE_OF = {stem: table for table, stem in OUTPUT_STEMS.items()}


def dynamics_table_experiments(wildcards):
    return experiments_filling(DYNAMICS_TABLE_OF[wildcards.stem], EXPERIMENTS.values())


def dynamics_table_inputs(wildcards):
    """Table 4 reads every condition's dynamics shards; Tables 1 and 16 only the baselines'."""
    every_condition = DYNAMICS_TABLE_OF[wildcards.stem] == "table4"
    files = set()
    for exp in dynamics_table_experiments(wildcards):
        conditions = [exp["baseline"]] + ([c["condition"] for c in exp["conditions"]] if every_condition else [])
        files |= {f"results/dynamics/{s.model}/{s.condition}/seed{s.seed}/{s.name}.parquet"
                  for c in conditions for seed in exp["seeds"] for s in GRID.shards_of(exp["model"], c, seed)}
    return sorted(files)


def dynamics_table_files():
    """Every dynamics table output the config asks for (add to rule all)."""
    stems = [OUTPUT_STEMS[t] for t in dynamics_tables(EXPERIMENTS.values())]
    return expand("paper/tables/{stem}.{ext}", stem=stems, ext=("csv", "md", "tex"))


rule dynamics_table:
    input:
        dynamics=dynamics_table_inputs,
    output:
        csv=report("paper/tables/{stem}.csv", caption="../report/table.rst", category="tables",
                   labels=lambda wildcards: {"table": wildcards.stem, "format": "csv"}),
        md="paper/tables/{stem}.md",
        tex="paper/tables/{stem}.tex",
    log:
        "logs/paper/{stem}.log",
    params:
        table=lambda wildcards: DYNAMICS_TABLE_OF[wildcards.stem],
        experiments=dynamics_table_experiments,
        stats=config["stats"],
    wildcard_constraints:
        stem="|".join(OUTPUT_STEMS.values()),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/paper_dynamics_tables.py"
