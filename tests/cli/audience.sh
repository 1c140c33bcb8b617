#!/usr/bin/env bash
# segrec audience end to end: the same audiences at 1 to 4 ranks; owners left out (or kept);
# --segment, --min-events, --items-file; the segment summary and its floor; pseudonyms;
# bad inputs (one error line, exit code, no output).
source "$(dirname "$0")/lib.sh"

model_fixture "$WORK" 400 80 7 5 3 ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
M="$WORK/m.h5"
ITEMS=i000001,i000007,i000030

# Rank invariance: the same files, scores to the last digit.
for np in 1 2 3 4; do
  seg $np audience --model "$M" --data "$WORK/ds.h5" --items $ITEMS --top 25 \
    --min-report-users 1 --block-users 37 --out "$WORK/a$np.csv" || bad "-n $np: $(cat "$WORK/err")"
done
head -1 "$WORK/a1.csv" | grep -qx "item_id,rank,user_id,score,segment" && ok "CSV header" ||
  bad "header: $(head -1 "$WORK/a1.csv")"
[[ $(wc -l <"$WORK/a1.csv") -eq $((3 * 25 + 1)) ]] && ok "25 rows per item" ||
  bad "rows: $(wc -l <"$WORK/a1.csv")"
[[ $(cut -d, -f1 "$WORK/a1.csv" | sed 1d | uniq | paste -sd,) == "$ITEMS" ]] &&
  ok "grouped by item in the order given" || bad "item order: $(cut -d, -f1 "$WORK/a1.csv" | uniq)"
for np in 2 3 4; do
  cmp -s "$WORK/a1.csv" "$WORK/a$np.csv" && cmp -s "$WORK/a1_summary.json" "$WORK/a${np}_summary.json" &&
    ok "-n $np writes the files of -n 1, byte for byte" ||
    bad "-n $np differs: $(diff "$WORK/a1.csv" "$WORK/a$np.csv" | head -4)"
done
sort -t, -k1,1 -k4,4gr "$WORK/a1.csv" | sed '/^item_id/d' | cut -d, -f1,3 >"$WORK/by_score"
cmp -s "$WORK/by_score" <(sed 1d "$WORK/a1.csv" | sort -t, -k1,1 -s | cut -d, -f1,3) &&
  ok "ranks follow the scores" || bad "ranks out of score order"

# Owners: left out by default, kept with --exclude-owned=false when they score high.
owned() { # pairs item,user of the history that appear in the CSV $1
  awk -F, 'NR == FNR { if (FNR > 1) h[$2 "," $1] = 1; next }
           FNR > 1 && (($1 "," $3) in h) { n++ } END { print n + 0 }' "$WORK/ev.csv" "$1"
}
[[ $(owned "$WORK/a1.csv") -eq 0 ]] && ok "no user who holds the item" ||
  bad "owners chosen: $(owned "$WORK/a1.csv")"
seg 2 audience --model "$M" --data "$WORK/ds.h5" --items $ITEMS --top 400 --exclude-owned=false \
  --out "$WORK/all.csv" || bad "--exclude-owned=false: $(cat "$WORK/err")"
[[ $(owned "$WORK/all.csv") -gt 0 && $(wc -l <"$WORK/all.csv") -eq $((3 * 400 + 1)) ]] &&
  ok "--exclude-owned=false: every user, owners included" ||
  bad "--exclude-owned=false: $(owned "$WORK/all.csv") owners, $(wc -l <"$WORK/all.csv") rows"

# --top over the eligible users: all of them, as the summary counts them.
seg 2 audience --model "$M" --data "$WORK/ds.h5" --items i000001 --top 100000 --out "$WORK/big.csv" &&
  eligible=$(grep -o '"eligible": [0-9]*' "$WORK/big_summary.json" | grep -o '[0-9]*$') &&
  [[ $(($(wc -l <"$WORK/big.csv") - 1)) -eq $eligible && $eligible -lt 400 && $eligible -gt 0 ]] &&
  ok "--top over the eligible: $eligible users" || bad "big top: $(cat "$WORK/err")"

# Filters: --segment (with --segments) and --min-events.
seg 3 audience --model "$M" --data "$WORK/ds.h5" --segments "$WORK/s.h5" --items $ITEMS \
  --top 30 --segment 1,2 --out "$WORK/seg.csv" || bad "--segment: $(cat "$WORK/err")"
[[ $(sed 1d "$WORK/seg.csv" | cut -d, -f5 | sort -u | paste -sd,) == "1,2" ]] &&
  ok "--segment 1,2: only those segments" || bad "--segment: $(cut -d, -f5 "$WORK/seg.csv" | sort | uniq -c)"
awk -F, 'NR > 1 { n[$1]++ } END { for (u in n) print u "," n[u] }' "$WORK/ev.csv" | sort >"$WORK/events"
seg 2 audience --model "$M" --data "$WORK/ds.h5" --items $ITEMS --top 400 --min-events 15 \
  --out "$WORK/me.csv" || bad "--min-events: $(cat "$WORK/err")"
few=$(awk -F, 'NR == FNR { n[$1] = $2; next } FNR > 1 && n[$3] < 15 { c++ } END { print c + 0 }' \
  "$WORK/events" "$WORK/me.csv")
