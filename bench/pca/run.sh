#!/usr/bin/env bash
# PCA benchmark: `segrec project` (distributed randomized PCA, -n 1 and -n 2) against
# scikit-learn TruncatedSVD(algorithm='randomized') on the same profile matrix, same
# n_iter (power iterations), n_components = DIMS, in one run on the same cores.
#
# usage: bench/pca/run.sh [USERS] [ITEMS]      (defaults 1000000 and 20000)
# env:   SEGREC (executable, default build/segrec), WORK (data directory, default
#        /tmp/segrec-bench-pca), DIMS (64), ITERS (2), REPEAT (3: best of REPEAT runs each)
#
# The data set is made by `segrec generate` (seeded; planted segments) -> ingest ->
# profile --item-categories, and reused when already there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEGREC=${SEGREC:-$ROOT/build/segrec}
WORK=${WORK:-/tmp/segrec-bench-pca}
USERS=${1:-1000000}
ITEMS=${2:-20000}
DIMS=${DIMS:-64}
ITERS=${ITERS:-2}
REPEAT=${REPEAT:-3}
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none"
mkdir -p "$WORK"
P="$WORK/profiles_${USERS}_${ITEMS}.h5"

if [[ ! -f $P ]]; then
  echo "== data: $USERS users, $ITEMS items (segrec generate -> ingest -> profile)"
  $MPI -n 2 "$SEGREC" generate --users "$USERS" --items "$ITEMS" --seed 42 \
    --events "$WORK/events.csv" --items-out "$WORK/items.csv" -q
  $MPI -n 2 "$SEGREC" ingest --events "$WORK/events.csv" --out "$WORK/dataset.h5" -q
  $MPI -n 2 "$SEGREC" profile --data "$WORK/dataset.h5" --item-categories "$WORK/items.csv" \
    --out "$P" -q
  rm -f "$WORK/events.csv"
fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
declare -A FIT TOTAL
for np in 1 2; do
  best_fit=; best_total=
  for _ in $(seq "$REPEAT"); do
    out=$($MPI -n $np "$SEGREC" project --profiles "$P" --dims "$DIMS" \
            --power-iterations "$ITERS" --out "$WORK/projection.h5" -v)
    # fit + project = the work TruncatedSVD.fit_transform does (no file I/O)
    fit=$(sed -nE 's/.*seconds: read [0-9.]+, fit ([0-9.]+), project ([0-9.]+).*/\1 \2/p' <<<"$out" |
          awk '{printf "%.3f", $1 + $2}')
    total=$(sed -nE 's/.*done in ([0-9.]+) s.*/\1/p' <<<"$out")
    if [[ -z $best_fit ]] || awk "BEGIN{exit !($fit < $best_fit)}"; then best_fit=$fit; fi
    if [[ -z $best_total ]] || awk "BEGIN{exit !($total < $best_total)}"; then best_total=$total; fi
  done
  FIT[$np]=$best_fit; TOTAL[$np]=$best_total
  echo "segrec -n $np: fit+project ${best_fit} s, whole command (with HDF5 I/O) ${best_total} s"
  if [[ $np == 2 ]]; then
    grep -E "block k|bytes sent per|total explained" <<<"$out" | sed 's/^ */  /'
  fi
done

peer=$(/usr/bin/python3 "$ROOT/bench/pca/sklearn_peer.py" "$P" "$DIMS" "$ITERS" \
         --repeat "$REPEAT" --check "$WORK/projection.h5")
echo "$peer"
sk=$(sed -nE 's/^sklearn fit_transform seconds ([0-9.]+)/\1/p' <<<"$peer")

D=$(( ITEMS + $(/usr/bin/python3 -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['dense/names'].shape[0])" "$P") ))
K=$(( (DIMS + 10 + 15) / 16 * 16 ))
echo "bytes per X^T pass (formula 8 (D + 1) k, D = $D features, k = $K): $(( 8 * (D + 1) * K ))"
for np in 1 2; do
  awk -v s="$sk" -v f="${FIT[$np]}" -v t="${TOTAL[$np]}" -v n="$np" 'BEGIN {
    printf "ratio sklearn / segrec -n %d: %.2fx (compute), %.2fx (whole command)\n", n, s / f, s / t }'
done
