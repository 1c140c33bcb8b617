#!/usr/bin/env bash
# A host lost in the middle of a job (3 namespace hosts over TCP): its link cut
# mid-K-means and mid-training, or its processes killed. Without the stall
# watchdog such a job waits forever; segrec must end it by itself (exit 6 and
# one line naming the stage, the step and the collective), leave no partial
# output and its last checkpoint intact, and a rerun (train: --resume) once the
# host is back gives the same result as an uninterrupted run.
source "$(dirname "$0")/lib.sh"
source "$HERE/multihost_lib.sh"

D="$WORK/in"; mkdir -p "$D" "$WORK/o"
seg 3 generate --users 3000 --items 300 --seed 9 --events "$D/ev.csv" &&
  seg 3 ingest --events "$D/ev.csv" --out "$D/ds.h5" &&
  seg 3 profile --data "$D/ds.h5" --out "$D/p.h5" &&
  seg 3 project --profiles "$D/p.h5" --dims 8 --out "$D/h.h5" ||
  { bad "setup: $(tail -c 600 "$WORK/err")"; finish; exit 1; }
C=(cluster --projection "$D/h.h5" --k 6 --n-init 1 --tol 0)
T=(train --data "$D/ds.h5" --hidden 32 --epochs 3 --batch-size 100 --patience 0)
STALL=12

# model_digest FILE: the digests of a model's weights and curves (what a resume must reproduce).
model_digest() { digest "$1" | grep -E '/mlp/|/curves/(train_loss|val_ndcg)'; }

# References: uninterrupted runs at -n 3.
seg 3 "${C[@]}" --out "$D/seg_ref.h5" && digest "$D/seg_ref.h5" >"$D/seg_ref.d" &&
  seg 3 "${T[@]}" --out "$D/model_ref.h5" && model_digest "$D/model_ref.h5" >"$D/model_ref.d" ||
  { bad "reference runs: $(tail -c 600 "$WORK/err")"; finish; exit 1; }

# faulty NAME FAULT PATTERN ARGS...: starts ARGS on the 3 hosts with a slow step
# (1 step per STEP_MS), waits for a stderr line matching PATTERN (the stage is
# under way), applies FAULT (cut|kill) to host 2, and waits for the job to end.
# Sets RC, WAITED (seconds from the fault to the end of the job).
faulty() {
  local name=$1 fault=$2 pattern=$3; shift 3
  SEGREC_TEST_STEP_DELAY_MS=$STEP_MS timeout 300 "$MH_MPIRUN" -n 3 --map-by node \
    -x SEGREC_TEST_STEP_DELAY_MS "$SEGREC" "$@" --stall-timeout $STALL >"$WORK/fout" 2>"$WORK/ferr" &
  local pid=$! i
  for i in $(seq 1 1200); do grep -qE "$pattern" "$WORK/ferr" 2>/dev/null && break; sleep 0.1; done
  grep -qE "$pattern" "$WORK/ferr" || bad "$name: stage never reached: $(tail -c 400 "$WORK/ferr")"
  [[ -n ${BEFORE:-} ]] && eval "$BEFORE"
  "$MH" "$fault" 2
  local t0=$SECONDS
  wait $pid; RC=$?
  WAITED=$((SECONDS - t0))
  "$MH" restore 2
  # The host is back, without leftovers (a daemon that lost the launcher).
  for i in 1 2 3 4 5; do "$MH" kill 2; [[ -z $(ip netns pids "$PREFIX-h2") ]] && break; sleep 1; done
}

# expect_stall NAME STAGE_PATTERN: exit 6 (or, when the launcher saw the lost host
# first, its non-zero code), the job ended long before a hang, and the message.
expect_stall() {
  local name=$1 stage=$2
  if [[ $RC -eq 124 ]]; then bad "$name: the job hung (killed by the test's timeout)"; return 1; fi
  if [[ $RC -eq 0 ]]; then bad "$name: the job finished normally; the fault came too late"; return 1; fi
  if [[ $WAITED -gt $((STALL + 60)) ]]; then bad "$name: ended $WAITED s after the fault"; return 1; fi
  local msg; msg=$(grep '^segrec: error' "$WORK/ferr" | head -1)
  if [[ $3 == stall ]]; then
    [[ $RC -eq 6 ]] || { bad "$name: exit $RC, want 6: $(tail -c 400 "$WORK/ferr")"; return 1; }
    grep '^segrec: error' "$WORK/ferr" | grep -qE "stalled: no progress for [0-9]+ s \(--stall-timeout $STALL\) in stage $stage, waiting in (allreduce|allgather|barrier)" ||
      { bad "$name: message: $msg"; return 1; }
  fi
  ok "$name: job ended $WAITED s after the fault (exit $RC): ${msg:-$(grep -m1 -iE 'lost|abort|killed' "$WORK/ferr")}"
}

