#!/usr/bin/env bash
# Next-item data end to end: generate --sequential and split --temporal-last give the same
# bytes at 1, 2 and 4 ranks; evaluate's full-ranking HR@10, NDCG@10 and MRR on a hand-made
# case with known ranks (popularity); bad option combinations.
source "$(dirname "$0")/lib.sh"

# ---- generate --sequential and split --temporal-last at 1, 2, 4 ranks ----
for np in 1 2 4; do
  seg $np generate --users 300 --items 120 --seed 5 --sequential --noise 0.02 \
    --events "$WORK/g$np.csv" >/dev/null || bad "generate --sequential -n $np: $(cat "$WORK/err")"
done
cmp -s "$WORK/g1.csv" "$WORK/g2.csv" && cmp -s "$WORK/g1.csv" "$WORK/g4.csv" &&
  ok "generate --sequential identical at -n 1, 2, 4" || bad "generate --sequential differs"
seg 1 generate --users 300 --items 120 --seed 5 --noise 0.02 --events "$WORK/plain.csv" >/dev/null
! cmp -s "$WORK/g1.csv" "$WORK/plain.csv" && ok "--sequential changes the log" || bad "--sequential"
seg 2 ingest --events "$WORK/g1.csv" --max-bad-fraction 0.1 --out "$WORK/ds.h5" ||
  bad "ingest: $(cat "$WORK/err")"
for np in 1 2 4; do
  seg $np split --temporal-last --data "$WORK/ds.h5" --out "$WORK/t$np" ||
    bad "split --temporal-last -n $np: $(cat "$WORK/err")"
done
same=1
for f in train valid foldin test; do
  for np in 2 4; do cmp -s "$WORK/t1/$f.csv" "$WORK/t$np/$f.csv" || same=0; done
done
[[ $same -eq 1 ]] && ok "split --temporal-last identical at -n 1, 2, 4" || bad "split differs by rank count"
grep -q "users scored" "$WORK/out" && ok "split reports: $(head -1 "$WORK/out" | cut -c1-110)" ||
  bad "split report: $(cat "$WORK/out")"
# One test and one validation row per scored user; the test row is the user's latest kept row.
awk -F, 'FNR == 1 { next } FILENAME ~ /test/ { t[$1]++; tt[$1] = $4; next }
         FILENAME ~ /valid/ { v[$1]++; next } { if ($4 > f[$1]) f[$1] = $4 }
         END { for (u in t) if (t[u] != 1 || v[u] != 1 || f[u] > tt[u]) bad++; exit bad > 0 }' \
  "$WORK/t1/test.csv" "$WORK/t1/valid.csv" "$WORK/t1/foldin.csv" &&
  ok "temporal-last: one target per user, after its fold-in rows" || bad "temporal-last rows"
seg 1 ingest --events "$WORK/t1/train.csv" --out "$WORK/tr.h5" &&
  ok "train.csv ingests back" || bad "train.csv: $(cat "$WORK/err")"

expect_fail "temporal-last with another protocol" 1 2 "for --protocol" \
  split --temporal-last --protocol weak --data "$WORK/ds.h5" --out "$WORK/o/x"
expect_fail "temporal-last without data" 2 2 "for --data" split --temporal-last --out "$WORK/o/x"
expect_fail "temporal-last with events" 1 2 "for --events" \
  split --temporal-last --data "$WORK/ds.h5" --events "$WORK/g1.csv" --out "$WORK/o/x"
expect_fail "sequence strength" 1 2 "for --sequence-strength" \
  generate --sequential --sequence-strength 2 --events "$WORK/o/x.csv"

# ---- full-ranking metrics on a hand-made case ----
# Training: item iK (K = 01..12) is held by 2 (13 - K) of 24 users, so popularity ranks
# i01 > i02 > ... > i12. Scored users (history excluded from the ranking):
#   a: history i05, target i01 -> rank 1;  b: history i01 i02, target i06 -> rank 4;
#   c: history i01, target i12 -> rank 11.
# HR@10 = 2/3, NDCG@10 = (1 + 1/log2 5) / 3 = 0.476892, MRR = (1 + 1/4 + 1/11) / 3 = 0.446970.
H="$WORK/hand"
mkdir -p "$H"
{
  echo "user_id,item_id,event,timestamp"
  for j in $(seq 1 24); do
    for k in $(seq 1 12); do
      [[ $j -le $((2 * (13 - k))) ]] && printf 'u%02d,i%02d,view,%d\n' "$j" "$k" $((1700000000 + 100 * j + k))
    done
  done
} >"$H/train.csv"
printf 'user_id,item_id,event,timestamp\na,i05,view,1\nb,i01,view,1\nb,i02,view,2\nc,i01,view,1\n' >"$H/foldin.csv"
printf 'user_id,item_id,event,timestamp\na,i01,view,5\nb,i06,view,5\nc,i12,view,5\n' >"$H/test.csv"
seg 1 ingest --events "$H/train.csv" --out "$H/ds.h5" &&
  seg 1 profile --data "$H/ds.h5" --out "$H/p.h5" &&
  seg 1 project --profiles "$H/p.h5" --dims 2 --out "$H/h.h5" &&
  seg 1 cluster --projection "$H/h.h5" --k 2 --out "$H/s.h5" &&
  seg 1 train --data "$H/ds.h5" --profiles "$H/p.h5" --projection "$H/h.h5" --segments "$H/s.h5" \
    --hidden 4 --epochs 1 --batch-size 8 --val-users 0 --out "$H/m.h5" ||
  { bad "hand-made model: $(cat "$WORK/err")"; finish; exit; }
for np in 1 2; do
  seg $np evaluate --model "$H/m.h5" --foldin "$H/foldin.csv" --test "$H/test.csv" --k 5,10 \
    --json "$H/e$np.json" || bad "evaluate -n $np: $(cat "$WORK/err")"
done
grep -q "popularity .*full ranking: HR@10 0.6667  NDCG@10 0.4769  MRR 0.4470" "$WORK/out" &&
  ok "table shows the full-ranking line" || bad "table: $(grep 'full ranking' "$WORK/out")"
/usr/bin/python3 - "$H/e1.json" <<'PY' && ok "popularity: HR@10 2/3, NDCG@10, MRR exact" || bad "hand case: $(cat "$H/e1.json")"
import json, sys
s = json.load(open(sys.argv[1]))["systems"]["popularity"]
want = {"full_hr@10": 0.666667, "full_ndcg@10": 0.476892, "full_mrr": 0.446970, "users": 3}
sys.exit(0 if all(abs(s[k] - v) < 1e-6 for k, v in want.items()) else 1)
PY
cmp -s "$H/e1.json" "$H/e2.json" && ok "evaluate identical at -n 1 and -n 2" || bad "evaluate differs"
seg 1 evaluate --model "$H/m.h5" --foldin "$H/foldin.csv" --test "$H/test.csv" --k 5,10 \
  --rank-k 0 --json "$H/e0.json" || bad "evaluate --rank-k 0: $(cat "$WORK/err")"
/usr/bin/python3 - "$H/e1.json" "$H/e0.json" <<'PY' && ok "--rank-k 0: the same metrics without the full ranking" || bad "--rank-k 0: $(cat "$H/e0.json")"
import json, sys
def strip(d):
    if isinstance(d, dict): return {k: strip(v) for k, v in d.items() if not k.startswith("full_")}
    if isinstance(d, list): return [strip(x) for x in d]
    return d
full, top = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if strip(full) == top and "full_mrr" not in json.dumps(top) else 1)
PY
finish
