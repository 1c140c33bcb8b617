#!/usr/bin/env bash
# segrec train --model-kind sequence end to end on a log with planted order (item i is followed
# by (i + 7) mod 30, one cycle through all items): training at 2 ranks, recommendations for the users of the run
# identical at 1, 2 and 4 ranks, a session's next item and its leave-one-out reason, and
# the bad inputs (unknown items only, an empty session file, no timestamps, --max-len 0,
# a sequence model given to a bag-model command) each as one error line.
source "$(dirname "$0")/lib.sh"

awk 'BEGIN {
  print "user_id,item_id,timestamp,event"
  for (u = 0; u < 240; u++) {
    i = (u * 13) % 30; n = 5 + u % 15
    for (t = 0; t < n; t++) {
      printf "u%03d,item%d,%d,%s\n", u, i, 1000 + 60 * t, (t % 3 == 2 ? "purchase" : "view")
      i = (i + 7) % 30
    }
  }
}' >"$WORK/ev.csv"
seg 2 ingest --events "$WORK/ev.csv" --out "$WORK/ds.h5" &&
  seg 2 train --data "$WORK/ds.h5" --model-kind sequence --max-len 8 --seq-dim 16 --epochs 20 --val-users 0 \
    --batch-size 24 --seq-lr 0.01 --out "$WORK/m.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
grep -q "sequence model (GRU, dim 16, max-len 8" "$WORK/out" && ok "train says what it wrote" ||
  bad "train summary: $(cat "$WORK/out")"

for np in 1 2 4; do
  seg $np recommend --model "$WORK/m.h5" --data "$WORK/ds.h5" --top 3 --out "$WORK/b$np.csv" ||
    bad "recommend -n $np: $(cat "$WORK/err")"
done
cmp -s "$WORK/b1.csv" "$WORK/b2.csv" && cmp -s "$WORK/b1.csv" "$WORK/b4.csv" &&
  ok "recommendations for the run's users identical at 1, 2 and 4 ranks" ||
  bad "rank counts differ: $(diff "$WORK/b1.csv" "$WORK/b4.csv" | head -4)"
# Each user's first recommendation is the successor of its last event.
hits=$(awk -F, 'NR == FNR { if (FNR > 1) last[$1] = $2; next }
  FNR > 1 && $2 == 1 { split(last[$1], a, "item"); if ($3 == ("item" ((a[2] + 7) % 30))) h++ }
  END { print h + 0 }' "$WORK/ev.csv" "$WORK/b1.csv")
[[ $hits -ge 216 ]] && ok "planted successor ranked first for $hits of 240 users" ||
  bad "planted successor ranked first for only $hits of 240 users"

# A session of new events (an anonymous id), with an unknown item among them.
printf 'user_id,item_id,timestamp,event\nanon-1,item4,1,view\nanon-1,item999,2,view\nanon-1,item11,3,view\nanon-1,item18,4,purchase\n' \
  >"$WORK/session.csv"
seg 1 recommend --model "$WORK/m.h5" --events "$WORK/session.csv" --top 3 --explain \
  --out "$WORK/s.csv" || bad "session: $(cat "$WORK/err")"
# item4 -> 11 -> 18 -> 25
[[ $(sed -n 2p "$WORK/s.csv" | cut -d, -f1-3) == "anon-1,1,item25" ]] &&
  ok "the session's next item is the planted successor" || bad "session: $(cat "$WORK/s.csv")"
sed -n 2p "$WORK/s.csv" | grep -q 'after item18 (1 back; without it the score drops [0-9.e+-]*)' &&
  ok "the reason names the last event (leave-one-out drop)" || bad "reason: $(sed -n 2p "$WORK/s.csv")"
grep -q '1 items unknown to the model (1 events ignored)' "$WORK/out" &&
  ok "the unknown item is counted" || bad "summary: $(cat "$WORK/out")"

# A stop signal seen by one rank: every rank stops at the same step with a checkpoint (exit 5),
# and the run resumes from it.
mkdir -p "$WORK/sig"
# shellcheck disable=SC2086
"$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" train --data "$WORK/ds.h5" --model-kind sequence --max-len 8 \
  --seq-dim 16 --epochs 100000 --patience 0 --val-users 0 --batch-size 24 -v \
  --out "$WORK/sig/m.h5" >"$WORK/sig/out" 2>"$WORK/sig/err" &
BG=$!
for _ in $(seq 1 600); do grep -q "train  epoch" "$WORK/sig/err" 2>/dev/null && break; sleep 0.1; done
kill -USR1 "$(pgrep -P "$BG" | tail -1)"
for _ in $(seq 1 600); do kill -0 "$BG" 2>/dev/null || break; sleep 0.1; done
kill -9 "$BG" 2>/dev/null
wait "$BG"
rc=$?
[[ $rc -eq 5 && -f "$WORK/sig/m.h5.ckpt.h5" && ! -f "$WORK/sig/m.h5" ]] &&
  [[ $(grep -c "^segrec: error" "$WORK/sig/err") -eq 1 ]] &&
  ok "SIGUSR1 on one rank: checkpoint, exit 5" || bad "SIGUSR1: rc $rc $(tail -3 "$WORK/sig/err")"
seg 2 train --data "$WORK/ds.h5" --model-kind sequence --max-len 8 --seq-dim 16 --epochs 100000 \
  --patience 0 --val-users 0 --batch-size 24 --out "$WORK/sig/m.h5" --resume --stop-after-steps 2
[[ $? -eq 5 ]] && grep -q "stopped" "$WORK/err" && ok "that checkpoint resumes" ||
  bad "resume after the signal: $(cat "$WORK/err")"

# Bad inputs.
printf 'user_id,item_id,timestamp\nanon-2,nope1,1\nanon-2,nope2,2\n' >"$WORK/unknown.csv"
printf 'user_id,item_id,timestamp\n' >"$WORK/empty.csv"
printf 'user_id,item_id\nanon-3,item4\nanon-3,item1\n' >"$WORK/untimed.csv"
for np in 1 2; do
  expect_fail "session with unknown items only" $np 3 \
    "session 'anon-2' has 2 events, none on an item the model knows" \
    recommend --model "$WORK/m.h5" --events "$WORK/unknown.csv" --out "$WORK/o/r.csv"
  expect_fail "empty session file" $np 3 "no data rows in '.*empty.csv'" \
    recommend --model "$WORK/m.h5" --events "$WORK/empty.csv" --out "$WORK/o/r.csv"
  expect_fail "session without timestamps" $np 3 "give a timestamp column" \
    recommend --model "$WORK/m.h5" --events "$WORK/untimed.csv" --out "$WORK/o/r.csv"
done
expect_fail "max-len 0" 1 2 "invalid value '0' for --max-len: must be >= 1" \
  train --data "$WORK/ds.h5" --model-kind sequence --max-len 0 --out "$WORK/o/m.h5"
expect_fail "unknown model" 1 2 "invalid value 'rnn' for --model-kind: use mlp \(or bag\), sequence, ease or popularity" \
  train --data "$WORK/ds.h5" --model-kind rnn --out "$WORK/o/m.h5"
expect_fail "sequence model in audience" 1 3 "is a sequence model .*only segrec recommend and segrec evaluate serve it" \
  audience --model "$WORK/m.h5" --data "$WORK/ds.h5" --items item1 --out "$WORK/o/a.csv"
finish
