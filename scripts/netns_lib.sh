# Test hosts on one machine: network namespaces whose eth0 is a port of one bridge, which
# sits in its own namespace. Sourced by scripts/multihost.sh and scripts/slurm-local.sh.
# The caller defines `record KIND NAME` (what its teardown removes).

# netns_bridge PFX: the namespace PFX-sw holding the bridge PFX-br.
netns_bridge() {
  ip netns add "$1-sw" && record ns "$1-sw"
  ip -n "$1-sw" link add "$1-br" type bridge
  ip -n "$1-sw" link set "$1-br" up
  ip -n "$1-sw" link set lo up
}

# netns_attach PFX NS PORT ADDR: a namespace NS whose eth0 (ADDR/24) is the bridge port PORT.
netns_attach() {
  local pfx=$1 ns=$2 port=$3 addr=$4
  ip netns add "$ns" && record ns "$ns"
  ip link add "$pfx-tmp$$" type veth peer name "$port" netns "$pfx-sw"
  ip link set "$pfx-tmp$$" netns "$ns"
  ip -n "$ns" link set "$pfx-tmp$$" name eth0
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  # An unreachable peer (a cut link) ends TCP connections in about 6 s, not ~15 minutes.
  nsenter --net="/run/netns/$ns" sh -c 'echo 4 >/proc/sys/net/ipv4/tcp_retries2'
  ip -n "$pfx-sw" link set "$port" master "$pfx-br"
  ip -n "$pfx-sw" link set "$port" up
}
