#!/usr/bin/env bash
# Bring up a single-node SLURM on loopback with one fake GPU (GRES), for a manual check of the
# SLURM profiles. Root only; needs: apt-get install -y --no-install-recommends slurmctld slurmd
# slurm-client munge. State lives under $STACK; stop everything with stop_slurm.sh.
# The config must sit at /etc/slurm/slurm.conf: the plugin's jobstep drops SLURM_CONF in jobs.
set -euo pipefail
STACK=${STACK:-/tmp/sinkrepro-slurm}
MARK="# written by sinkrepro tests/cluster/start_slurm.sh"

for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
  if [[ -e $f ]] && ! grep -qF "$MARK" "$f"; then
    echo "$f exists and is not ours; refusing to overwrite it" >&2; exit 1
  fi
done
mkdir -p "$STACK"/slurm/{state,spool,log,run} /run/munge
chown munge:munge /run/munge
[[ -e $STACK/slurm/nvidia0 ]] || mknod "$STACK/slurm/nvidia0" c 195 0   # only has to exist

cat > /etc/slurm/slurm.conf <<EOF
$MARK
ClusterName=ci
GresTypes=gpu
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STACK/slurm/state
SlurmdSpoolDir=$STACK/slurm/spool
SlurmctldPidFile=$STACK/slurm/run/slurmctld.pid
SlurmdPidFile=$STACK/slurm/run/slurmd.pid
SlurmctldLogFile=$STACK/slurm/log/slurmctld.log
SlurmdLogFile=$STACK/slurm/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=20000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
cat > /etc/slurm/gres.conf <<EOF
$MARK
NodeName=localhost Name=gpu File=$STACK/slurm/nvidia0
EOF

runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
munge -n | unmunge | grep -q 'STATUS: *Success'
slurmctld
slurmd -N localhost
for _ in $(seq 100); do
  sinfo -h -o %T 2>/dev/null | grep -q '^idle' && { sinfo; exit 0; }
  sleep 0.2
done
echo "node not idle after 20 s; see $STACK/slurm/log/" >&2; sinfo >&2 || true; exit 1
