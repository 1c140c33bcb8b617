#!/usr/bin/env bash
# A private Slurm cluster on this machine, for tests and trying the job scripts: one node on
# localhost (the default), or N nodes, each in its own network namespace.
#
#   scripts/slurm-local.sh start  [DIR] [--nodes N]   start munged, slurmctld and N slurmd
#   scripts/slurm-local.sh stop   [DIR]   cancel its jobs, stop everything it started, remove
#                                         the namespaces and the guard route it created
#   scripts/slurm-local.sh status [DIR]   show the daemons and the nodes; exit 0 when up
#   scripts/slurm-local.sh env    [DIR]   print the export lines that point clients at it
#   scripts/slurm-local.sh exec CMD...    run a client command (sinfo, sbatch, ...) against it;
#                                         with N > 1, inside the controller's namespace
#   scripts/slurm-local.sh check-nodes    exit 0 when N > 1 nodes can be made here (root, netns)
#   scripts/slurm-local.sh node-kill I | node-cut I | node-restore I   (N > 1) kill every
#                                         process of node I / take its link down / bring the link
#                                         back and restart its slurmd
# `exec` and the node commands take the cluster from $SLURM_LOCAL_DIR (or --dir DIR before them).
#
# DIR (default: $SLURM_LOCAL_DIR, else build/slurm-local) holds everything: slurm.conf,
# the munge key and socket, state and spool folders, logs and pid files. The cluster has
# its own ports and its own munge socket, so it never talks to a system Slurm or munge;
# clients reach it only through SLURM_CONF (see `env`).
# Debian packages: slurmctld slurmd slurm-client munge (scripts/setup.sh --slurm).
# As root, munged runs as the munge user (it refuses root), the Slurm daemons as root.
# Node size: SLURM_LOCAL_CPUS (default: max(nproc, 4); more than the host has is allowed,
# so a 2-core CI machine can run 4-task jobs) and SLURM_LOCAL_MEM_MB (default 4096).
#
# N > 1 nodes (root only), the bridge design of scripts/multihost.sh on subnet 10.214.0.0/24:
#   srsl-sw      holds the bridge srsl-br and one port per namespace
#   srsl-ctl     slurmctld (hostname srsl-ctl), 10.214.0.1; every client command runs here
#   srsl-nI      slurmd of node srsl-nI (its own hostname), 10.214.0.(10+I)
# The daemons are started with `nsenter --net` (not `ip netns exec`, which remounts /sys and
# leaves slurmd without /sys/fs/cgroup) and `unshare --uts` (each node its own hostname:
# slurmctld checks its own, and Open MPI's session folders are named by it). Spool folders and
# TmpFS are per node (srun --mpi=pmix keeps its files there). One munged serves all (a Unix
# socket is reachable from every network namespace).
# The root namespace has no address on the test subnet: a client run there would send its
# packets out of the machine's default route. So, while the cluster is up, the root namespace
# holds `unreachable 10.214.0.0/24` (a stray client fails at once, here), and `env` puts
# DIR/bin first on PATH: sbatch, srun, squeue, ... there are wrappers that enter the
# controller's namespace when called from the root namespace, run the command as is inside
# the cluster's namespaces (a job's own srun or scontrol), and refuse anywhere else.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=netns_lib.sh
source "$ROOT/scripts/netns_lib.sh"
cmd=${1:-status}
[[ $# -gt 0 ]] && shift
DIR=${SLURM_LOCAL_DIR:-$ROOT/build/slurm-local}
NODES=1
ARGS=()
if [[ $cmd == --dir ]]; then DIR=$1; cmd=${2:-status}; shift 2 || true; fi
if [[ $cmd == exec || $cmd == node-* ]]; then
  ARGS=("$@")
else
  while [[ $# -gt 0 ]]; do
    case $1 in
      --nodes) NODES=${2:-}; shift 2 || true ;;
      --nodes=*) NODES=${1#--nodes=}; shift ;;
      --dir) DIR=${2:-}; shift 2 || true ;;
      -*) echo "slurm-local: unknown option '$1'" >&2; exit 2 ;;
      *) DIR=$1; shift ;;
    esac
  done
