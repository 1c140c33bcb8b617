#!/usr/bin/env bash
# One machine at scale: generate -> ingest -> profile -> project -> cluster, then a timed
# training run, at USERS users on RANKS ranks. Per stage: wall seconds, peak resident
# memory per rank (the binary's summary line, max over ranks), /usr/bin/time's maximum
# resident size, and the size of the stage's output file.
#
#   bench/scale/stages.sh USERS [RANKS=2] [ITEMS=2000] [TRAIN_STEPS=20]
#   env: SEGREC (binary; default build/segrec), WORK (data folder; default a new
#        folder under ${TMPDIR:-/tmp}), KEEP=1 keeps the data, TRAIN_ARGS (extra train options),
#        EVENTS_PER_USER (generate's mean events per user; default 40)
#
# Results: one line per stage on stdout and in $WORK/stages.tsv. Training uses the default
# options; an epoch is extrapolated from the seconds per step (see the train lines below) and
# the steps per epoch (training users / the global batch, 500 from 8,000 users up).
# Build first with -O3 -march=native (CMAKE_BUILD_TYPE=Release; SEGREC_NATIVE is ON).
set -euo pipefail
USERS=${1:?usage: stages.sh USERS [RANKS] [ITEMS] [TRAIN_STEPS]}
RANKS=${2:-2}
ITEMS=${3:-2000}
STEPS=${4:-20}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
SEGREC=${SEGREC:-$HERE/build/segrec}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/segrec-scale.XXXXXX")}
mkdir -p "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN=(mpirun -n "$RANKS" --oversubscribe --bind-to none)
OUT="$WORK/stages.tsv"
[[ -s $OUT ]] || printf 'stage\tusers\tranks\titems\twall_s\tpeak_mib_per_rank\ttime_maxrss_mib\toutput_bytes\tload_before\n' >"$OUT"
KEEP=${KEEP:-0}
if [[ $KEEP != 1 ]]; then trap 'rm -f "$WORK"/*.csv "$WORK"/*.h5' EXIT; fi

stage() {  # stage NAME OUTPUT_FILE segrec-args...  (env OK_RC: a second accepted exit code)
  local name=$1 out=$2; shift 2
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  local t0 t1
  t0=$(date +%s.%N)
  local rc=0
  /usr/bin/time -v -o "$WORK/$name.time" "${MPIRUN[@]}" "$SEGREC" "$@" >"$WORK/$name.txt" 2>&1 || rc=$?
  if [[ $rc -ne 0 && $rc -ne ${OK_RC:-0} ]]; then
    echo "stage $name failed (exit $rc):"; tail -20 "$WORK/$name.txt"; exit 1
  fi
  t1=$(date +%s.%N)
  local peak rss bytes wall
  peak=$(grep -o 'peak memory [0-9.]* MiB' "$WORK/$name.txt" | tail -1 | awk '{print $3}' || true)
  rss=$(awk '/Maximum resident/ {printf "%.1f", $6/1024}' "$WORK/$name.time")
  bytes=$( [[ -e $out ]] && stat -c %s "$out" || echo 0)
  wall=$(echo "$t1 - $t0" | bc)
  printf '%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n' "$name" "$USERS" "$RANKS" "$ITEMS" "$wall" \
    "${peak:-?}" "$rss" "$bytes" "$load" | tee -a "$OUT"
}

D=$WORK
stage generate "$D/ev.csv" generate --users "$USERS" --items "$ITEMS" --seed 1 --events "$D/ev.csv" \
  --events-per-user "${EVENTS_PER_USER:-40}"
stage ingest "$D/ds.h5" ingest --events "$D/ev.csv" --out "$D/ds.h5"
[[ $KEEP == 1 ]] || rm -f "$D/ev.csv"  # the largest file; not needed after ingest
stage profile "$D/p.h5" profile --data "$D/ds.h5" --out "$D/p.h5"
stage project "$D/h.h5" project --profiles "$D/p.h5" --out "$D/h.h5" --verbose
stage cluster "$D/seg.h5" cluster --projection "$D/h.h5" --k 16 --out "$D/seg.h5" --verbose
if [[ $STEPS -gt 0 ]]; then
  # Training with the default options, stopped (exit 5, a checkpoint) after 1 step and after
  # 1 + STEPS steps: seconds per step = the difference / STEPS (the data load and set-up cancel).
  for n in 1 $((1 + STEPS)); do
    # shellcheck disable=SC2086
    OK_RC=5 stage "train_$n" "$D/m$n.h5.ckpt.h5" train --data "$D/ds.h5" --stop-after-steps "$n" \
      --out "$D/m$n.h5" --checkpoint "$D/m$n.h5.ckpt.h5" ${TRAIN_ARGS:-}
  done
  awk -F'\t' -v s="$STEPS" '$1=="train_1" {a=$5} $1=="train_'$((1 + STEPS))'" {b=$5}
    END {printf "train: %.3f s per step (%d steps; data load and set-up %.1f s)\n", (b-a)/s, s, a}' \
    "$OUT" | tee -a "$WORK/summary.txt"
fi
echo "results: $OUT"