# again ARGS...: a job on the 3 hosts after a fault, once the host is back. In the first
# seconds after a link comes back Open MPI's TCP connect() can still time out (the job then
# hangs at start-up), so a failed attempt is retried once, each bounded by 90 s.
again() {
  HOSTS_TIMEOUT=90 hosts 3 "$@" && return 0
  echo "note: retrying a job after the fault: $(tail -c 200 "$WORK/err" | tr '\n' ' ')"
  sleep 3
  HOSTS_TIMEOUT=90 hosts 3 "$@"
}

# resume_matches OK_TEXT BAD_TEXT: --resume on the 3 hosts gives the reference model.
resume_matches() {
  again "${T[@]}" --out "$M" --resume && model_digest "$M" >"$WORK/m.d" &&
    diff -q "$D/model_ref.d" "$WORK/m.d" >/dev/null && ok "$1" ||
    bad "$2: $(diff "$D/model_ref.d" "$WORK/m.d" | head -3) $(tail -c 300 "$WORK/err")"
}

# 1. Link cut mid-K-means: watchdog ends the job; no segments left; rerun = reference.
STEP_MS=1000
faulty "link cut mid-K-means" cut "test step 'cluster' k-means iteration 3" "${C[@]}" --out "$WORK/o/seg.h5"
expect_stall "link cut mid-K-means" "'cluster', k-means iteration [0-9]+" stall
[[ -z $(ls -A "$WORK/o") ]] && ok "no partial segments file" || bad "left files: $(ls -A "$WORK/o")"
again "${C[@]}" --out "$WORK/o/seg.h5"
echo "exit $?: $(tail -c 300 "$WORK/err")" >"$WORK/rerun"
digest "$WORK/o/seg.h5" >"$WORK/seg.d" && diff -q "$D/seg_ref.d" "$WORK/seg.d" >/dev/null &&
  ok "K-means rerun after the link is back = uninterrupted" ||
  bad "K-means rerun: $(diff "$D/seg_ref.d" "$WORK/seg.d" | head -3) $(cat "$WORK/rerun")"
rm -rf "$WORK/o"/*

# 2. Link cut mid-training (epoch 2): exit 6, epoch-1 checkpoint intact, --resume = reference.
STEP_MS=200
M="$WORK/o/model.h5"
BEFORE='digest "$M.ckpt.h5" >"$WORK/ckpt_before.d"'
faulty "link cut mid-training" cut "test step 'train epoch 2' step 3" "${T[@]}" --out "$M"
BEFORE=
expect_stall "link cut mid-training" "'train epoch 2', step [0-9]+" stall
[[ ! -e $M ]] && ! ls "$WORK/o" | grep -q tmp && ok "no model, no temporary files" ||
  bad "outputs after the stall: $(ls -A "$WORK/o")"
digest "$M.ckpt.h5" >"$WORK/ckpt_after.d" && [[ -s "$WORK/ckpt_before.d" ]] &&
  diff -q "$WORK/ckpt_before.d" "$WORK/ckpt_after.d" >/dev/null && ok "last checkpoint intact" ||
  bad "checkpoint changed or unreadable: $(diff "$WORK/ckpt_before.d" "$WORK/ckpt_after.d" | head -3)"
resume_matches "--resume after the link is back = uninterrupted model" "resume"
rm -rf "$WORK/o"/*

# 3. Host lost for good mid-training (its processes killed): the job ends, the
# checkpoint is intact, --resume on the hosts = reference.
BEFORE='digest "$M.ckpt.h5" >"$WORK/ckpt_before.d"'
faulty "host killed mid-training" kill "test step 'train epoch 2' step 3" "${T[@]}" --out "$M"
BEFORE=
expect_stall "host killed mid-training" "'train epoch 2', step [0-9]+" any
[[ ! -e $M ]] && ! ls "$WORK/o" | grep -q tmp && ok "no model, no temporary files (host killed)" ||
  bad "outputs after the kill: $(ls -A "$WORK/o")"
digest "$M.ckpt.h5" >"$WORK/ckpt_after.d" && diff -q "$WORK/ckpt_before.d" "$WORK/ckpt_after.d" >/dev/null &&
  ok "last checkpoint intact (host killed)" || bad "checkpoint changed after the kill"
resume_matches "--resume after a lost host = uninterrupted model" "resume after kill"
rm -rf "$WORK/o"/*

# 4. Host lost mid-K-means (killed).
STEP_MS=1000
faulty "host killed mid-K-means" kill "test step 'cluster' k-means iteration 3" "${C[@]}" --out "$WORK/o/seg.h5"
expect_stall "host killed mid-K-means" "'cluster', k-means iteration [0-9]+" any
[[ -z $(ls -A "$WORK/o") ]] && ok "no partial segments file (host killed)" || bad "left files: $(ls -A "$WORK/o")"
finish