fi
[[ $NODES =~ ^[0-9]+$ && $NODES -ge 1 && $NODES -le 16 ]] ||
  { echo "slurm-local: --nodes must be 1..16, got '$NODES'" >&2; exit 2; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/etc/slurm.conf
MUNGE_DIR=$DIR/munge
SOCK=$MUNGE_DIR/munge.socket
NODE=$(hostname -s)
# Multi-node: namespace names, subnet, the state file listing what start created.
PFX=srsl
SUBNET=10.214.0
NSTATE=$DIR/netns.state
CLIENTS=(sbatch srun salloc squeue scontrol scancel sinfo sacct sattach sprio sshare sstat)

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
  local port cpus mem
  port=$(free_port_pair)
  cpus=${SLURM_LOCAL_CPUS:-$(($(nproc) > 4 ? $(nproc) : 4))}
  mem=${SLURM_LOCAL_MEM_MB:-4096}
  mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run"
  : >"$DIR/etc/plugstack.conf"
  {
    cat <<EOF
# Written by scripts/slurm-local.sh: a private single-node cluster (not a system Slurm).
ClusterName=segreclocal
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmdSpoolDir=$DIR/spool
EOF
    conf_common "" CR_Core 30
    echo "NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    echo "PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
  } >"$CONF"
}

# The settings both layouts share. $1: suffix of slurmd's pid and log files ("" or "-%n");
# $2: SelectTypeParameters; $3: SlurmdTimeout (seconds before a silent node is DOWN).
conf_common() {
  cat <<EOF
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
AuthInfo=socket=$SOCK
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd$1.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd$1.log
PlugStackConfig=$DIR/etc/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=$2
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=$3
MinJobAge=600
KillWait=10
InactiveLimit=0
# Signals and requeue: a requeued job waits before it may start again (see docs/slurm.md).
JobRequeue=1
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

multi() { [[ -s $NSTATE || -s $DIR/nodes ]]; }  # DIR holds a multi-node cluster
# client CMD...: a Slurm client command against this cluster (multi-node: in the controller's
# namespace, where the test subnet is reachable).
client() {
  if multi; then
    nsenter --net="/run/netns/$PFX-ctl" env SLURM_CONF="$CONF" "$@"
  else
    SLURM_CONF=$CONF "$@"
  fi
}

up() {
  local want=1
  multi && want=$(cat "$DIR/nodes" 2>/dev/null || echo 1)
  [[ $(client sinfo -h -N -o '%N %T' 2>/dev/null | grep -cE ' (idle|mixed|allocated)$') -ge $want ]]
}

start() {
  need_packages
  if [[ $NODES -gt 1 ]]; then start_multi; return; fi
  multi && stop_multi quiet
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
  if multi; then stop_multi "$@"; return; fi
  if [[ -f $CONF ]] && pid_alive "$DIR/run/slurmctld.pid"; then
    client scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    # Give running steps a moment to end before their slurmd goes.
    for _ in $(seq 1 50); do
      [[ -z $(client squeue -h -t R,CG 2>/dev/null) ]] && break
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
  local rc=0 d i pids=("$MUNGE_DIR/munged.pid" "$DIR/run/slurmctld.pid" "$DIR/run/slurmd.pid")
  if multi; then
    pids=("$MUNGE_DIR/munged.pid" "$DIR/run/slurmctld.pid")
    for ((i = 0; i < $(cat "$DIR/nodes"); i++)); do pids+=("$DIR/run/slurmd-$PFX-n$i.pid"); done
    if route_present; then echo "guard route: $(ip route show type unreachable "$SUBNET.0/24")"
    else echo "guard route: missing"; rc=1; fi
  fi
  for d in "${pids[@]}"; do
    if pid_alive "$d"; then echo "$(basename "$d" .pid): running (pid $(cat "$d"))"
    else echo "$(basename "$d" .pid): stopped"; rc=1; fi
  done
  if [[ $rc -eq 0 ]]; then
    client sinfo -N -o '%N %T %c %m' || rc=1
    up || rc=1
  fi
  return $rc
}


# ---- N > 1 nodes in network namespaces -------------------------------------------------

check_nodes() {
  [[ $(id -u) -eq 0 ]] || { say "N > 1 nodes need root (network namespaces)"; return 1; }
  local b
  for b in ip nsenter unshare; do
    command -v "$b" >/dev/null || { say "'$b' is not installed"; return 1; }
  done
  ip netns list >/dev/null 2>&1 || { say "'ip netns' is unavailable"; return 1; }
  local probe=$PFX-probe$$
  ip netns add "$probe" 2>/dev/null || { say "cannot create network namespaces"; return 1; }
  if ! ip -n "$probe" link add br0 type bridge 2>/dev/null ||
     ! ip -n "$probe" link add v0 type veth peer name v1 2>/dev/null ||
     ! nsenter --net="/run/netns/$probe" unshare --uts true 2>/dev/null; then
    ip netns del "$probe"
    say "cannot create bridges, veth pairs or UTS namespaces here"
    return 1
  fi
  ip netns del "$probe"
}

record() { echo "$1 $2" >>"$NSTATE"; }  # kind name (netns_lib.sh)
route_present() { [[ -n $(ip route show type unreachable "$SUBNET.0/24" 2>/dev/null) ]]; }

net_up() {
  local n=$1 ns i
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns == "$PFX"-* ]] && die "namespace $ns exists (a multi-node cluster in another DIR? stop it first)"
  done
  : >"$NSTATE"
  # The guard route first: from here on no packet for the test subnet leaves the machine.
  route_present || ip route add unreachable "$SUBNET.0/24"
  route_present || die "cannot add the route 'unreachable $SUBNET.0/24'"
  record route "$SUBNET.0/24"
  netns_bridge "$PFX"
  netns_attach "$PFX" "$PFX-ctl" pctl "$SUBNET.1"
  for ((i = 0; i < n; i++)); do netns_attach "$PFX" "$PFX-n$i" "p$i" "$SUBNET.$((10 + i))"; done
}

