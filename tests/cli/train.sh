#!/usr/bin/env bash
# segrec train end to end: bad values (one error line, the right exit code, no
# output left), stop and resume (exit 5, then the same model as an uninterrupted
# run), a stop request by signal, and the model file's contents.
source "$(dirname "$0")/lib.sh"

seg 2 generate --users 800 --items 150 --seed 3 --events "$WORK/ev.csv" >/dev/null &&
  seg 2 ingest --events "$WORK/ev.csv" --out "$WORK/ds.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
DS="$WORK/ds.h5"
M="$WORK/o/m.h5"
T=(train --data "$DS" --batch-size 64)
H=(--hidden 32)

for np in 1 2; do
  expect_fail "hidden 0" $np 2 "invalid value '0' for --hidden" "${T[@]}" --out "$M" --hidden 0 --epochs 2
  expect_fail "epochs -2" $np 2 "invalid value '-2' for --epochs" "${T[@]}" "${H[@]}" --out "$M" --epochs=-2
  expect_fail "lr 0" $np 2 "invalid value '0' for --lr" "${T[@]}" "${H[@]}" --out "$M" --lr 0
  expect_fail "negative lr" $np 2 "for --lr" "${T[@]}" "${H[@]}" --out "$M" --lr=-0.1
  expect_fail "batch larger than the users" $np 3 "for --batch-size: larger than the [0-9]+ training" \
    train --data "$DS" --out "$M" --batch-size 100000
  expect_fail "no output" $np 2 "for --out" "${T[@]}" "${H[@]}"
  expect_fail "projection missing" $np 2 "--input projected needs --projection" \
    "${T[@]}" "${H[@]}" --out "$M" --input projected
  expect_fail "segments missing" $np 2 "needs --segments" \
    "${T[@]}" "${H[@]}" --out "$M" --personalize segment-input --segment-embedding 4
  expect_fail "resume without a checkpoint" $np 2 "no checkpoint" "${T[@]}" "${H[@]}" --out "$M" --resume
  expect_fail "unknown personalize" $np 2 "invalid value 'segment' for --personalize" \
    "${T[@]}" "${H[@]}" --out "$M" --personalize segment
  expect_fail "heads without segments" $np 2 "segment-heads needs --segments" \
    "${T[@]}" "${H[@]}" --out "$M" --personalize segment-heads
  expect_fail "head layers 3 of 2" $np 2 "invalid value '3' for --head-layers" \
    "${T[@]}" "${H[@]}" --out "$M" --head-layers 3
  expect_fail "missing test items" $np 4 "nope.csv" "${T[@]}" "${H[@]}" --out "$M" \
    --test-items "$WORK/nope.csv"
  expect_fail "missing dataset" $np 3 "nope.h5" train --data "$WORK/nope.h5" --out "$M"
  expect_fail "events file as dataset" $np 3 "not an HDF5 file" train --data "$WORK/ev.csv" --out "$M"
done

# The resolved choices are printed: at --verbose before the first step (auto values named with
# their rule), and in the summary line (given values as given).
seg 1 train --data "$DS" "${H[@]}" --out "$WORK/auto.h5" --verbose --stop-after-steps 1
grep -qF "train: loss softmax (auto), hidden 32, batch 45 (auto), up to 200 epochs (auto: >= 4000 steps at 16 per epoch, within [1, 200])" "$WORK/err" &&
  ok "auto choices printed" || bad "auto choices: $(grep -i loss "$WORK/err" | head -2)"

# Stop after 5 steps (exit 5, checkpoint kept, no model), resume twice, compare with
# an uninterrupted run at the same rank count: the weights are identical.
for np in 1 2; do
  R="$WORK/r$np"; mkdir -p "$R"
  seg $np "${T[@]}" "${H[@]}" --epochs 3 --out "$R/full.h5" --checkpoint "$R/full.ckpt.h5" ||
    bad "uninterrupted -n $np: $(cat "$WORK/err")"
  grep -qF "; loss softmax (auto), hidden 32, batch 64, up to 3 epochs;" "$WORK/out" "$WORK/err" &&
    ok "resolved choices in the summary -n $np" || bad "summary -n $np: $(cat "$WORK/out")"
  seg $np "${T[@]}" "${H[@]}" --epochs 3 --out "$R/m.h5" --stop-after-steps 5; rc=$?
  [[ $rc -eq 5 && -f "$R/m.h5.ckpt.h5" && ! -f "$R/m.h5" ]] &&
    grep -q "checkpoint written to" "$WORK/err" && ok "stop after 5 steps -n $np (exit 5)" ||
    bad "stop -n $np: rc $rc $(cat "$WORK/err")"
  seg $np "${T[@]}" "${H[@]}" --epochs 3 --out "$R/m.h5" --resume --stop-after-steps 7; rc=$?
  [[ $rc -eq 5 ]] && ok "second stop -n $np" || bad "second stop -n $np: rc $rc $(cat "$WORK/err")"
  expect_fail "resume with other settings" $np 2 "other settings or data \(hidden\)" \
    "${T[@]}" --epochs 3 --out "$R/m.h5" --resume --hidden 16
  seg $np "${T[@]}" "${H[@]}" --epochs 3 --out "$R/m.h5" --resume && ok "resume -n $np" ||
    bad "resume -n $np: $(cat "$WORK/err")"
  seg 1 inspect --digest "$R/full.h5" && grep -E '/mlp/|/curves/(train_loss|val_ndcg)' "$WORK/out" >"$R/d1"
  seg 1 inspect --digest "$R/m.h5" && grep -E '/mlp/|/curves/(train_loss|val_ndcg)' "$WORK/out" >"$R/d2"
  [[ -s "$R/d1" ]] && diff -q "$R/d1" "$R/d2" >/dev/null && ok "resumed model identical -n $np" ||
    bad "resumed model differs -n $np: $(diff "$R/d1" "$R/d2" | head -4)"
