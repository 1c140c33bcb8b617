#!/usr/bin/env bash
# Many items, item-parallel training (--grad-sync items, the default): the training stage's
# memory estimate per rank (from --max-memory-per-rank's refusal line) against the measured
# peak, and seconds per step, at ITEMS items on RANKS ranks at width HIDDEN (default 1000, the
# width --hidden auto keeps where it fits).
#
#   bench/scale/items.sh ITEMS [RANKS=2] [USERS=2*ITEMS] [STEPS=3]
#   env: SEGREC (default build/segrec), WORK (data folder), KEEP=1 keeps the data,
#        HIDDEN (1000; auto lets train narrow it to the machine's memory),
#        TRAIN_ARGS (extra train options, e.g. "--loss softmax")
#
# Steps: training stopped after 1 step and after 1 + STEPS steps (exit 5, a checkpoint);
# seconds per step = the difference / STEPS. Peak memory: /usr/bin/time's maximum resident
# size (the largest rank).
set -euo pipefail
ITEMS=${1:?usage: items.sh ITEMS [RANKS] [USERS] [STEPS]}
RANKS=${2:-2}
USERS=${3:-$((2 * ITEMS))}
STEPS=${4:-3}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SEGREC=${SEGREC:-$HERE/build/segrec}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/segrec-items.XXXXXX")}
KEEP=${KEEP:-0}
mkdir -p "$WORK"
[[ $KEEP == 1 ]] || trap 'rm -f "$WORK"/*.csv "$WORK"/*.h5' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN=(mpirun -n "$RANKS" --oversubscribe --bind-to none)
D=$WORK
if [[ ! -s $D/ds.h5 ]]; then
  "${MPIRUN[@]}" "$SEGREC" generate --users "$USERS" --items "$ITEMS" --seed 1 --events "$D/ev.csv" >/dev/null
  "${MPIRUN[@]}" "$SEGREC" ingest --events "$D/ev.csv" --out "$D/ds.h5" | grep '^wrote'
  rm -f "$D/ev.csv"
fi
# shellcheck disable=SC2086
"${MPIRUN[@]}" "$SEGREC" train --data "$D/ds.h5" --out "$D/m.h5" --max-memory-per-rank 100M \
  --hidden "${HIDDEN:-1000}" ${TRAIN_ARGS:-} 2>&1 | grep '^segrec: error' | sed 's/^segrec: error: /estimate: /' || true
for n in 1 $((1 + STEPS)); do
  t0=$(date +%s.%N)
  rc=0
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$D/train_$n.time" "${MPIRUN[@]}" "$SEGREC" train --data "$D/ds.h5" \
    --stop-after-steps "$n" --out "$D/m$n.h5" --hidden "${HIDDEN:-1000}" ${TRAIN_ARGS:-} >"$D/train_$n.txt" 2>&1 || rc=$?
  [[ $rc -eq 5 ]] || { echo "train ($n steps) failed (exit $rc)"; tail -5 "$D/train_$n.txt"; exit 1; }
  t1=$(date +%s.%N)
  printf 'train %d step(s): %.1f s, peak %s MiB per rank (largest rank), load %s\n' "$n" \
    "$(echo "$t1 - $t0" | bc)" "$(awk '/Maximum resident/ {printf "%.0f", $6/1024}' "$D/train_$n.time")" \
    "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$D/items.txt"
done
awk -v s="$STEPS" '/^train 1 step/ {a=$4} /^train [0-9]+ step/ && !/^train 1 step/ {b=$4}
  END {printf "seconds per step: %.2f (%d steps)\n", (b-a)/s, s}' "$D/items.txt"
