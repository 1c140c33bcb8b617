#!/usr/bin/env bash
# The stall watchdog on one host: one rank frozen (SIGSTOP) in the middle of K-means
# and of training; the others must end the job by themselves with exit 6 and one
# message naming the stage, the step and the collective (without --stall-timeout
# the job would wait forever). No partial output; the training checkpoint survives
# and --resume gives the uninterrupted model. Bad values of the option.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D" "$WORK/o"
seg 2 generate --users 1500 --items 200 --seed 4 --events "$D/ev.csv" &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" &&
  seg 2 profile --data "$D/ds.h5" --out "$D/p.h5" &&
  seg 2 project --profiles "$D/p.h5" --dims 6 --out "$D/h.h5" ||
  { bad "setup: $(tail -c 600 "$WORK/err")"; finish; exit 1; }
T=(train --data "$D/ds.h5" --hidden 16 --epochs 3 --batch-size 100 --patience 0)
seg 2 "${T[@]}" --out "$D/ref.h5" &&
  seg 1 inspect --digest "$D/ref.h5" && grep -E '/mlp/|/curves/(train_loss|val_ndcg)' "$WORK/out" >"$D/ref.d" ||
  { bad "reference: $(tail -c 600 "$WORK/err")"; finish; exit 1; }

# frozen NAME PATTERN STAGE ARGS...: 2 ranks, slow steps; once stderr matches PATTERN, rank 1
# is stopped; waits for the end of the job (RC) and removes leftovers.
frozen() {
  local name=$1 pattern=$2 stage=$3; shift 3
  # shellcheck disable=SC2086
  SEGREC_TEST_STEP_DELAY_MS=300 timeout 120 "$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" "$@" \
    --stall-timeout 5 >"$WORK/fout" 2>"$WORK/ferr" &
  local pid=$! i victim=""
  for i in $(seq 1 600); do grep -qE "$pattern" "$WORK/ferr" 2>/dev/null && break; sleep 0.1; done
  # The ranks are mpirun's children, in rank order of their start; stop the last one.
  victim=$(pgrep -P "$(pgrep -P $pid -n || echo $pid)" -x segrec | tail -1)
  [[ -z $victim ]] && victim=$(pgrep -P $pid -x segrec | tail -1)
  [[ -n $victim ]] && kill -STOP "$victim"
  wait $pid; RC=$?
  [[ -n $victim ]] && kill -KILL "$victim" 2>/dev/null
  if [[ $RC -eq 6 ]] && grep '^segrec: error' "$WORK/ferr" |
       grep -qE "stalled: no progress for [0-9]+ s \(--stall-timeout 5\) in stage $stage, waiting in (allreduce|allgather|barrier)"; then
    ok "$name: exit 6: $(grep -m1 '^segrec: error' "$WORK/ferr" | cut -c1-160)"
  else
    bad "$name: exit $RC (victim '${victim}'): $(grep -m2 'segrec: error\|abort' "$WORK/ferr")"
  fi
}

frozen "rank frozen mid-K-means" "test step 'cluster' k-means iteration 2" \
  "'cluster', k-means iteration [0-9]+" cluster --projection "$D/h.h5" --k 4 --n-init 1 --out "$WORK/o/s.h5"
[[ -z $(ls -A "$WORK/o") ]] && ok "no partial segments" || bad "left files: $(ls -A "$WORK/o")"

# segrec run names the pipeline stage that stalled.
frozen "rank frozen in segrec run (cluster)" "test step 'cluster' k-means iteration 2" \
  "'cluster', k-means iteration [0-9]+" run --events "$D/ev.csv" --k 4 --epochs 1 --out "$WORK/r"
rm -rf "$WORK/r"

M="$WORK/o/m.h5"
frozen "rank frozen mid-training" "test step 'train epoch 2' step 2" \
  "'train epoch 2', step [0-9]+" "${T[@]}" --out "$M"
[[ ! -e $M && -e $M.ckpt.h5 ]] && ! ls "$WORK/o" | grep -q tmp && ok "checkpoint kept, no model, no temporaries" ||
  bad "outputs: $(ls -A "$WORK/o")"
seg 2 "${T[@]}" --out "$M" --resume && seg 1 inspect --digest "$M" &&
  grep -E '/mlp/|/curves/(train_loss|val_ndcg)' "$WORK/out" >"$WORK/m.d" && diff -q "$D/ref.d" "$WORK/m.d" >/dev/null &&
  ok "--resume = uninterrupted model" || bad "resume: $(diff "$D/ref.d" "$WORK/m.d" | head -3) $(tail -c 300 "$WORK/err")"

for np in 1 2; do
  expect_fail "negative stall timeout" $np 2 "invalid value '-1' for --stall-timeout" \
    cluster --projection "$D/h.h5" --k 4 --out "$WORK/o/s.h5" --stall-timeout=-1
done
finish
