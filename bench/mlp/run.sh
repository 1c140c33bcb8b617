#!/usr/bin/env bash
# segrec train against PyTorch (CPU, 2 threads) on the same MLP shape, batch and loss:
# training samples/s, bytes per step, share of step time in the exchange for each
# --grad-sync mode (allreduce, buckets, sharded, items), and the strong scaling from 1 to 2 ranks.
#   bench/mlp/run.sh [REPEATS] [PEER_REPEATS]   (default 5 and 2: the best run of each
#   contender is kept, which filters out other jobs on a shared machine)
# Shapes: input 64 (dense, the projection) or the item history (sparse in segrec,
# dense of the same width in PyTorch), hidden 256,256 (ReLU), 3706 or 20000 items,
# batch 256, softmax loss, Adam; one warm-up epoch, then one timed epoch.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPEATS=${1:-5}
PEER_REPEATS=${2:-2}
"$ROOT/scripts/setup.sh" --bench
"$ROOT/scripts/build.sh" >/dev/null
BENCH="$ROOT/build/segrec_mlp_bench"
PEER=${PEER:-/work/shared/anchors/mlp_peer.py}
MPI=(mpirun --oversubscribe --bind-to core)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)

# best_of N CMD...: runs CMD N times, prints (as one line) the JSON object of the run with
# the most samples/s.
best_of() {
  local best="" out n=$1
  shift
  for ((i = 0; i < n; i++)); do
    out=$("$@")
    best=$(python3 - "$best" "$out" <<'PY'
import json, sys
def parse(s):
    return json.loads(s[s.index("{"):s.rindex("}") + 1])
a = parse(sys.argv[1]) if sys.argv[1] else None
b = parse(sys.argv[2])
print(json.dumps(a if a and a["samples_per_s"] >= b["samples_per_s"] else b))
PY
)
  done
  echo "$best"
}

printf '%-9s %-6s %6s | %9s | %9s %6s | %-24s | %-24s | %-24s | %-24s | %7s | %11s\n' \
  input items users "torch s/s" "-n1 s/s" "x" "-n2 allreduce s/s x comm" "-n2 buckets s/s x comm" \
  "-n2 sharded s/s x comm" "-n2 items s/s x comm" "scaling" "sync B/step"
for cfg in "projected 3706 10000 64" "projected 20000 4000 64" \
           "history 3706 10000 3706" "history 20000 3000 20000"; do
  read -r input items users d <<<"$cfg"
  peer=$(best_of "$PEER_REPEATS" /usr/bin/python3 "$PEER" --n "$users" --d "$d" --hidden 256,256 --items "$items" \
           --batch 256 --loss softmax --threads 2)
  args=(--users "$users" --input "$input" --d 64 --hidden 256,256 --items "$items" --batch 256 \
        --loss softmax --epochs 2)
  s1=$(best_of "$REPEATS" "$BENCH" "${args[@]}")
  runs=()
  for sync in allreduce buckets sharded items; do
    runs+=("$(best_of "$REPEATS" "${MPI[@]}" -n 2 "$BENCH" "${args[@]}" --grad-sync "$sync")")
  done
  python3 - "$input" "$items" "$users" "$peer" "$s1" "${runs[@]}" <<'PY'
import json, sys
inp, items, users = sys.argv[1:4]
p, a, *two = (json.loads(x) for x in sys.argv[4:])
t, r1 = p["samples_per_s"], a["samples_per_s"]
cells = [f"{b['samples_per_s']:7.0f} {b['samples_per_s']/t:5.2f}x {100*b['comm_share']:5.1f}%" for b in two]
default = two[3]
print(f"{inp:9s} {items:6s} {users:>6s} | {t:9.0f} | {r1:9.0f} {r1/t:5.2f}x | " + " | ".join(f"{c:24s}" for c in cells)
      + f" | {default['samples_per_s']/r1:6.2f}x | {default['sync_bytes_per_step']:11d}")
PY
done
echo "x: samples/s against PyTorch; comm: share of the -n 2 step time in the exchange"
echo "(waiting for the slower rank included); scaling: -n 2 (items, the default) over -n 1;"
echo "sync B/step: bytes each rank sends in messages per step in the default exchange (the"
echo "batch's activations and targets, and the shares of the layers between the item layers)."
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; other jobs on the machine slow every contender)"