write_conf_multi() {
  local n=$1 cpus mem i
  cpus=${SLURM_LOCAL_CPUS:-$(($(nproc) > 4 ? $(nproc) : 4))}
  mem=${SLURM_LOCAL_MEM_MB:-4096}
  mkdir -p "$DIR/etc" "$DIR/state" "$DIR/log" "$DIR/run"
  for ((i = 0; i < n; i++)); do mkdir -p "$DIR/spool/$PFX-n$i" "$DIR/tmp/$PFX-n$i"; done
  : >"$DIR/etc/plugstack.conf"
  {
    cat <<CONF
# Written by scripts/slurm-local.sh: a private $n-node cluster, one network namespace per node.
ClusterName=segreclocal
SlurmctldHost=$PFX-ctl($SUBNET.1)
SlurmctldPort=6817
SlurmdPort=6818
# Per node (%n): spool, TmpFS (srun --mpi=pmix keeps its files there), pid and log files.
SlurmdSpoolDir=$DIR/spool/%n
TmpFS=$DIR/tmp/%n
CONF
    # LLN: a job goes to the least loaded node, so small jobs (an array's tasks) spread out.
    # A node whose slurmd is gone (killed, link cut) is marked DOWN after 15 s.
    conf_common -%n CR_Core,CR_LLN 15
    for ((i = 0; i < n; i++)); do
      echo "NodeName=$PFX-n$i NodeAddr=$SUBNET.$((10 + i)) NodeHostname=$PFX-n$i CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    done
    echo "PartitionName=local Nodes=$PFX-n[0-$((n - 1))] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
  } >"$CONF"
  echo "$n" >"$DIR/nodes"
}

