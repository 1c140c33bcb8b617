#!/usr/bin/env bash
# segrec split and segrec evaluate end to end: protocols give the right
# proportions, no user is in both train and held out, splits do not depend on the
# rank count, evaluate agrees across rank counts and with topn_quality.py's scorer.
source "$(dirname "$0")/lib.sh"

seg 1 generate --users 500 --items 100 --seed 11 --events "$WORK/ev.csv" >/dev/null ||
  { bad "generate: $(cat "$WORK/err")"; finish; exit; }

# users_of FILE: distinct users of a split file (header skipped).
users_of() { tail -n +2 "$1" | cut -d, -f1 | sort -u; }

# ---- strong ----
for np in 1 2; do
  seg $np split --events "$WORK/ev.csv" --protocol strong --out "$WORK/s$np" ||
    bad "split strong -n $np: $(cat "$WORK/err")"
done
for f in train foldin test; do
  cmp -s "$WORK/s1/$f.csv" "$WORK/s2/$f.csv" || bad "strong $f.csv differs between -n 1 and -n 2"
done
ok "strong split identical at -n 1 and -n 2"
S="$WORK/s1"
head -1 "$S/train.csv" | cmp -s - <(head -1 "$WORK/ev.csv") && ok "input header copied" ||
  bad "header not copied"
[[ -z $(comm -12 <(users_of "$S/train.csv") <(users_of "$S/foldin.csv")) ]] &&
  [[ -z $(comm -12 <(users_of "$S/train.csv") <(users_of "$S/test.csv")) ]] &&
  ok "strong: no user both in train and held out" || bad "strong: users in train and held out"
kept=$(cat <(users_of "$S/train.csv") <(users_of "$S/foldin.csv") | sort -u | wc -l)
held=$(users_of "$S/foldin.csv" | wc -l)
want=$(awk -v n="$kept" 'BEGIN { printf "%d", n * 0.2 + 0.5 }')
[[ $held -eq $want ]] && ok "strong: $held of $kept users held out (round(0.2 n))" ||
  bad "strong: $held held out of $kept, want $want"
# Each held-out user: floor(0.2 n) of n distinct items in test.
awk -F, 'FNR == 1 { next } FILENAME ~ /foldin/ { f[$1 "," $2] = 1; u[$1] = 1; next }
         { t[$1 "," $2] = 1; u[$1] = 1 }
         END { for (k in f) { split(k, a, ","); nf[a[1]]++ } for (k in t) { split(k, a, ","); nt[a[1]]++ }
               for (x in u) { n = nf[x] + nt[x]; if (nt[x] != int(0.2 * n + 1e-9)) bad++ }
               exit bad > 0 }' "$S/foldin.csv" "$S/test.csv" &&
  ok "strong: each held-out user scores floor(0.2 n) items" || bad "strong: per-user proportions"
seg 1 split --events "$WORK/ev.csv" --protocol strong --seed 7 --out "$WORK/s7" &&
  ! cmp -s "$S/test.csv" "$WORK/s7/test.csv" && ok "--seed changes the split" || bad "--seed"

# ---- weak ----
seg 2 split --events "$WORK/ev.csv" --protocol weak --test-share 0.25 --out "$WORK/w" ||
  bad "weak: $(cat "$WORK/err")"
cmp -s <(users_of "$WORK/w/foldin.csv") <(users_of "$WORK/w/test.csv") &&
  ok "weak: fold-in covers exactly the scored users" || bad "weak: fold-in users"
awk -F, 'FNR == 1 { next } FILENAME ~ /train/ { f[$1 "," $2] = 1; next } { t[$1 "," $2] = 1; u[$1] = 1 }
         END { for (k in f) { split(k, a, ","); nf[a[1]]++ } for (k in t) { split(k, a, ","); nt[a[1]]++ }
               for (x in u) { n = nf[x] + nt[x]; if (nt[x] != int(0.25 * n + 1e-9)) bad++ }
               exit bad > 0 }' "$WORK/w/train.csv" "$WORK/w/test.csv" &&
  ok "weak: floor(0.25 n) items per user in test" || bad "weak: proportions"

# ---- temporal ----
seg 2 split --events "$WORK/ev.csv" --protocol temporal --last-n 2 --out "$WORK/t" ||
  bad "temporal: $(cat "$WORK/err")"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "timestamp") c = i }
         FNR == 1 { next } FILENAME ~ /train/ { if ($c > m[$1]) m[$1] = $c; next }
         { n[$1]++; if ($c < m[$1]) bad++ }
         END { for (x in n) if (n[x] != 2) bad++; exit bad > 0 }' "$WORK/t/train.csv" "$WORK/t/test.csv" &&
  ok "temporal: each scored user's 2 latest events in test" || bad "temporal: test rows"

