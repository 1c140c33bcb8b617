#!/usr/bin/env bash
# Results do not depend on the rank count: generate writes byte-identical files
# and ingest writes identical datasets (provenance attributes aside) at -n 1..4.
source "$(dirname "$0")/lib.sh"

for np in 1 2 3 4; do
  if seg "$np" generate --users 3000 --items 500 --noise 0.01 --seed 11 \
      --events "$WORK/ev$np.csv" --truth "$WORK/truth$np.csv" --items-out "$WORK/items$np.csv"; then
    ok "generate -n $np"
  else
    bad "generate -n $np: $(cat "$WORK/err")"
  fi
done
for np in 2 3 4; do
  for f in ev truth items; do
    cmp -s "$WORK/${f}1.csv" "$WORK/$f$np.csv" && ok "generate $f identical at -n $np" ||
      bad "generate $f differs at -n $np"
  done
done

for np in 1 2 3 4; do
  if seg "$np" ingest --events "$WORK/ev1.csv" --events "$DATA/events_small.csv" \
      --out "$WORK/d$np.h5" --min-item-users 2; then
    seg 1 inspect --digest "$WORK/d$np.h5" && grep digest "$WORK/out" >"$WORK/digest$np"
    ok "ingest -n $np"
  else
    bad "ingest -n $np: $(cat "$WORK/err")"
  fi
done
[[ $(wc -l <"$WORK/digest1") -ge 20 ]] && ok "digest lists the datasets" || bad "digest: $(cat "$WORK/digest1")"
for np in 2 3 4; do
  diff -q "$WORK/digest1" "$WORK/digest$np" >/dev/null && ok "dataset identical at -n $np" ||
    bad "dataset differs at -n $np: $(diff "$WORK/digest1" "$WORK/digest$np" | head -5)"
done

if [[ -f "${SHARED_DATA:-/nonexistent}/ml-100k/u.data" ]]; then
  for np in 1 3; do
    seg "$np" ingest --format movielens --min-value 4 --events "$SHARED_DATA/ml-100k/u.data" \
      --out "$WORK/ml$np.h5" && seg 1 inspect --digest "$WORK/ml$np.h5" &&
      grep digest "$WORK/out" >"$WORK/mldigest$np"
  done
  diff -q "$WORK/mldigest1" "$WORK/mldigest3" >/dev/null && ok "MovieLens dataset identical at -n 3" ||
    bad "MovieLens dataset differs"
else
  echo "skip MovieLens check: ${SHARED_DATA:-../shared/data}/ml-100k not present"
fi
finish