rows=$(($(wc -l <"$WORK/me.csv") - 1))
[[ $few -eq 0 && $rows -gt 0 && $rows -lt $(($(wc -l <"$WORK/all.csv") - 1)) ]] &&
  ok "--min-events 15: $rows rows, none for users with fewer events" ||
  bad "--min-events: $few users under 15, $rows rows"

# --items-file (comments, blank lines) = --items.
printf '# campaign\ni000001\n\ni000007\n i000030 \n' >"$WORK/items.txt"
seg 2 audience --model "$M" --data "$WORK/ds.h5" --items-file "$WORK/items.txt" --top 25 \
  --min-report-users 1 --out "$WORK/f.csv" && cmp -s "$WORK/f.csv" "$WORK/a2.csv" &&
  ok "--items-file = --items" || bad "--items-file: $(cat "$WORK/err")"

# The summary: printed and written; shares add up; the floor pools small segments.
[[ -s "$WORK/a1_summary.json" ]] && grep -q '"item_id": "i000030"' "$WORK/a1_summary.json" &&
  seg 1 audience --model "$M" --data "$WORK/ds.h5" --items i000001 --top 25 --min-report-users 1 \
    --out "$WORK/s1.csv" && grep -q "^item i000001: 25 users chosen of" "$WORK/out" &&
  ok "summary printed and written" || bad "summary: $(cat "$WORK/out")"
users=$(awk -F'"users": ' 'NR > 3 { for (i = 2; i <= NF; i++) { split($i, a, ","); s += a[1] } } END { print s }' \
  "$WORK/s1_summary.json")
[[ $users -eq 25 ]] && ok "segment counts add up to the audience" || bad "segment counts: $users"
seg 1 audience --model "$M" --data "$WORK/ds.h5" --items i000001 --top 25 --min-report-users 100 \
  --out "$WORK/fl.csv" && grep -q '"segments": \[\]' "$WORK/fl_summary.json" &&
  grep -q "with fewer than 100 users of this audience (count withheld)" "$WORK/out" &&
  ok "--min-report-users: small segments pooled, count withheld" || bad "floor: $(cat "$WORK/out")"

# Pseudonyms: HMAC-SHA256(KEY, id), first 32 hex digits; the same rows otherwise.
KEY=0123456789abcdef-test-key
SEGREC_TEST_KEY=$KEY seg 2 audience --model "$M" --data "$WORK/ds.h5" --items $ITEMS --top 25 \
  --min-report-users 1 --pseudonymize env:SEGREC_TEST_KEY --out "$WORK/ps.csv" ||
  bad "pseudonymize: $(cat "$WORK/err")"
first=$(sed -n 2p "$WORK/a2.csv" | cut -d, -f3)
want=$(printf %s "$first" | openssl dgst -sha256 -hmac "$KEY" -r | cut -c1-32)
[[ $(sed -n 2p "$WORK/ps.csv" | cut -d, -f3) == "$want" ]] &&
  cmp -s <(cut -d, -f1,2,4,5 "$WORK/a2.csv") <(cut -d, -f1,2,4,5 "$WORK/ps.csv") &&
  ! grep -q ",u0" "$WORK/ps.csv" && ok "--pseudonymize: HMAC ids, same audiences" ||
  bad "pseudonyms: $(sed -n 2p "$WORK/ps.csv"), want $want"

# Bad inputs.
seg 1 generate --users 50 --items 30 --seed 9 --events "$WORK/other.csv" >/dev/null &&
  seg 1 ingest --events "$WORK/other.csv" --out "$WORK/other.h5" || bad "other data"
printf 'i000001\nnot-an-item\n' >"$WORK/bad_items.txt"
A=(audience --model "$M" --data "$WORK/ds.h5")
for np in 2; do
  expect_fail "unknown item" $np 3 "item 'zz9' \(--items\) is not one of the 80 items" \
    "${A[@]}" --items i000001,zz9 --out "$WORK/o/a.csv"
  expect_fail "unknown item in a file" $np 3 "'not-an-item' \(line 2 of" \
    "${A[@]}" --items-file "$WORK/bad_items.txt" --out "$WORK/o/a.csv"
  expect_fail "top 0" $np 2 "invalid value '0' for --top" "${A[@]}" --items i000001 --top 0 --out "$WORK/o/a.csv"
  expect_fail "no items" $np 2 "for --items" "${A[@]}" --out "$WORK/o/a.csv"
  expect_fail "model and data differ" $np 3 "trained on other items" \
    audience --model "$M" --data "$WORK/other.h5" --items i000001 --out "$WORK/o/a.csv"
  expect_fail "segment without segments" $np 2 "needs --segments" "${A[@]}" --items i000001 --segment 1 --out "$WORK/o/a.csv"
  expect_fail "segment out of range" $np 2 "for --segment" "${A[@]}" --segments "$WORK/s.h5" \
    --items i000001 --segment 7 --out "$WORK/o/a.csv"
  expect_fail "missing items file" $np 3 "--items-file" "${A[@]}" --items-file "$WORK/nope.txt" --out "$WORK/o/a.csv"
done
finish