# ---- bad inputs ----
expect_fail "unknown protocol" 1 2 "invalid value 'loo' for --protocol" split --events "$WORK/ev.csv" --protocol loo --out "$WORK/o/x"
expect_fail "share 1" 2 2 "for --holdout-share" split --events "$WORK/ev.csv" --holdout-share 1 --out "$WORK/o/x"
expect_fail "missing input" 2 3 "nope.csv" split --events "$WORK/nope.csv" --out "$WORK/o/x"

# ---- evaluate on the strong split ----
seg 2 ingest --events "$S/train.csv" --out "$WORK/tr.h5" &&
  seg 2 profile --data "$WORK/tr.h5" --out "$WORK/p.h5" &&
  seg 2 project --profiles "$WORK/p.h5" --dims 6 --out "$WORK/h.h5" &&
  seg 2 cluster --projection "$WORK/h.h5" --k 3 --out "$WORK/sg.h5" &&
  seg 2 train --data "$WORK/tr.h5" --profiles "$WORK/p.h5" --projection "$WORK/h.h5" \
    --segments "$WORK/sg.h5" --hidden 16 --epochs 2 --batch-size 64 --out "$WORK/m.h5" ||
  { bad "evaluate setup: $(cat "$WORK/err")"; finish; exit; }
E=(evaluate --model "$WORK/m.h5" --foldin "$S/foldin.csv" --test "$S/test.csv" --k 5,10,20)
seg 1 "${E[@]}" --json "$WORK/e1.json" && seg 3 "${E[@]}" --json "$WORK/e3.json" ||
  bad "evaluate: $(cat "$WORK/err")"
cmp -s "$WORK/e1.json" "$WORK/e3.json" && ok "evaluate: -n 1 and -n 3 give the same metrics" ||
  bad "evaluate differs: $(diff "$WORK/e1.json" "$WORK/e3.json" | head -4)"
grep -q "^popularity .* 10 " "$WORK/out" && grep -q "^segment-popularity" "$WORK/out" &&
  grep -q "^model " "$WORK/out" && grep -q "^served " "$WORK/out" && grep -q "^per segment" "$WORK/out" &&
  ok "evaluate table: baselines, model, per-segment breakdown" || bad "table: $(cat "$WORK/out")"
grep -q "\"users\": $held," "$WORK/e1.json" && ok "evaluate scores the $held held-out users" ||
  bad "evaluate users: $(head -3 "$WORK/e1.json")"

# Cross-check with topn_quality.py's scorer (when python3 with numpy and the anchors exist).
ANCHORS="${SHARED_DATA:-}/../anchors"
if [[ -f "$ANCHORS/topn_quality.py" ]] && /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  seg 2 recommend --model "$WORK/m.h5" --events "$S/foldin.csv" --top 20 --min-events 0 \
    --out "$WORK/recs.csv" || bad "recommend for the cross-check: $(cat "$WORK/err")"
  (cd "$ANCHORS" && /usr/bin/python3 topn_quality.py score "$S" "$WORK/recs.csv") >"$WORK/peer.json" 2>&1
  /usr/bin/python3 - "$WORK/peer.json" "$WORK/e1.json" <<'PY' && ok "metrics equal topn_quality.py's" || bad "cross-check: $(cat "$WORK/peer.json")"
import json, sys
peer = json.load(open(sys.argv[1])); ours = json.load(open(sys.argv[2]))["systems"]["model"]
bad = [k for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20") if abs(peer[k] - ours[k]) > 6e-5]
sys.exit(1 if bad else 0)
PY
else
  echo "skip topn_quality.py cross-check (no python3/numpy or anchors)"
fi

expect_fail "k 0" 2 2 "invalid value '0' for --k" \
  evaluate --model "$WORK/m.h5" --foldin "$S/foldin.csv" --test "$S/test.csv" --k 0
expect_fail "no test" 1 2 "for --test" evaluate --model "$WORK/m.h5" --foldin "$S/foldin.csv"
expect_fail "missing fold-in" 2 3 "nope.csv" evaluate --model "$WORK/m.h5" --foldin "$WORK/nope.csv" --test "$S/test.csv"
finish
