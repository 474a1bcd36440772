#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests (needs root, Debian's slurmctld, slurmd,
# slurm-client and munge; .ci/run installs them):
#   bash tests/slurm/cluster.sh start DIR    # writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   bash tests/slurm/cluster.sh stop DIR
# Clients then use SLURM_CONF=DIR/slurm.conf.
set -euo pipefail
action=$1 dir=$(realpath -m "$2")
host=$(hostname -s)
conf=$dir/slurm.conf
case $action in
  start)
    mkdir -p "$dir/state" "$dir/spool" /run/munge
    chown munge:munge /run/munge
    if ! pgrep -x munged >/dev/null; then runuser -u munge -- munged; fi
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
    cat > "$conf" <<CONF
ClusterName=enginetest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONF
    slurmctld -f "$conf"
    slurmd -f "$conf"
    for _ in $(seq 50); do
      if SLURM_CONF=$conf sinfo -h -o %t 2>/dev/null | grep -q idle; then exit 0; fi
      sleep 0.2
    done
    echo "slurm did not come up; see $dir/slurmctld.log and $dir/slurmd.log" >&2
    exit 1 ;;
  stop)
    for pid in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
      [[ -f $pid ]] && kill "$(cat "$pid")" 2>/dev/null || true
    done ;;
  *) echo "usage: cluster.sh start|stop DIR" >&2; exit 2 ;;
esac