# The client wrappers in DIR/bin (see the header): put first on PATH by `env`.
make_wrappers() {
  local b nslist rootns
  mkdir -p "$DIR/bin"
  nslist=$(awk '$1 == "ns" { printf "%s ", $2 }' "$NSTATE")
  # The namespace start runs in (the root one, with the guard route), by device and inode.
  rootns=$(stat -L -c %d:%i /proc/self/ns/net)
  cat >"$DIR/bin/slurm-client" <<WRAP
#!/bin/sh
# Written by scripts/slurm-local.sh: runs a Slurm client command against the private cluster
# in $DIR, always inside its namespaces (the root namespace has no route to them).
name=\$(basename "\$0")
if [ "\$name" = slurm-client ]; then name=\$1; shift; fi
export SLURM_CONF="$CONF"
case \$name in */*) real=\$name ;; *) real=/usr/bin/\$name ;; esac
[ -x "\$real" ] || real=\$(PATH=\$(echo "\$PATH" | sed "s#$DIR/bin:##g") command -v "\$name") ||
  { echo "slurm-local: \$name not found" >&2; exit 127; }
here=\$(stat -L -c %d:%i /proc/self/ns/net)
for ns in $nslist; do
  if [ "\$(stat -L -c %d:%i /run/netns/\$ns 2>/dev/null)" = "\$here" ]; then exec "\$real" "\$@"; fi
done
if [ "$rootns" = "\$here" ]; then
  [ -e /run/netns/$PFX-ctl ] || { echo "slurm-local: the cluster in $DIR is not up" >&2; exit 1; }
  exec nsenter --net=/run/netns/$PFX-ctl "\$real" "\$@"
fi
echo "slurm-local: refusing to run \$name: not in the root namespace nor in the cluster's" >&2
exit 1
WRAP
  chmod +x "$DIR/bin/slurm-client"
  for b in "${CLIENTS[@]}"; do ln -sf slurm-client "$DIR/bin/$b"; done
}

# ns_daemon NS HOSTNAME PROGRAM ARGS...: starts a daemon in network namespace NS with its own
# hostname (it forks into the background and writes its pid file).
ns_daemon() {
  local ns=$1 host=$2 prog
  prog=$(path_of "$3"); shift 3
  # shellcheck disable=SC2016  # expanded by the inner shell
  nsenter --net="/run/netns/$ns" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' \
    "$host" "$prog" "$@"
}

start_slurmd() {
  local i=$1
  ns_daemon "$PFX-n$i" "$PFX-n$i" slurmd -f "$CONF" -N "$PFX-n$i" ||
    die "slurmd of $PFX-n$i did not start: $(tail -5 "$DIR/log/slurmd-$PFX-n$i.log" 2>/dev/null)"
}

start_multi() {
  local n=$NODES i
  if multi && [[ $(cat "$DIR/nodes" 2>/dev/null) == "$n" ]] && pid_alive "$DIR/run/slurmctld.pid" && up
  then
    say "already running ($n nodes, $CONF)"; return
  fi
  check_nodes || exit 1
  stop_daemons quiet
  # On any failure from here on, remove what was made.
  trap 'rc=$?; if [[ $rc -ne 0 ]]; then say "start failed; removing what it made"; stop_multi quiet; fi' EXIT
  net_up "$n"
  write_conf_multi "$n"
  make_wrappers
  start_munge
  ns_daemon "$PFX-ctl" "$PFX-ctl" slurmctld -f "$CONF" -i ||
    die "slurmctld did not start: $(tail -5 "$DIR/log/slurmctld.log")"
  for ((i = 0; i < n; i++)); do start_slurmd "$i"; done
  for _ in $(seq 1 300); do
    if up; then
      trap - EXIT
      say "up: $n nodes $PFX-n[0-$((n - 1))], controller $PFX-ctl, $CONF"
      return
    fi
    sleep 0.2
  done
  say "the nodes did not become idle within 60 s"
  tail -5 "$DIR/log/slurmctld.log" "$DIR"/log/slurmd-*.log >&2 || true
  exit 1
}

stop_multi() {
  local f kind name pid
  if [[ -f $CONF && -e /run/netns/$PFX-ctl ]] && pid_alive "$DIR/run/slurmctld.pid"; then
    client scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 25); do
      [[ -z $(client squeue -h -t R,CG 2>/dev/null) ]] && break
      sleep 0.2
    done
  fi
  # The daemons by their pid files: SIGTERM to all at once, then SIGKILL to any left after 10 s.
  local pids=()
  for f in "$DIR"/run/slurmd-*.pid "$DIR/run/slurmctld.pid"; do
    if pid_alive "$f"; then pids+=("$(cat "$f")"); kill "$(cat "$f")" 2>/dev/null || true; fi
    rm -f "$f"
  done
  local left
  for _ in $(seq 1 100); do
    left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [[ $left -eq 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  # Then whatever is left in the namespaces (steps, ranks), and the namespaces themselves:
  # only the objects the state file lists, with the prefix.
  if [[ -s $NSTATE ]]; then
    while read -r kind name; do
      case $kind in
        ns)
          [[ $name == "$PFX"-* ]] || { say "skipping '$kind $name'"; continue; }
          if [[ -e /run/netns/$name ]]; then
            for pid in $(ip netns pids "$name" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$name" || say "could not remove namespace $name"
          fi
          ;;
        route)
          [[ $name == "$SUBNET.0/24" ]] || { say "skipping '$kind $name'"; continue; }
          if route_present; then ip route del unreachable "$name" || say "could not remove the route $name"; fi
          ;;
      esac
    done < <(tac "$NSTATE")
  fi
  stop_pidfile "$MUNGE_DIR/munged.pid"
  rm -f "$NSTATE" "$DIR/nodes"
  rm -rf "${DIR:?}/bin"
  [[ ${1:-} == quiet ]] || say "stopped ($DIR)"
}

node_ns() {
  local i=${1:-}
  multi || die "no multi-node cluster in $DIR"
  [[ $i =~ ^[0-9]+$ && -e /run/netns/$PFX-n$i ]] || die "no node $i"
  echo "$PFX-n$i"
}

node_cmd() {
  local what=$1 i=${ARGS[0]:-} ns pid
  ns=$(node_ns "$i")
  case $what in
    node-kill)
      # Every process of the node: its slurmd, the job steps and the ranks there.
      for _ in 1 2 3 4 5; do
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
        [[ -z $(ip netns pids "$ns") ]] && break
        sleep 0.2
      done
      ;;
    node-cut) ip -n "$PFX-sw" link set "p$i" down ;;
    node-restore)
      ip -n "$PFX-sw" link set "p$i" up
      pid_alive "$DIR/run/slurmd-$ns.pid" || start_slurmd "$i"
      client scontrol update nodename="$ns" state=resume >/dev/null 2>&1 || true
      for _ in $(seq 1 150); do
        client sinfo -h -n "$ns" -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)$' &&
          { say "$ns is back"; return; }
        sleep 0.2
      done
      die "$ns did not come back: $(client sinfo -h -n "$ns" -o '%T %E' 2>&1)"
      ;;
  esac
}

run_client() {
  [[ ${#ARGS[@]} -gt 0 ]] || die "usage: $0 exec CMD..."
  [[ -f $CONF ]] || die "no cluster in $DIR (run: $0 start $DIR)"
  if multi; then
    exec "$DIR/bin/slurm-client" env PATH="$DIR/bin:$PATH" SLURM_CONF="$CONF" "${ARGS[@]}"
  fi
  SLURM_CONF=$CONF exec "${ARGS[@]}"
}

case $cmd in
  start) start ;;
  stop) stop_daemons ;;
  status) status ;;
  env)
    [[ -f $CONF ]] || die "no cluster in $DIR (run: $0 start $DIR)"
    echo "export SLURM_CONF=$CONF"
    if multi; then
      n=$(cat "$DIR/nodes")
      echo "export PATH=$DIR/bin:\$PATH"
      echo "export SLURM_LOCAL_NODES=$n SLURM_LOCAL_CTL_NS=$PFX-ctl SLURM_LOCAL_SUBNET=$SUBNET.0/24"
      echo "export SLURM_LOCAL_NODE_NAMES='$(for ((i = 0; i < n; i++)); do printf '%s ' "$PFX-n$i"; done | sed 's/ $//')'"
    else
      echo "export SLURM_LOCAL_NODES=1"
    fi
    ;;
  exec) run_client ;;
  check-nodes) check_nodes ;;
  node-kill | node-cut | node-restore) node_cmd "$cmd" ;;
  *) die "usage: $0 start|stop|status|env [DIR] [--nodes N] | exec CMD... | node-kill|node-cut|node-restore I" ;;
esac
