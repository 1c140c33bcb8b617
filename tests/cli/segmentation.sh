#!/usr/bin/env bash
# profile and project end to end: generate -> ingest -> profile -> project at 1 and
# 2 ranks, and their bad-input table (exit code, one error line, nothing left behind);
# cluster's default thread count.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D"
seg 1 generate --users 600 --items 120 --events "$D/ev.csv" --items-out "$D/items.csv" &&
  seg 1 ingest --events "$D/ev.csv" --out "$D/ds.h5" && ok "input data set" ||
  { bad "input data set: $(cat "$WORK/err")"; finish; exit 1; }

for np in 1 2; do
  if seg $np profile --data "$D/ds.h5" --out "$D/p$np.h5" --item-categories "$D/items.csv" \
       --half-life-days 30 && grep -q "600 users x (120 items + .* behaviour statistics)" "$WORK/out"; then
    ok "profile (-n $np)"
  else
    bad "profile (-n $np): $(cat "$WORK/out" "$WORK/err")"
  fi
  if seg $np project --profiles "$D/p$np.h5" --dims 6 --out "$D/h$np.h5" &&
     grep -q "600 users x 6 dims (pca" "$WORK/out" && grep -q "total explained variance" "$WORK/out"; then
    grep -E '^ +[0-9]+ ' "$WORK/out" | awk '{print $1, $3}' >"$WORK/evr$np"
    ok "project (-n $np)"
  else
    bad "project (-n $np): $(cat "$WORK/out" "$WORK/err")"
  fi
done
cmp -s "$WORK/evr1" "$WORK/evr2" && ok "explained variance identical at 1 and 2 ranks" ||
  bad "explained variance differs: $(paste "$WORK/evr1" "$WORK/evr2")"

seg 2 project --profiles "$D/p1.h5" --dims 5000 --method random --out "$D/r.h5" &&
  grep -q "segrec: warning: --dims 5000 is more than the" "$WORK/err" &&
  grep -q "600 users x .* dims (random" "$WORK/out" && ok "dims above features: clamped, warned" ||
  bad "dims clamp: $(cat "$WORK/out" "$WORK/err")"

OUT="$WORK/o/x.h5"
for np in 1 2; do
  expect_fail "dims 0" $np 2 "invalid value '0' for --dims" \
    project --profiles "$D/p1.h5" --dims 0 --out "$OUT"
  expect_fail "unknown method" $np 2 "invalid value 'svd' for --method" \
    project --profiles "$D/p1.h5" --method svd --out "$OUT"
  expect_fail "data set given as profiles" $np 3 "is a segrec-dataset file, expected segrec-profiles" \
    project --profiles "$D/ds.h5" --out "$OUT"
  expect_fail "text file as profiles" $np 3 "is not an HDF5 file" \
    project --profiles "$D/items.csv" --out "$OUT"
  expect_fail "negative half-life" $np 2 "invalid value '-1' for --half-life-days" \
    profile --data "$D/ds.h5" --half-life-days -1 --out "$OUT"
  expect_fail "missing category file" $np 3 "cannot read --item-categories file" \
    profile --data "$D/ds.h5" --item-categories "$D/nope.csv" --out "$OUT"
  expect_fail "profiles given as data set" $np 3 "is a segrec-profiles file, expected segrec-dataset" \
    profile --data "$D/p1.h5" --out "$OUT"
done

# cluster's threads: with no thread variable, each rank takes its share of the node's CPUs
# (nproc without OMP_*: the affinity mask); the segments are those of one thread per rank.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
for np in 1 2; do
  want=$((cpus > np ? cpus / np : 1))
  if (unset OMP_NUM_THREADS SLURM_CPUS_PER_TASK
      seg $np cluster --projection "$D/h1.h5" --k 3 --out "$D/c$np.h5" --segments-csv "$D/c$np.csv") &&
     grep -q "on $np rank(s) x $want thread(s)" "$WORK/out"; then
    ok "cluster -n $np: $want thread(s) per rank by default"
  else
    bad "cluster -n $np threads (want $want): $(cat "$WORK/out" "$WORK/err")"
  fi
done
OMP_NUM_THREADS=1 seg 1 cluster --projection "$D/h1.h5" --k 3 --out "$D/c1t.h5" \
  --segments-csv "$D/c1t.csv" && grep -q "x 1 thread(s)" "$WORK/out" &&
  cmp -s "$D/c1.csv" "$D/c1t.csv" && cmp -s "$D/c1.csv" "$D/c2.csv" &&
  ok "the same segments with OMP_NUM_THREADS=1 and at 2 ranks" ||
  bad "segments differ with the thread count: $(cat "$WORK/err")"
finish
