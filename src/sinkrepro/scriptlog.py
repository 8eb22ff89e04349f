"""The one logging setup of the workflow scripts: each job logs to its rule's log file."""
from __future__ import annotations

import logging
import sys


def job_log(snakemake, stderr: bool = False) -> logging.Logger:
    """A logger writing INFO lines to the job's log file; with `stderr`, the job's stderr (library
    warnings, progress bars, a traceback) goes there too, for the long model jobs. `force`: the root
    logger's handlers are this job's alone, also where one process runs several scripts (tests)."""
    logging.basicConfig(filename=snakemake.log[0], level=logging.INFO, force=True)
    if stderr:
        sys.stderr = open(snakemake.log[0], "a")
    return logging.getLogger()
