#!/usr/bin/env bash
# segrec recommend end to end: a run with its serving bundle; batch and new-user
# paths agree; rank invariance; cold start, unknown items, exclusions; history is
# never recommended; HDF5 output; bad inputs (one error line, exit code, no output).
source "$(dirname "$0")/lib.sh"

model_fixture "$WORK" 600 120 5 6 4 ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
M="$WORK/m.h5"
seg 1 inspect "$M" && grep -q "/segments/item_users  \[4 x 120\]" "$WORK/out" &&
  grep -q "/projection/W" "$WORK/out" && grep -q "/profile/items/idf" "$WORK/out" &&
  ok "model.h5 holds the serving bundle" || bad "bundle groups: $(cat "$WORK/out")"

# Batch: segments from the bundle equal those of segments.h5; -n 1 and -n 3 agree.
seg 1 recommend --model "$M" --data "$WORK/ds.h5" --top 7 --out "$WORK/b1.csv" --explain ||
  bad "batch -n 1: $(cat "$WORK/err")"
head -1 "$WORK/b1.csv" | grep -qx "user_id,rank,item_id,score,segment,source,reason" &&
  ok "CSV header" || bad "header: $(head -1 "$WORK/b1.csv")"
grep -qE ',"?ranked [0-9]+(st|nd|rd|th); without i[0-9]+ it would be [0-9]+(st|nd|rd|th) \(relative score -[0-9.e-]+\).*; segment [0-9]+ \(.*\) likes it [0-9.]+x more than average"?$' "$WORK/b1.csv" &&
  ok "--explain: leave-one-out effect, then lift and description" ||
  bad "--explain reasons: $(sed -n 2,4p "$WORK/b1.csv")"
seg 3 recommend --model "$M" --data "$WORK/ds.h5" --top 7 --out "$WORK/b3.csv" --explain \
  --block-users 37 ||
  bad "batch -n 3: $(cat "$WORK/err")"
awk -F, 'NR == FNR { if (FNR > 1) s[FNR] = $0; next }
         FNR > 1 { split(s[FNR], a, ","); split($0, b, ",");
                   if (a[1] != b[1] || a[2] != b[2] || a[3] != b[3] || a[5] != b[5] ||
                       (a[4] - b[4]) > 1e-4 || (b[4] - a[4]) > 1e-4) bad++ }
         END { exit bad > 0 }' "$WORK/b1.csv" "$WORK/b3.csv" &&
  [[ $(wc -l <"$WORK/b1.csv") -eq $(wc -l <"$WORK/b3.csv") ]] &&
  ok "rank invariance: -n 1 and -n 3 (blocks of 37 users) give the same lists (scores within 1e-4)" ||
  bad "rank invariance: $(diff "$WORK/b1.csv" "$WORK/b3.csv" | head -4)"
[[ $(wc -l <"$WORK/b1.csv") -eq $((600 * 7 + 1)) ]] && ok "7 rows per user" ||
  bad "rows: $(wc -l <"$WORK/b1.csv")"
seg 2 recommend --model "$M" --data "$WORK/ds.h5" --segments "$WORK/s.h5" \
  --projection "$WORK/h.h5" --top 7 --out "$WORK/bs.csv" || bad "batch with files: $(cat "$WORK/err")"
cmp -s <(cut -d, -f1,5 "$WORK/b1.csv" | sort -u) <(cut -d, -f1,5 "$WORK/bs.csv" | sort -u) &&
  ok "bundle segments equal segments.h5 labels" || bad "bundle segments differ from segments.h5"

# New users: the training users' own events give the batch path's lists and segments.
seg 2 recommend --model "$M" --events "$WORK/ev.csv" --top 7 --out "$WORK/n.csv" ||
  bad "new users: $(cat "$WORK/err")"
cmp -s <(cut -d, -f1-6 "$WORK/b1.csv" | sort) <(sort "$WORK/n.csv") &&
  ok "--events of training users = batch output" ||
  bad "--events differs: $(diff <(cut -d, -f1-6 "$WORK/b1.csv" | sort) <(sort "$WORK/n.csv") | head -4)"

# History never recommended.
awk -F, 'NR == FNR { if (FNR > 1) h[$1 "," $2] = 1; next }
         FNR > 1 && (($1 "," $3) in h) { n++ } END { exit n > 0 }' "$WORK/ev.csv" "$WORK/b1.csv" &&
  ok "no history item recommended" || bad "history items recommended"

