#!/usr/bin/env bash
# Lookalike benchmark: `segrec similar` (exact, ring of blocks, -n 1 and -n 2) against faiss
# IndexFlatIP / IndexFlatL2 with 2 threads, every user against every user, same vectors, same
# cores; prints the recall of segrec against faiss and the ratio. Wall times and CPU
# seconds (all processes and threads: on a shared machine the CPU seconds are the fairer
# comparison, the wall times the one a user sees).
#
# usage: bench/similar/run.sh [USERS] [DIMS]      (defaults 200000 and 64)
# env:   SEGREC (executable, default build/segrec), WORK (default /tmp/segrec-bench-similar),
#        TOP (10), METRICS ("ip l2"), REPEAT (1: best of REPEAT runs each), NPS ("1 2")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEGREC=${SEGREC:-$ROOT/build/segrec}
WORK=${WORK:-/tmp/segrec-bench-similar}
USERS=${1:-200000}
DIMS=${2:-64}
TOP=${TOP:-10}
METRICS=${METRICS:-ip l2}
REPEAT=${REPEAT:-1}
NPS=${NPS:-1 2}
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none"
mkdir -p "$WORK"
P="$WORK/vectors_${USERS}_${DIMS}.h5"
[[ -f $P ]] || /usr/bin/python3 "$ROOT/bench/similar/make_vectors.py" "$P" "$USERS" "$DIMS"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== data: $USERS users x $DIMS dims (bench/similar/make_vectors.py), top $TOP"
for metric in $METRICS; do
  declare -A SEARCH=() WALL=() CPU=()
  for np in $NPS; do
    best=; bestw=; bestc=
    for _ in $(seq "$REPEAT"); do
      t0=$(date +%s.%N)
      out=$(/usr/bin/time -f "cpu %U %S" -o "$WORK/time" $MPI -n "$np" "$SEGREC" similar \
              --projection "$P" --top "$TOP" --metric "$metric" --out "$WORK/similar_$metric.csv")
      w=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
      c=$(awk '/^cpu/ { printf "%.2f", $2 + $3 }' "$WORK/time")
      if [[ -z $bestc ]] || awk "BEGIN{exit !($c < $bestc)}"; then bestc=$c; fi
      s=$(sed -nE 's/.*search ([0-9.]+) s on.*/\1/p' <<<"$out")
      if [[ -z $best ]] || awk "BEGIN{exit !($s < $best)}"; then best=$s; fi
      if [[ -z $bestw ]] || awk "BEGIN{exit !($w < $bestw)}"; then bestw=$w; fi
    done
    SEARCH[$np]=$best; WALL[$np]=$bestw; CPU[$np]=$bestc
    echo "segrec similar -n $np --metric $metric: search $best s, whole command $bestw s," \
      "CPU $bestc s (whole command)"
  done
  peer=$(OMP_NUM_THREADS=2 /usr/bin/python3 "$ROOT/bench/similar/faiss_peer.py" "$P" "$TOP" \
           "$metric" 2 --repeat "$REPEAT" --check "$WORK/similar_$metric.csv")
  echo "$peer"
  fs=$(sed -nE 's/.*search seconds ([0-9.]+).*/\1/p' <<<"$peer")
  fc=$(sed -nE 's/.*search CPU seconds ([0-9.]+).*/\1/p' <<<"$peer")
  for np in $NPS; do
    awk -v f="$fs" -v fc="$fc" -v s="${SEARCH[$np]}" -v w="${WALL[$np]}" -v c="${CPU[$np]}" \
        -v n="$np" -v m="$metric" 'BEGIN {
      printf "ratio faiss (2 threads) / segrec -n %d, %s: %.2fx (search wall), %.2fx (whole " \
             "command wall), %.2fx (CPU seconds: faiss search / segrec whole command)\n",
             n, m, f / s, f / w, fc / c }'
  done
done
