#!/usr/bin/env bash
# A private single-node Slurm cluster on localhost, for tests and trying the job scripts.
#
#   scripts/slurm-local.sh start  [DIR]   start munged, slurmctld and slurmd
#   scripts/slurm-local.sh stop   [DIR]   cancel its jobs and stop everything it started
#   scripts/slurm-local.sh status [DIR]   show the daemons and the node; exit 0 when up
#   scripts/slurm-local.sh env    [DIR]   print the export lines that point clients at it
#
# DIR (default: $SLURM_LOCAL_DIR, else build/slurm-local) holds everything: slurm.conf,
# the munge key and socket, state and spool folders, logs and pid files. The cluster has
# its own ports (free ones, chosen at start) and its own munge socket, so it never talks to
# a system Slurm or munge; clients reach it only through SLURM_CONF (see `env`).
# Debian packages: slurmctld slurmd slurm-client munge (scripts/setup.sh --slurm).
# As root, munged runs as the munge user (it refuses root), the Slurm daemons as root.
# Node size: SLURM_LOCAL_CPUS (default: max(nproc, 4); more than the host has is allowed,
# so a 2-core CI machine can run 4-task jobs) and SLURM_LOCAL_MEM_MB (default 4096).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-status}
DIR=${2:-${SLURM_LOCAL_DIR:-$ROOT/build/slurm-local}}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/etc/slurm.conf
MUNGE_DIR=$DIR/munge
SOCK=$MUNGE_DIR/munge.socket
NODE=$(hostname -s)

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*" >&2; }

need_packages() {
  local missing=()
  for b in slurmctld slurmd sbatch munged; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || missing+=("$b")
  done
  [[ ${#missing[@]} -eq 0 ]] ||
    die "not installed: ${missing[*]} (run scripts/setup.sh --slurm)"
}
path_of() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

free_port_pair() {
  # Two consecutive ports nobody listens on, from a range away from Slurm's 6817-6819.
  local used p
  used=$( (ss -Htan 2>/dev/null || netstat -tan 2>/dev/null) | awk '{print $4}' | sed 's/.*://')
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 20000))
    grep -qx "$p" <<<"$used" || grep -qx "$((p + 1))" <<<"$used" || { echo "$p"; return; }
  done
  die "no free port pair found"
}

write_conf() {
  local port cpus mem user
  port=$(free_port_pair)
  cpus=${SLURM_LOCAL_CPUS:-$(($(nproc) > 4 ? $(nproc) : 4))}
  mem=${SLURM_LOCAL_MEM_MB:-4096}
  user=$(id -un)
  mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  : >"$DIR/etc/plugstack.conf"
  cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a private single-node cluster (not a system Slurm).
ClusterName=segreclocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
PlugStackConfig=$DIR/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
KillWait=10
InactiveLimit=0
# Signals and requeue: a requeued job waits before it may start again (see docs/slurm.md).
JobRequeue=1
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munge() {
  pid_alive "$MUNGE_DIR/munged.pid" && return
  local owner
  owner=$(id -un)
  [[ $(id -u) -eq 0 ]] && owner=munge
  mkdir -p "$MUNGE_DIR"
  if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
  fi
  chmod 0700 "$MUNGE_DIR"
  chmod 0600 "$MUNGE_DIR/munge.key"
  chown -R "$owner:" "$MUNGE_DIR"
  local run=()
  [[ $(id -u) -eq 0 ]] && run=(setpriv --reuid=munge --regid=munge --clear-groups)
  "${run[@]}" "$(path_of munged)" --force --key-file="$MUNGE_DIR/munge.key" --socket="$SOCK" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" ||
    die "munged did not start: $(tail -3 "$MUNGE_DIR/munged.log" 2>/dev/null)"
  for _ in $(seq 1 50); do [[ -S $SOCK ]] && return; sleep 0.1; done
  die "munged socket $SOCK did not appear"
}

up() {
  SLURM_CONF=$CONF sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
  need_packages
  if pid_alive "$DIR/run/slurmctld.pid" && pid_alive "$DIR/run/slurmd.pid" && up; then
    say "already running ($CONF)"; return
  fi
  stop_daemons quiet
  write_conf
  start_munge
  export SLURM_CONF=$CONF
  "$(path_of slurmctld)" -f "$CONF" -i || die "slurmctld did not start: $(tail -5 "$DIR/log/slurmctld.log")"
  "$(path_of slurmd)" -f "$CONF" -N "$NODE" || die "slurmd did not start: $(tail -5 "$DIR/log/slurmd.log")"
  for _ in $(seq 1 300); do
    if up; then say "up: node $NODE, $CONF"; return; fi
    sleep 0.2
  done
  say "the node did not become idle within 60 s"
  tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  exit 1
}

stop_pidfile() {
  local f=$1 pid
  [[ -s $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

stop_daemons() {
  if [[ -f $CONF ]] && pid_alive "$DIR/run/slurmctld.pid"; then
    SLURM_CONF=$CONF scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    # Give running steps a moment to end before their slurmd goes.
    for _ in $(seq 1 50); do
      [[ -z $(SLURM_CONF=$CONF squeue -h -t R,CG 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  stop_pidfile "$DIR/run/slurmd.pid"
  stop_pidfile "$DIR/run/slurmctld.pid"
  # Steps whose slurmd is gone (slurmstepd spawned by our slurmd, named by our spool dir).
  local p
  for p in $(pgrep -f "slurmstepd.*" 2>/dev/null || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$CONF"; then
      kill -9 "$p" 2>/dev/null || true
    fi
  done
  stop_pidfile "$MUNGE_DIR/munged.pid"
  [[ ${1:-} == quiet ]] || say "stopped ($DIR)"
}

status() {
  local rc=0 d
  for d in "$MUNGE_DIR/munged.pid" "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid"; do
    if pid_alive "$d"; then echo "$(basename "$d" .pid): running (pid $(cat "$d"))"
    else echo "$(basename "$d" .pid): stopped"; rc=1; fi
  done
  if [[ $rc -eq 0 ]]; then
    SLURM_CONF=$CONF sinfo -N -o '%N %T %c %m' || rc=1
    up || rc=1
  fi
  return $rc
}

case $cmd in
  start) start ;;
  stop) stop_daemons ;;
  status) status ;;
  env)
    [[ -f $CONF ]] || die "no cluster in $DIR (run: $0 start $DIR)"
    echo "export SLURM_CONF=$CONF"
    ;;
  *) die "usage: $0 start|stop|status|env [DIR]" ;;
esac
