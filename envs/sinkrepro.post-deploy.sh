#!/usr/bin/env bash
# Runs once after Snakemake creates the conda env (from the workflow's working directory, the repo root).
set -euo pipefail
pip install --no-deps -r envs/nodeps.txt
pip install --no-deps -e . --config-settings editable_mode=compat
python -m sinkrepro.envfix
