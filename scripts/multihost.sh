#!/usr/bin/env bash
# Test hosts on one machine: N Linux network namespaces joined by a bridge, so
# Open MPI runs a job across "hosts" over TCP only (no shared memory between
# them), and a host's link can be cut or its processes killed.
#
#   scripts/multihost.sh up N [--slots S]   create hosts srmh-h0..h(N-1) (S ranks each, default 1)
#   scripts/multihost.sh down               remove everything `up` created (nothing else)
#   scripts/multihost.sh env                print shell exports (MH_DIR, MH_MPIRUN, MH_HOSTFILE, ...)
#   scripts/multihost.sh cut I | restore I  take host I's link down / up again
#   scripts/multihost.sh kill I             kill every process inside host I's namespace
#   scripts/multihost.sh check              exit 0 when this machine can create hosts (root, ip netns)
#   scripts/multihost.sh route              exit 0 when the root namespace's guard route is in place
#
# Layout (all inside namespaces; the root namespace gets no address and no link):
#   srmh-sw      holds the bridge srmh-br and one port per host (pI, plus pctl)
#   srmh-ctl     the launcher: mpirun runs here, 10.213.0.1/24
#   srmh-hI      host I, eth0 = 10.213.0.(10+I)/24
# Open MPI starts its daemons through the rsh launcher with $MH_DIR/agent in
# place of ssh: the agent runs the daemon's command inside the host's namespace.
# `$MH_MPIRUN -n 3 segrec ...` runs a job with TCP as the only transport.
# State: $SEGREC_MH_DIR (default /run/segrec-multihost); `down` reads its state
# file and deletes only prefix-named objects listed there.
# While hosts are up the root namespace holds `unreachable 10.213.0.0/24`: it has no
# address on the test subnet, so a client started there by mistake would otherwise send
# its packets out of the machine's default route; with the route it fails at once here.
# `down` removes the route when no other set of hosts (another prefix) is still up.
set -euo pipefail
# shellcheck source=netns_lib.sh
source "$(dirname "$0")/netns_lib.sh"

MH_DIR=${SEGREC_MH_DIR:-/run/segrec-multihost}
# Object names start with "srmh"; SEGREC_MH_PREFIX=srmhX lets two sets of hosts coexist.
PREFIX=${SEGREC_MH_PREFIX:-srmh}
[[ $PREFIX =~ ^srmh[a-z0-9]{0,4}$ ]] || { echo "multihost: SEGREC_MH_PREFIX must be srmh plus up to 4 of [a-z0-9]" >&2; exit 2; }
SUBNET=10.213.0
STATE=$MH_DIR/state

die() { echo "multihost: $*" >&2; exit 1; }

check() {
  [[ $(id -u) -eq 0 ]] || { echo "multihost: needs root (creates network namespaces)" >&2; return 1; }
  command -v ip >/dev/null || { echo "multihost: 'ip' (iproute2) not installed" >&2; return 1; }
  command -v mpirun >/dev/null || { echo "multihost: mpirun not found" >&2; return 1; }
  ip netns list >/dev/null 2>&1 || { echo "multihost: 'ip netns' unavailable" >&2; return 1; }
  # Probe: a namespace can be created and removed here (containers may forbid it).
  local probe="$PREFIX-probe$$"
  ip netns add "$probe" 2>/dev/null || { echo "multihost: cannot create network namespaces" >&2; return 1; }
  # ... and hold a bridge and a veth pair (kernel modules may be missing).
  if ! ip -n "$probe" link add br0 type bridge 2>/dev/null ||
     ! ip -n "$probe" link add v0 type veth peer name v1 2>/dev/null; then
    ip netns del "$probe"
    echo "multihost: cannot create bridges or veth pairs in a namespace" >&2
    return 1
  fi
  ip netns del "$probe"
}

record() { echo "$1 $2" >>"$STATE"; }  # kind name

# The guard route: added once (shared by every set of hosts), listed in each state file.
route_present() { [[ -n $(ip route show type unreachable "$SUBNET.0/24" 2>/dev/null) ]]; }
guard_route() {
  route_present || ip route add unreachable "$SUBNET.0/24"
  route_present || die "cannot add the guard route 'unreachable $SUBNET.0/24'"
  record route "$SUBNET.0/24"
}
# Removed when no set of hosts is left (the switch namespaces are named PREFIX-sw).
unguard_route() {
  if ip netns list | awk '{print $1}' | grep -qE '^srmh[a-z0-9]{0,4}-sw$'; then
    echo "multihost: another set of hosts is up; keeping the route for $1" >&2
    return 0
  fi
  route_present && ip route del unreachable "$1"
  return 0
}

