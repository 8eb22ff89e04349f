"""Write one prompt table from its configured source."""
from pathlib import Path

from sinkrepro.config import PROMPT_CACHE
from sinkrepro.prompts import load_prompt_set, write_table
from sinkrepro.scriptlog import job_log

rows = load_prompt_set(snakemake.wildcards.prompt_set, snakemake.params.sets, Path("."), PROMPT_CACHE)
write_table(snakemake.output[0], rows)
job_log(snakemake).info("%d prompts", len(rows))
