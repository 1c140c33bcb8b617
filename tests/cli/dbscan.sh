#!/usr/bin/env bash
# cluster --algorithm dbscan end to end: generate -> ingest -> profile -> project -> cluster
# at 1 and 2 ranks (same labels), noise as segment -1 in segments.csv and "unsegmented" in the
# report, the k-distance curve in the report JSON, -1 refused by segment-aware training, the
# whole `segrec run` with DBSCAN, and bad options.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D"
seg 2 generate --users 800 --items 100 --events "$D/ev.csv" >/dev/null &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" &&
  seg 2 profile --data "$D/ds.h5" --out "$D/p.h5" &&
  seg 2 project --profiles "$D/p.h5" --dims 4 --out "$D/h.h5" && ok "input projection" ||
  { bad "input projection: $(cat "$WORK/err")"; finish; exit 1; }

for np in 1 2; do
  if seg $np cluster --projection "$D/h.h5" --algorithm dbscan --eps auto --min-samples 8 \
       --threads 2 --out "$D/s$np.h5" &&
     grep -q "DBSCAN" "$WORK/out" && grep -qE "^eps [0-9.e-]+ \(auto\), min-samples 8: " "$WORK/out"; then
    ok "cluster --algorithm dbscan --eps auto (-n $np): $(grep -E '^eps' "$WORK/out")"
  else
    bad "cluster dbscan (-n $np): $(cat "$WORK/out" "$WORK/err")"
  fi
done
cmp -s "$D/s1.csv" "$D/s2.csv" && ok "segments.csv identical at 1 and 2 ranks" ||
  bad "segments.csv differs at 1 and 2 ranks"
noise=$(awk -F, 'NR > 1 && $2 == -1' "$D/s1.csv" | wc -l)
json_noise=$(grep -oE '"noise": [0-9]+' "$D/s1.json" | head -1 | grep -oE '[0-9]+$')
[[ $noise -gt 0 && $noise == "$json_noise" ]] &&
  grep -qE "\"unsegmented\": $noise" "$D/s1.json" && grep -q "| unsegmented | $noise |" "$D/s1.md" &&
  ok "noise users: segment -1 in the CSV, unsegmented in the report ($noise)" ||
  bad "noise users: csv $noise, json '$json_noise': $(grep -E 'unsegmented' "$D/s1.json" "$D/s1.md")"
grep -qE '"kdistance": \{"k": 8, "knee": [0-9]+, "knee_eps": [0-9.e-]+, "sorted": \[' "$D/s1.json" &&
  ok "k-distance curve in the report JSON" || bad "no k-distance curve in $D/s1.json"

# A fixed eps: the curve only when --kdist-sample is given.
seg 1 cluster --projection "$D/h.h5" --algorithm dbscan --eps 0.5 --out "$D/f.h5" &&
  ! grep -q kdistance "$D/f.json" && ok "fixed eps: no k-distance curve" ||
  bad "fixed eps: $(cat "$WORK/err")"

# train needs a segment for every user: noise (-1) is refused with one clear line.
expect_fail "train on DBSCAN noise" 2 3 "holds segment -1 outside \[0, [0-9]+\) \(-1 is a user in no segment" \
  train --data "$D/ds.h5" --segments "$D/s1.h5" --personalize segment-input --segment-embedding 4 --epochs 1 \
  --out "$WORK/o/m.h5"

# The whole pipeline with DBSCAN: run passes no --k and no --previous; a model without segment
# inputs trains beside the noise users, and recommend counts them as unsegmented.
if seg 2 run --events "$D/ev.csv" --algorithm dbscan --eps auto --min-samples 8 --epochs 1 \
     --hidden 16 --out "$WORK/run"; then
  csv_noise=$(awk -F, 'NR > 1 && $2 == -1' "$WORK/run/segments.csv" | wc -l)
  grep -q "DBSCAN" "$WORK/out" && [[ $csv_noise -gt 0 ]] &&
    grep -qE "^users per segment: .* unsegmented:$csv_noise$" "$WORK/out" &&
    [[ -s "$WORK/run/recommendations.csv" ]] &&
    ok "run --algorithm dbscan: every stage, $csv_noise unsegmented users" ||
    bad "run --algorithm dbscan: $(grep -E 'DBSCAN|per segment' "$WORK/out")"
else
  bad "run --algorithm dbscan: $(tail -3 "$WORK/err")"
fi
expect_fail "run: --k with dbscan" 1 2 "--k cannot be used with --algorithm dbscan" \
  run --events "$D/ev.csv" --algorithm dbscan --eps 1 --k 4 --out "$WORK/o/r"

OUT="$WORK/o/x.h5"
for np in 1; do
  expect_fail "eps 0" $np 2 "invalid value '0' for --eps: give a radius > 0" \
    cluster --projection "$D/h.h5" --algorithm dbscan --eps 0 --out "$OUT"
  expect_fail "no eps" $np 2 "invalid value '' for --eps" \
    cluster --projection "$D/h.h5" --algorithm dbscan --out "$OUT"
  expect_fail "min-samples 0" $np 2 "invalid value '0' for --min-samples: must be at least 1" \
    cluster --projection "$D/h.h5" --algorithm dbscan --eps 1 --min-samples 0 --out "$OUT"
  expect_fail "k with dbscan" $np 2 "--k cannot be used with --algorithm dbscan" \
    cluster --projection "$D/h.h5" --algorithm dbscan --eps 1 --k 4 --out "$OUT"
  expect_fail "eps without dbscan" $np 2 "--eps '1' needs --algorithm dbscan" \
    cluster --projection "$D/h.h5" --k 4 --eps 1 --out "$OUT"
  expect_fail "unknown algorithm" $np 2 "invalid value 'optics' for --algorithm: use auto, lloyd, hamerly, gmm or dbscan" \
    cluster --projection "$D/h.h5" --algorithm optics --out "$OUT"
done
finish
