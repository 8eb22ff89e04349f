#!/usr/bin/env bash
# Bring up a single-node SLURM on loopback (every daemon binds 127.0.0.1 only) with four fake GPUs
# (GRES), for tests/test_slurm.py and a manual check of the SLURM profiles. Root only; needs:
# apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge.
# State lives under $STACK; stop everything with stop_slurm.sh.
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
for i in 0 1 2 3; do [[ -e $STACK/slurm/nvidia$i ]] || mknod "$STACK/slurm/nvidia$i" c 195 $i; done  # only have to exist

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
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
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
TaskProlog=$STACK/slurm/task_prolog.sh
Waittime=0
# 8 CPUs and 4 GPUs whatever the machine has (config_overrides), so tiny jobs never queue.
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=20000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
# Every task appends the GPUs it was given (job id, step id, CUDA_VISIBLE_DEVICES) for the tests.
cat > "$STACK/slurm/task_prolog.sh" <<'EOF'
#!/bin/sh
echo "$SLURM_JOB_ID ${SLURM_STEP_ID:--} ${CUDA_VISIBLE_DEVICES:--}" >> "${0%/*}/log/task_gpus.txt"
EOF
chmod +x "$STACK/slurm/task_prolog.sh"
cat > /etc/slurm/gres.conf <<EOF
$MARK
NodeName=localhost Name=gpu File=$STACK/slurm/nvidia[0-3]
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
