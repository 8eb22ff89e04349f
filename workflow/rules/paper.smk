# The paper: tables, claims, figures, the index, all in the report.
from pathlib import Path

# The report's front page: this run's index (written by paper_index), then how to read the report;
# before a run has written it, the guide alone.
REPORT_FRONT = "paper/report.rst"
INDEX_FILES = ["paper/README.md", REPORT_FRONT]


report: str(Path(REPORT_FRONT).absolute()) if Path(REPORT_FRONT).exists() else "../report/workflow.rst"


rule paper_tables:
    input:
        stats=expand(layout.STATS, experiment=SCORED),
    output:
        [report(f"paper/tables/{table}.{ext}", caption="../report/table.rst", category="tables",
                labels={"table": table, "format": ext}) if ext == "csv" else f"paper/tables/{table}.{ext}"
         for table in WIRING.paper_tables() for ext in TABLE_FORMATS],
    log:
        "logs/paper/tables.log",
    params:
        code=code_hash("paper_tables.py"),
        experiments=WIRING.scored(),
        stats=config["stats"],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/paper_tables.py"


rule paper_claims:
    input:
        stats=expand(layout.STATS, experiment=SCORED),
        baseline_scores=layout.noise_floor_files(GRID),
    output:
        claims=report("paper/claims.md", caption="../report/claims.rst", category="claims"),
    log:
        "logs/paper/claims.log",
    params:
        code=code_hash("paper_claims.py"),
        experiments=WIRING.scored(),
        stats=config["stats"],
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/paper_claims.py"


rule dynamics_figure:
    input:
        dynamics=get_baseline_dynamics,
    output:
        png=report("paper/figures/{experiment}/dynamics_{figure}.png", caption="../report/fig_dynamics.rst",
                   category="{experiment}", subcategory=get_experiment_key("model"), labels=get_figure_labels),
        pdf="paper/figures/{experiment}/dynamics_{figure}.pdf",
        csv="paper/figures/{experiment}/dynamics_{figure}.csv",
        meta="paper/figures/{experiment}/dynamics_{figure}.csv-metadata.json",
    log:
        "logs/figures/{experiment}/dynamics_{figure}.log",
    params:
        code=code_hash("fig_dynamics.py"),
        figure="{figure}",
        condition=get_experiment_key("baseline"),
        model=get_experiment_key("model"),
        own=get_experiment_own,
    wildcard_constraints:
        figure="|".join(layout.DYNAMICS_FIGURES),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/fig_dynamics.py"


rule stats_figure:
    input:
        stats=layout.STATS,
    output:
        png=report("paper/figures/{experiment}/{figure}.png", caption="../report/fig_stats.rst",
                   category="{experiment}", subcategory=get_experiment_key("model"), labels=get_figure_labels),
        pdf="paper/figures/{experiment}/{figure}.pdf",
        csv="paper/figures/{experiment}/{figure}.csv",
        meta="paper/figures/{experiment}/{figure}.csv-metadata.json",
    log:
        "logs/figures/{experiment}/{figure}.log",
    params:
        code=code_hash("fig_stats.py"),
        figure="{figure}",
    wildcard_constraints:
        figure="|".join(layout.STATS_FIGURES),
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/fig_stats.py"


rule panels_figure:
    input:
        unpack(get_panel_inputs),
    output:
        png=report("paper/figures/{experiment}/panels_k{k}.png", caption="../report/fig_panels.rst",
                   category="{experiment}", subcategory=get_experiment_key("model"), labels=get_panel_labels),
        pdf="paper/figures/{experiment}/panels_k{k}.pdf",
        csv="paper/figures/{experiment}/panels_k{k}.csv",
        meta="paper/figures/{experiment}/panels_k{k}.csv-metadata.json",
    log:
        "logs/figures/{experiment}/panels_k{k}.log",
    params:
        code=code_hash("fig_panels.py"),
        condition=get_contrast_key("condition"),
        control=get_contrast_key("control"),
        baseline=get_experiment_key("baseline"),
        own=get_experiment_own,
    wildcard_constraints:
        k=r"\d+",
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/fig_panels.py"


rule paper_index:
    input:
        layout.paper_outputs(GRID),
    output:
        index="paper/README.md",
        front=REPORT_FRONT,
    log:
        "logs/paper/index.log",
    params:
        code=code_hash("paper_index.py"),
        experiments=list(EXPERIMENTS.values()),
        guide=lambda wildcards, text=Path(workflow.source_path("../report/workflow.rst")).read_text(): text,
    conda:
        "../../envs/sinkrepro.yaml"
    script:
        "../scripts/paper_index.py"
