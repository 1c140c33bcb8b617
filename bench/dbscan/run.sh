#!/usr/bin/env bash
# DBSCAN benchmark: `segrec cluster --algorithm dbscan` (whole command, -n 2 x 1 thread and
# -n 1 x 2 threads) against scikit-learn DBSCAN(eps, min_samples, n_jobs=2) on the same /H,
# same 2 cores; prints both times, the ratio and whether the labels agree.
#
# usage: bench/dbscan/run.sh            env: N (100000), D (16), EPS (3.5), MIN_SAMPLES (10),
#        REPEAT (3: best of, segrec), SK_REPEAT (1), SEGREC (build/segrec), WORK (data dir)
# The data: make_data.py (10 unit Gaussian blobs, 10% uniform noise, seed 0), reused when
# already there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/dbscan
SEGREC=${SEGREC:-$ROOT/build/segrec}
N=${N:-100000}
D=${D:-16}
EPS=${EPS:-3.5}
MS=${MIN_SAMPLES:-10}
REPEAT=${REPEAT:-3}
SK_REPEAT=${SK_REPEAT:-1}
WORK=${WORK:-/tmp/segrec-bench-dbscan-${N}x${D}}
MPI="mpirun --oversubscribe --allow-run-as-root --bind-to none"
[ -x "$SEGREC" ] || { echo "no $SEGREC: build first" >&2; exit 1; }
mkdir -p "$WORK"
[[ -f $WORK/projection.h5 ]] || /usr/bin/python3 "$HERE/make_data.py" --n "$N" --d "$D" --out "$WORK"

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
best=
best_cfg=
declare -A CPU
for cfg in "2 1" "1 2"; do
  read -r np th <<<"$cfg"
  b=
  bc=
  for _ in $(seq "$REPEAT"); do
    t0=$(date +%s.%N)
    out=$(/usr/bin/time -f "cpu %U %S" -o "$WORK/cpu" $MPI -n "$np" "$SEGREC" cluster \
            --projection "$WORK/projection.h5" --algorithm dbscan --eps "$EPS" \
            --min-samples "$MS" --threads "$th" --out "$WORK/segments_$np.h5")
    t1=$(date +%s.%N)
    t=$(awk "BEGIN{printf \"%.3f\", $t1 - $t0}")
    c=$(awk '/^cpu/{printf "%.3f", $2 + $3}' "$WORK/cpu")
    if [[ -z $b ]] || awk "BEGIN{exit !($t < $b)}"; then b=$t; fi
    if [[ -z $bc ]] || awk "BEGIN{exit !($c < $bc)}"; then bc=$c; fi
  done
  echo "segrec -n $np x $th thread(s): whole command ${b} s, cpu ${bc} s (best of $REPEAT)"
  CPU[$np]=$bc
  grep -E "^eps|clusters;" <<<"$out" | sed 's/^/  /'
  if [[ -z $best ]] || awk "BEGIN{exit !($b < $best)}"; then best=$b; best_cfg="-n $np x $th"; fi
done
/usr/bin/python3 - "$WORK" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(f"{sys.argv[1]}/segments_{r}.h5", "r") for r in (1, 2))
same = all(np.array_equal(a[d][:], b[d][:]) for d in ("labels", "core"))
print("segrec labels and core flags identical at 1 and 2 ranks:", same)
PY
peer=$(/usr/bin/python3 "$HERE/sklearn_peer.py" "$WORK/projection.h5" "$EPS" "$MS" --jobs 2 \
         --repeat "$SK_REPEAT" --check "$WORK/segments_1.h5" --truth "$WORK/truth.npy")
echo "$peer"
sk=$(sed -nE 's/^sklearn fit seconds ([0-9.]+)/\1/p' <<<"$peer")
skc=$(sed -nE 's/^sklearn fit cpu seconds ([0-9.]+).*/\1/p' <<<"$peer")
echo "== ratio: sklearn fit ${sk} s / segrec ($best_cfg) whole command ${best} s = $(awk \
  "BEGIN{printf \"%.1f\", $sk / $best}")x"
echo "== cpu ratio (fair under load): sklearn ${skc} s / segrec -n 1 x 2 ${CPU[1]} s = $(awk \
  "BEGIN{printf \"%.1f\", $skc / ${CPU[1]}}")x, / segrec -n 2 ${CPU[2]} s = $(awk \
  "BEGIN{printf \"%.1f\", $skc / ${CPU[2]}}")x"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
