#!/usr/bin/env bash
# Run the tiny config (tests/cluster/tiny.yaml) through a loopback SLURM (start_slurm.sh) with a
# SLURM workflow profile scaled to the node, in a scratch working directory, then report what
# SLURM saw: every job, its state, its GPU request, and the CUDA_VISIBLE_DEVICES its processes had.
#   tests/cluster/run_tiny.sh [slurm|slurm-gres]
set -euo pipefail
PROFILE=${1:-slurm}
STACK=${STACK:-/tmp/sinkrepro-slurm}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$STACK/work-$PROFILE
PY=$REPO/.venv/bin/python

rm -rf "$WORK" && mkdir -p "$WORK"
ln -s "$REPO/config" "$WORK/config"     # prompt tables are read relative to the working directory
"$PY" "$REPO/tests/cluster/loopback_profile.py" "$REPO/workflow/profiles/$PROFILE" "$WORK/profile"

# Record the GPU view of every process that runs inside a SLURM job, while the workflow runs.
"$PY" - > "$WORK/job_env.raw" <<'PYEOF' &
import glob, time
while True:
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            pairs = open(path, "rb").read().decode(errors="replace").split("\0")
        except OSError:
            continue
        env = dict(p.split("=", 1) for p in pairs if "=" in p)
        if "SLURM_JOB_ID" in env:
            keys = ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS")
            print(*(f"{k}={env.get(k, '-')}" for k in keys), flush=True)
    time.sleep(1)
PYEOF
WATCHER=$!

start=$(date +%s)
set +e
HF_HUB_OFFLINE=1 timeout -k 10 1200 "$REPO/.venv/bin/snakemake" -s "$REPO/workflow/Snakefile" -d "$WORK" \
  --workflow-profile "$WORK/profile" --configfile "$REPO/tests/cluster/tiny.yaml" \
  --replace-workflow-config > "$WORK/snakemake.log" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))
kill "$WATCHER" 2>/dev/null || true
sort -u "$WORK/job_env.raw" > "$WORK/job_env.txt"

# This run's jobs (finished ones stay visible for MinJobAge = 300 s).
ids=$(grep -oE 'with SLURM jobid [0-9]+' "$WORK/snakemake.log" | awk '{print $4}' | paste -sd' ')
scontrol show job -o 2>/dev/null | awk -v ids=" $ids " '{ id = $1; sub(/JobId=/, "", id) } index(ids, " " id " ")' \
  > "$WORK/jobs.txt" || true
echo "profile=$PROFILE rc=$rc wall=${elapsed}s workdir=$WORK"
grep -E "^[0-9]+ of [0-9]+ steps|[Ee]rror" "$WORK/snakemake.log" | tail -3 || true
echo "submitted through sbatch: $(grep -c 'has been submitted with SLURM jobid' "$WORK/snakemake.log")"
echo "SLURM jobs: $(grep -c JobId= "$WORK/jobs.txt"), completed: $(grep -c 'JobState=COMPLETED' "$WORK/jobs.txt")"
echo "jobid rule state gpu-request (TresPerJob: --gpus, TresPerNode: --gres):"
awk '{ delete f; for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
       print f["JobId"], f["Comment"], f["JobState"], ("TresPerJob" in f ? "TresPerJob=" f["TresPerJob"] : "TresPerNode" in f ? "TresPerNode=" f["TresPerNode"] : "-") }' "$WORK/jobs.txt"
echo "job processes that saw CUDA_VISIBLE_DEVICES:"
grep -v 'CUDA_VISIBLE_DEVICES=-' "$WORK/job_env.txt" || echo "  none"
exit $rc