done

# A stop request by signal: checkpoint at the next step, exit 5, then resume.
S="$WORK/sig"; mkdir -p "$S"
# shellcheck disable=SC2086
"$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" "${T[@]}" "${H[@]}" --epochs 100000 --patience 0 \
  --out "$S/m.h5" --progress-interval 0.05 >"$S/out" 2>"$S/err" &
pid=$!
for _ in $(seq 1 600); do grep -q "train  epoch" "$S/err" 2>/dev/null && break; sleep 0.1; done
kill -USR1 "$pid"  # mpirun forwards SIGUSR1 to every rank
for _ in $(seq 1 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill "$pid" 2>/dev/null  # still running after 2 minutes: a hang
wait "$pid"; rc=$?
[[ $rc -eq 5 && -f "$S/m.h5.ckpt.h5" ]] && grep -q "stopped" "$S/err" &&
  ok "SIGUSR1 writes a checkpoint and exits 5" || bad "SIGUSR1: rc $rc $(cat "$S/err")"

# The model bundle.
seg 2 "${T[@]}" --epochs 2 --out "$WORK/model.h5" --hidden 24,16 --val-users 0.2 &&
  seg 1 inspect "$WORK/model.h5" ||
  bad "model: $(cat "$WORK/err")"
for path in "/items/ids  \[150\]" "/mlp/W0  \[150 x 24\]" "/mlp/W1  \[24 x 16\]" "/mlp/W2  \[16 x 150\]" \
            "/mlp/b2  \[150\]" "/curves/train_loss  \[2\]" "/curves/val_ndcg  \[2\]"; do
  grep -qE "$path" "$WORK/out" && ok "model holds $path" || bad "model lacks $path: $(cat "$WORK/out")"
done
# Segment heads and the comparison of the three modes, on a k = 3 segmentation.
seg 2 profile --data "$DS" --out "$WORK/prof.h5" >/dev/null &&
  seg 2 project --profiles "$WORK/prof.h5" --out "$WORK/proj.h5" >/dev/null &&
  seg 2 cluster --projection "$WORK/proj.h5" --k 3 --out "$WORK/seg.h5" >/dev/null ||
  bad "segmentation: $(cat "$WORK/err")"
seg 2 "${T[@]}" "${H[@]}" --epochs 3 --segments "$WORK/seg.h5" --personalize segment-heads \
  --head-epochs 2 --min-segment-users 20 --val-users 0 --compare-personalize --out "$WORK/heads.h5" ||
  bad "compare: $(cat "$WORK/err")"
seg 1 inspect "$WORK/heads.h5" || bad "inspect heads: $(cat "$WORK/err")"
grep -qE "/mlp/heads/segments  \[3\]" "$WORK/out" && grep -qE "/mlp/heads/W1  \[96 x 150\]" "$WORK/out" &&
  ok "model holds three segment heads" || bad "model lacks the heads: $(cat "$WORK/out")"
seg 2 "${T[@]}" "${H[@]}" --epochs 3 --segments "$WORK/seg.h5" --personalize segment-heads \
  --head-epochs 2 --min-segment-users 20 --compare-personalize --out "$WORK/heads.h5" ||
  bad "compare with validation: $(cat "$WORK/err")"
for mode in none segment-heads segment-input; do
  grep -qE "^$mode +validation +all" "$WORK/out" && ok "compare table has $mode" ||
    bad "compare table lacks $mode: $(cat "$WORK/out")"
done
grep -qE "^best on the validation users" "$WORK/out" && ok "compare names the best mode" ||
  bad "compare names no mode: $(cat "$WORK/out")"
seg 1 inspect "$WORK/heads.h5" || bad "inspect heads: $(cat "$WORK/err")"
grep -qE "/validation/quality/ndcg" "$WORK/out" && ok "model holds the quality table" ||
  bad "model lacks the quality table: $(cat "$WORK/out")"
finish
