#!/usr/bin/env bash
# Stop what start_slurm.sh started, by the PIDs in its pid files, and remove its config files.
set -uo pipefail
STACK=${STACK:-/tmp/sinkrepro-slurm}
MARK="# written by sinkrepro tests/cluster/start_slurm.sh"

alive() {  # ended daemons may linger as zombies when PID 1 does not reap them
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

for pidfile in "$STACK/slurm/run/slurmd.pid" "$STACK/slurm/run/slurmctld.pid" /run/munge/munged.pid; do
  [[ -s $pidfile ]] || continue
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then echo "$pid ($pidfile) still running" >&2; else echo "stopped $pid ($pidfile)"; fi
  rm -f "$pidfile"
done
for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  [[ -e $f ]] && grep -qF "$MARK" "$f" && rm -f "$f"
done
exit 0
