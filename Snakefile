# Entry point at the repository root; the workflow lives in workflow/Snakefile (catalog layout).
# Snakemake looks for the default profile beside this file: profiles/ links to workflow/profiles/
include: "workflow/Snakefile"


# Snakemake drops an included file's default target, so name it here.
rule default:
    input:
        rules.all.input,
    default_target: True
