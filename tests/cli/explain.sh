#!/usr/bin/env bash
# segrec recommend --explain end to end: leave-one-out reasons with item names from
# --item-info (or, without it, the log's own name column), for the users of a run (--data)
# and for new users folded in from their
# events (--events); the explained CSV is identical at 1, 2 and 4 ranks; a bad --item-info
# file gives one error line naming the file and line, and leaves no output.
source "$(dirname "$0")/lib.sh"

seg 2 generate --users 300 --items 80 --seed 8 --events "$WORK/ev.csv" >/dev/null &&
  seg 2 run --events "$WORK/ev.csv" --out "$WORK/r" --until train --dims 4 --k 3 --input both \
    --hidden 16 --epochs 2 --batch-size 64 ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
M="$WORK/r/model.h5"
DS="$WORK/r/dataset.h5"

# Item names: "Item <id>" in a TSV with a header (title/genre aliases).
{
  printf 'item_id\ttitle\tgenre\n'
  tail -n +2 "$WORK/ev.csv" | cut -d, -f2 | sort -u | awk '{ printf "%s\tItem %s\tg\n", $1, $1 }'
} >"$WORK/items.tsv"
# New users: 40 users' events under new ids.
awk -F, -v OFS=, 'NR == 1 { print; next } $1 < "u000040" { $1 = "new-" $1; print }' \
  "$WORK/ev.csv" >"$WORK/new.csv"

for np in 1 2 4; do
  seg $np recommend --model "$M" --data "$DS" --top 5 --explain --item-info "$WORK/items.tsv" \
    --min-events 0 --out "$WORK/b$np.csv" || bad "batch -n $np: $(cat "$WORK/err")"
  seg $np recommend --model "$M" --events "$WORK/new.csv" --top 5 --explain \
    --item-info "$WORK/items.tsv" --min-events 0 --out "$WORK/n$np.csv" || bad "new users -n $np: $(cat "$WORK/err")"
done
for f in b n; do
  cmp -s "$WORK/${f}1.csv" "$WORK/${f}2.csv" && cmp -s "$WORK/${f}1.csv" "$WORK/${f}4.csv" &&
    ok "$f: explained CSV identical at 1, 2 and 4 ranks" ||
    bad "$f: rank counts differ: $(diff "$WORK/${f}1.csv" "$WORK/${f}4.csv" | head -4)"
done
[[ $(grep -c ',model,"\?ranked [0-9]*[a-z][a-z]; ' "$WORK/b1.csv") -eq 1500 ]] &&
  [[ $(grep -c ',model,"\?ranked [0-9]*[a-z][a-z]; without Item i[0-9]* it would be [0-9]*[a-z][a-z] (relative score -[0-9.e-]*)' "$WORK/b1.csv") -ge 1400 ]] &&
  ok "every model row has a reason; nearly all name their strongest history item by --item-info name" ||
  bad "reasons: $(grep ',model,' "$WORK/b1.csv" | grep -v 'without Item' | head -3)"
grep -q '; also raised by Item i[0-9]* (-[0-9.e-]*), Item i[0-9]* (-[0-9.e-]*); segment [0-9]' "$WORK/b1.csv" &&
  ok "three items named, then the segment context" || bad "named items: $(sed -n 2,3p "$WORK/b1.csv")"
# The named items are in the user's history.
awk -F, 'NR == FNR { if (FNR > 1) h[$1 "," $2] = 1; next }
         FNR > 1 && match($0, /without Item [^ ]+/) { it = substr($0, RSTART + 13, RLENGTH - 13);
           n++; if (!(($1 "," it) in h)) miss++ }
         END { exit !(n > 0 && miss == 0) }' "$WORK/ev.csv" "$WORK/b1.csv" &&
  ok "named items come from the user's history" || bad "named items outside the history"
# Without --item-info the reasons use the names of the log's own name column.
awk -F, -v OFS=, 'NR == 1 { print $0, "item_name"; next } { print $0, "Named " $2 }' \
  "$WORK/new.csv" >"$WORK/new_named.csv"
seg 2 recommend --model "$M" --events "$WORK/new_named.csv" --top 5 --explain --min-events 0 \
  --out "$WORK/nn.csv" && grep -q 'without Named i[0-9]* it would be' "$WORK/nn.csv" &&
  ! grep -q 'without i[0-9]* it would be' "$WORK/nn.csv" &&
  ok "no --item-info: reasons name items by the log's name column" ||
  bad "names from the log: $(sed -n 2p "$WORK/nn.csv") $(cat "$WORK/err")"
# New users: the same users' lists and reasons as in the batch (same events, same model).
cmp -s <(grep '^u00003[0-9],' "$WORK/b1.csv" | cut -d, -f1,2,3 | sort) \
  <(grep '^new-u00003[0-9],' "$WORK/n1.csv" | sed 's/^new-//' | cut -d, -f1,2,3 | sort) &&
  ok "new users: lists as in the batch" || bad "new users' lists differ from the batch"
cmp -s <(grep '^u00003[0-9],' "$WORK/b1.csv" | sed 's/.*ranked/ranked/' | sort) \
  <(grep '^new-u00003[0-9],.*,model,' "$WORK/n1.csv" | sed 's/.*ranked/ranked/' | sort) &&
  ok "new users: reasons as in the batch" || bad "new users' reasons differ from the batch"
# Bad --item-info files and options: one error line, exit code, no output left.
{ printf 'item_id,name\n'; printf 'i000001,A\n'; printf 'i000002,B,extra\n'; } >"$WORK/bad.csv"
printf '1|Toy Story (1995)|x\n' >"$WORK/bad.item"
expect_fail "--item-info missing" 1 3 "cannot open the --item-info file" recommend --model "$M" \
  --data "$DS" --explain --item-info "$WORK/nope.csv" --out "$WORK/o/r.csv"
expect_fail "--item-info bad row" 2 3 "bad.csv' line 3: 3 fields, the header has 2" recommend \
  --model "$M" --data "$DS" --explain --item-info "$WORK/bad.csv" --out "$WORK/o/r.csv"
expect_fail "--item-info-format movielens bad row" 2 3 "bad.item' line 1: 3 '\|'-separated" \
  recommend --model "$M" --events "$WORK/new.csv" --explain --item-info "$WORK/bad.item" \
  --item-info-format movielens --out "$WORK/o/r.csv"
expect_fail "--item-info-format" 1 2 "invalid value 'xml' for --item-info-format" recommend \
  --model "$M" --data "$DS" --explain --item-info "$WORK/items.tsv" --item-info-format xml \
  --out "$WORK/o/r.csv"
expect_fail "--item-info without --explain" 1 2 "for --item-info: only with --explain" recommend \
  --model "$M" --data "$DS" --item-info "$WORK/items.tsv" --out "$WORK/o/r.csv"
finish
