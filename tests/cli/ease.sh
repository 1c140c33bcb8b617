#!/usr/bin/env bash
# segrec train --model-kind ease|popularity end to end: bad values and the memory limit (one
# error line, the exit code, no output left), the same lambda, validation NDCG and
# recommendations at 1 and 2 ranks, explanations, and a popularity model's lists.
source "$(dirname "$0")/lib.sh"

seg 2 generate --users 600 --items 120 --seed 5 --events "$WORK/ev.csv" >/dev/null &&
  seg 2 ingest --events "$WORK/ev.csv" --out "$WORK/ds.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
DS="$WORK/ds.h5"
M="$WORK/o/m.h5"
E=(train --data "$DS" --model-kind ease)

for np in 1 2; do
  expect_fail "l2 0" $np 2 "invalid value '0' for --l2: lambda must be > 0" "${E[@]}" --out "$M" --l2 0
  expect_fail "negative l2" $np 2 "invalid value '-3' for --l2" "${E[@]}" --out "$M" --l2=-3
  expect_fail "l2 list with 0" $np 2 "invalid value '50,0' for --l2" "${E[@]}" --out "$M" --l2 50,0
  expect_fail "auto l2 without validation" $np 2 "choosing lambda needs validation users" \
    "${E[@]}" --out "$M" --val-users 0
  expect_fail "unknown model kind" $np 2 "invalid value 'knn' for --model-kind" \
    train --data "$DS" --out "$M" --model-kind knn
  expect_fail "ease with segment heads" $np 2 "for --personalize: --model-kind ease reads the item history only" \
    "${E[@]}" --out "$M" --personalize segment-heads
  expect_fail "too many items for the memory limit" $np 3 \
    "^segrec: error: ease: 120 items need [0-9.]+ KiB per rank .* over the 100 KiB allowed per rank \(--max-memory-per-rank\)" \
    "${E[@]}" --out "$M" --max-memory-per-rank 100K
done

# The same model at 1 and 2 ranks: lambda, validation NDCG, recommendations.
mkdir -p "$WORK/m"
for np in 1 2; do
  if seg $np "${E[@]}" --l2 10,100,1000 --out "$WORK/m/e$np.h5"; then
    grep '^wrote' "$WORK/out" | sed -E 's/; fit .*//; s/^wrote [^:]*: //' >"$WORK/m/line$np"
    seg 1 recommend --model "$WORK/m/e$np.h5" --data "$DS" --top 5 --out "$WORK/m/r$np.csv" ||
      bad "recommend with the ease model of -n $np: $(cat "$WORK/err")"
  else
    bad "ease -n $np: $(cat "$WORK/err")"
  fi
done
if [[ -s $WORK/m/line1 ]] && cmp -s "$WORK/m/line1" "$WORK/m/line2"; then
  ok "ease: same lambda and validation NDCG at 1 and 2 ranks ($(cat "$WORK/m/line1"))"
else
  bad "ease: -n 1 '$(cat "$WORK/m/line1" 2>/dev/null)' vs -n 2 '$(cat "$WORK/m/line2" 2>/dev/null)'"
fi
if [[ -s $WORK/m/r1.csv ]] && cmp -s <(cut -d, -f1-3 "$WORK/m/r1.csv") <(cut -d, -f1-3 "$WORK/m/r2.csv"); then
  ok "ease: the same recommendations from the models of 1 and 2 ranks"
else
  bad "ease: recommendations differ between the models of 1 and 2 ranks"
fi

# Explanations name history items with their exact score effect.
if seg 2 recommend --model "$WORK/m/e2.h5" --data "$DS" --top 3 --explain --out "$WORK/m/x.csv" &&
  grep -qE 'ranked 1st; without .* it would be [0-9]+(st|nd|rd|th) \(score -' "$WORK/m/x.csv"; then
  ok "ease: --explain names history items"
else
  bad "ease --explain: $(head -c 300 "$WORK/err") $(head -3 "$WORK/m/x.csv" 2>/dev/null)"
fi

# Popularity: the top item of a user is the most counted item not in the history.
if seg 2 train --data "$DS" --model-kind popularity --out "$WORK/m/p.h5" &&
  seg 2 recommend --model "$WORK/m/p.h5" --data "$DS" --top 1 --out "$WORK/m/p.csv"; then
  n=$(tail -n +2 "$WORK/m/p.csv" | cut -d, -f3 | sort | uniq -c | sort -rn | head -1 | awk '{print $1}')
  users=$(tail -n +2 "$WORK/m/p.csv" | wc -l)
  # Most users get the same top item (those who have it get the next one).
  if [[ $users -gt 0 && $((2 * n)) -gt $users ]]; then
    ok "popularity: $n of $users users get the same top item"
  else
    bad "popularity: top items spread ($n of $users)"
  fi
else
  bad "popularity: $(cat "$WORK/err")"
fi
finish