# Cold start, unknown items and exclusions.
{
  echo "user_id,item_id,event,timestamp"
  echo "newA,i000001,view,1700000000"
  echo "newA,zz-unknown,view,1700000100"
  echo "newA,zz-unknown,purchase,1700000200"
  for i in 2 3 4 5; do echo "newB,i00000$i,view,170000000$i"; done
} >"$WORK/new.csv"
cut -d, -f3 "$WORK/b1.csv" | sed -n 2,4p >"$WORK/excl.txt"
echo "not-an-item" >>"$WORK/excl.txt"
seg 2 recommend --model "$M" --events "$WORK/new.csv" --top 5 --exclude "$WORK/excl.txt" \
  --out "$WORK/c.csv" || bad "cold start: $(cat "$WORK/err")"
grep -q "1 items unknown to the model (2 events ignored)" "$WORK/out" &&
  grep -q "1 cold users" "$WORK/out" && grep -q "(1 ids of --exclude unknown" "$WORK/out" &&
  ok "unknown items and cold users counted" || bad "counts: $(cat "$WORK/out")"
grep -q "^newA,1,.*,popular-in-segment$" "$WORK/c.csv" && grep -q "^newB,1,.*,model$" "$WORK/c.csv" &&
  ok "cold user served popular-in-segment, warm user by the model" || bad "sources: $(cat "$WORK/c.csv")"
grep -qFf <(sed -n 1,3p "$WORK/excl.txt" | sed 's/$/,/; s/^/,/') "$WORK/c.csv" &&
  bad "--exclude items recommended" || ok "--exclude items never recommended"
grep -qE "^newA,[0-9]+,i000001," "$WORK/c.csv" && bad "cold user got its history" ||
  ok "cold user's history not recommended"
seg 2 recommend --model "$M" --events "$WORK/new.csv" --top 5 --min-events 0 --out "$WORK/c0.csv" &&
  ! grep -q popular-in-segment "$WORK/c0.csv" && ok "--min-events 0: the model for everybody" ||
  bad "--min-events 0"

# HDF5 output.
seg 2 recommend --model "$M" --data "$WORK/ds.h5" --top 7 --out "$WORK/r.h5" &&
  seg 1 inspect "$WORK/r.h5" && grep -q "segrec-recommendations" "$WORK/out" &&
  grep -q "/recs/items  \[600 x 7\]" "$WORK/out" && ok "HDF5 output" ||
  bad "HDF5 output: $(cat "$WORK/out" "$WORK/err")"

# Bad inputs.
seg 1 generate --users 50 --items 30 --seed 9 --events "$WORK/other.csv" >/dev/null &&
  seg 1 ingest --events "$WORK/other.csv" --out "$WORK/other.h5" || bad "other data"
for np in 1 2; do
  expect_fail "missing model" $np 3 "nope.h5" recommend --model "$WORK/nope.h5" --data "$WORK/ds.h5" --out "$WORK/o/r.csv"
  expect_fail "item mismatch" $np 3 "trained on other items" recommend --model "$M" --data "$WORK/other.h5" --out "$WORK/o/r.csv"
  expect_fail "top 0" $np 2 "invalid value '0' for --top" recommend --model "$M" --data "$WORK/ds.h5" --top 0 --out "$WORK/o/r.csv"
  expect_fail "no input" $np 2 "for --data" recommend --model "$M" --out "$WORK/o/r.csv"
  expect_fail "both inputs" $np 2 "--data and --events" recommend --model "$M" --data "$WORK/ds.h5" --events "$WORK/new.csv" --out "$WORK/o/r.csv"
  expect_fail "no output" $np 2 "for --out" recommend --model "$M" --data "$WORK/ds.h5"
  expect_fail "missing exclude file" $np 3 "--exclude file" recommend --model "$M" --data "$WORK/ds.h5" --exclude "$WORK/nope.txt" --out "$WORK/o/r.csv"
  expect_fail "explain to h5" $np 2 "for --explain" recommend --model "$M" --data "$WORK/ds.h5" --explain --out "$WORK/o/r.h5"
  expect_fail "dataset as model" $np 3 "segrec-dataset|segrec-model" recommend --model "$WORK/ds.h5" --data "$WORK/ds.h5" --out "$WORK/o/r.csv"
done
finish
