#!/usr/bin/env bash
# Audience benchmark: `segrec audience` (-n 1 and -n 2) against a numpy/scipy peer that
# scores the same users with the same network on the same items (bench/audience/numpy_peer.py),
# on the same data and cores; prints the times, the ratio and whether the audiences agree.
#
# usage: bench/audience/run.sh [USERS] [ITEMS]   (defaults 1,000,000 users, 20,000 items)
# env:   SEGREC (executable, default build/segrec), WORK (data directory, default
#        /tmp/segrec-bench-audience), N_ITEMS (items per audience run, 10), TOP (1000),
#        HIDDEN (32), REPEAT (3: best of REPEAT runs each)
# The data set is made by `segrec generate` (seeded) -> ingest; the model by one epoch of
# `segrec train --input history` (the scoring time does not depend on the weights).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${1:-1000000}
ITEMS=${2:-20000}
SEGREC=${SEGREC:-$ROOT/build/segrec}
WORK=${WORK:-/tmp/segrec-bench-audience}
N_ITEMS=${N_ITEMS:-10}
TOP=${TOP:-1000}
HIDDEN=${HIDDEN:-32}
REPEAT=${REPEAT:-3}
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none"
mkdir -p "$WORK"
D="$WORK/dataset_${USERS}_${ITEMS}.h5"
M="$WORK/model_${USERS}_${ITEMS}_h${HIDDEN}.h5"

if [[ ! -f $D ]]; then
  echo "== data: $USERS users, $ITEMS items (segrec generate -> ingest)"
  $MPI -n 2 "$SEGREC" generate --users "$USERS" --items "$ITEMS" --seed 42 \
    --events "$WORK/events.csv" -q
  $MPI -n 2 "$SEGREC" ingest --events "$WORK/events.csv" --out "$D" -q
  rm -f "$WORK/events.csv"
fi
if [[ ! -f $M ]]; then
  echo "== model: one epoch, history input, hidden $HIDDEN"
  $MPI -n 2 "$SEGREC" train --data "$D" --input history --hidden "$HIDDEN" --epochs 1 \
    --batch-size 4096 --val-users 0.01 --checkpoint-every 0 --out "$M" -q
fi
# N_ITEMS item ids spread over the catalogue.
IDS=$(/usr/bin/python3 -c 'import h5py, sys
ids = [s.decode() for s in h5py.File(sys.argv[1], "r")["items/ids"][:]]
n = int(sys.argv[2])
print(",".join(ids[:: max(1, len(ids) // n)][:n]))' "$D" "$N_ITEMS")

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $N_ITEMS items, top $TOP: $IDS"
declare -A BEST
for np in 1 2; do
  best=
  for _ in $(seq "$REPEAT"); do
    t0=$(date +%s.%N)
    $MPI -n $np "$SEGREC" audience --model "$M" --data "$D" --items "$IDS" --top "$TOP" \
      --out "$WORK/segrec_$np.csv" -q
    t=$(echo "$(date +%s.%N) - $t0" | bc)
    best=$(echo "$t $best" | awk '{ print ($2 == "" || $1 < $2) ? $1 : $2 }')
  done
  BEST[$np]=$best
  echo "segrec audience -n $np: $best s (whole command: mpirun, reading both files, scoring, writing)"
done
cmp -s "$WORK/segrec_1.csv" "$WORK/segrec_2.csv" && echo "segrec -n 1 and -n 2: identical files" ||
  echo "segrec -n 1 and -n 2 differ"

peer_best=; peer_load=; peer_score=
for _ in $(seq "$REPEAT"); do
  t0=$(date +%s.%N)
  out=$(/usr/bin/python3 "$ROOT/bench/audience/numpy_peer.py" "$M" "$D" "$IDS" "$TOP" "$WORK/peer.csv")
  t=$(echo "$(date +%s.%N) - $t0" | bc)
  if [[ -z $peer_best ]] || (($(echo "$t < $peer_best" | bc))); then
    peer_best=$t
    peer_load=$(echo "$out" | awk '/load seconds/ { print $4 }')
    peer_score=$(echo "$out" | awk '/score seconds/ { print $4 }')
  fi
done
echo "numpy peer (1 process): $peer_best s (load $peer_load s, score $peer_score s)"
same=$(awk -F, 'NR == FNR { a[$1 "," $3] = 1; next } FNR > 1 && ($1 "," $3) in a { n++ } END { print n + 0 }' \
  "$WORK/segrec_1.csv" "$WORK/peer.csv")
echo "audience agreement: $same of $(($(wc -l <"$WORK/peer.csv") - 1)) (item, user) pairs in both"
for np in 1 2; do
  awk -v p="$peer_best" -v s="${BEST[$np]}" -v n=$np \
    'BEGIN { printf "ratio peer / segrec -n %d: %.2fx (whole command)\n", n, p / s }'
done