up() {
  local n=$1 slots=1
  shift
  [[ ${1:-} == --slots ]] && slots=$2
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 64 ]] || die "up N: N must be 1..64, got '$n'"
  [[ $slots =~ ^[0-9]+$ && $slots -ge 1 ]] || die "--slots must be >= 1, got '$slots'"
  [[ -e $STATE ]] && die "hosts already up ($STATE); run 'down' first"
  check || exit 1
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns == "$PREFIX"-* ]] && die "namespace $ns exists (another set of hosts?); use another SEGREC_MH_DIR and SEGREC_MH_PREFIX, or remove it"
  done
  mkdir -p "$MH_DIR"
  : >"$STATE"
  trap 'echo "multihost: up failed; cleaning up" >&2; down' ERR
  guard_route

  netns_bridge "$PREFIX"
  netns_attach "$PREFIX" "$PREFIX-ctl" pctl "$SUBNET.1"
  local hosts=()
  for ((i = 0; i < n; i++)); do
    netns_attach "$PREFIX" "$PREFIX-h$i" "p$i" "$SUBNET.$((10 + i))"
    hosts+=("$PREFIX-h$i")
  done

  : >"$MH_DIR/hostfile"
  for h in "${hosts[@]}"; do echo "$h slots=$slots" >>"$MH_DIR/hostfile"; done

  # The rsh agent: "agent HOST CMD..." runs CMD in HOST's namespace (a shell
  # command line, as ssh would run it).
  cat >"$MH_DIR/agent" <<EOF
#!/bin/sh
host=\$1; shift
case "\$host" in $PREFIX-h*) ;; *) echo "multihost agent: unknown host \$host" >&2; exit 255 ;; esac
# Every host has the same hostname, so its own TMPDIR keeps the Open MPI session
# directories of the daemons apart (created concurrently in one directory they race).
mkdir -p "$MH_DIR/tmp/\$host"
export TMPDIR="$MH_DIR/tmp/\$host"
exec ip netns exec "\$host" /bin/sh -c "\$*"
EOF
  chmod +x "$MH_DIR/agent"

  # mpirun wrapper: launcher namespace, the hostfile, TCP only on the test subnet.
  cat >"$MH_DIR/mpirun" <<EOF
#!/bin/sh
exec ip netns exec $PREFIX-ctl mpirun --allow-run-as-root --hostfile "$MH_DIR/hostfile" \\
  --mca plm_rsh_agent "$MH_DIR/agent" --mca plm_rsh_no_tree_spawn 1 \\
  --mca btl tcp,self --mca btl_tcp_if_include $SUBNET.0/24 --mca oob_tcp_if_include $SUBNET.0/24 \\
  --mca oob_tcp_keepalive_time 25 --mca oob_tcp_keepalive_intvl 5 --mca oob_tcp_keepalive_probes 2 \\
  --mca pml ob1 --mca osc ^ucx --bind-to none "\$@"
EOF
  chmod +x "$MH_DIR/mpirun"
  trap - ERR
  echo "multihost: $n host(s) up ($slots slot(s) each); state in $MH_DIR"
}

down() {
  [[ -e $STATE ]] || { echo "multihost: nothing to remove ($STATE missing)"; return 0; }
  # Hosts first (their processes, then the namespaces), the switch last.
  tac "$STATE" | while read -r kind name; do
    if [[ $kind == route && $name == "$SUBNET.0/24" ]]; then unguard_route "$name"; continue; fi
    [[ $kind == ns && $name == "$PREFIX"-* ]] || { echo "multihost: skipping '$kind $name'" >&2; continue; }
    if ip netns list | awk '{print $1}' | grep -qx "$name"; then
      for pid in $(ip netns pids "$name" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$name" || echo "multihost: could not remove $name" >&2
    fi
  done
  rm -f "$STATE" "$MH_DIR/hostfile" "$MH_DIR/agent" "$MH_DIR/mpirun"
  rm -rf "$MH_DIR/tmp"
  rmdir "$MH_DIR" 2>/dev/null || true
  echo "multihost: down"
}

host_ns() {
  local i=$1
  [[ -e $STATE ]] || die "no hosts up"
  grep -qx "ns $PREFIX-h$i" "$STATE" || die "no host $i"
  echo "$PREFIX-h$i"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  check) check ;;
  route) route_present && ip route show type unreachable "$SUBNET.0/24" ;;  # exit 0 when in place
  env)
    [[ -e $STATE ]] || die "no hosts up"
    echo "export MH_DIR=$MH_DIR MH_MPIRUN=$MH_DIR/mpirun MH_HOSTFILE=$MH_DIR/hostfile"
    echo "export MH_HOSTS=$(grep -c . "$MH_DIR/hostfile")"
    ;;
  cut) host_ns "$2" >/dev/null; ip -n "$PREFIX-sw" link set "p$2" down ;;
  restore) host_ns "$2" >/dev/null; ip -n "$PREFIX-sw" link set "p$2" up ;;
  kill)
    ns=$(host_ns "$2")
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
    ;;
  *) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
