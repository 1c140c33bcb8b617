#!/usr/bin/env bash
# Top-N quality of `segrec train` with its default options on MovieLens 100K, under the
# protocol of /work/shared/anchors/topn_quality.py (ratings >= 4, users with >= 5 of them,
# 20% of the users held out with seed 7, 80% of each held-out user's items folded in, 20%
# scored). The held-out users' fold-in items are ingested with the training users (the
# segmentation sees them; no test item is ever read before scoring), then
#   profile -> project -> cluster -> train --test-items test.csv --compare-personalize
# and segrec prints Recall@20 and NDCG@100 of the held-out users for none, segment-input and
# segment-heads. An independent check follows: the `none` model's top 100 for the fold-in
# histories, computed in numpy from model.h5 (recs_from_model.py), scored by topn_quality.py.
#   bench/quality/run.sh [RATINGS] [NP] [SEEDS...]   (default: data/ml-100k/u.data, 1 rank, seed 42)
# WIDTHS="64 192 576 1000": instead, train the `none` model at each hidden width (--hidden) and
# print its held-out Recall@20 and NDCG@100 (the widths --hidden auto picks under a memory limit).
# FORMAT=csv: RATINGS is a CSV (header; user,item,rating|value,timestamp), as topn_quality.py
# reads it; interactions with a value >= 4 are kept.
# LOSSES="softmax sampled-softmax:256": instead, train the `none` model with each loss (LOSS or
# LOSS:NEGATIVES) and, in the same run, EASE (`--model-kind ease`, --l2 EASE_L2, default 200,
# scored by `segrec evaluate` on the same held-out users), and print their held-out Recall@20
# and NDCG@100.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATINGS=${1:-/work/shared/data/ml-100k/u.data}
NP=${2:-1}
shift $(($# > 2 ? 2 : $#))
SEEDS=("${@:-42}")
ANCHORS=${ANCHORS:-/work/shared/anchors}
SEGREC=${SEGREC:-$ROOT/build/segrec}
[[ -x "$SEGREC" ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun -n "$NP" --oversubscribe)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

/usr/bin/python3 "$ANCHORS/topn_quality.py" split "$RATINGS" "${FORMAT:-ml100k}" "$W"
{ cat "$W/train.csv"; tail -n +2 "$W/foldin.csv"; } >"$W/events.csv"
"${MPI[@]}" "$SEGREC" ingest -q --events "$W/events.csv" --out "$W/ds.h5"
"${MPI[@]}" "$SEGREC" profile -q --data "$W/ds.h5" --out "$W/prof.h5"
"${MPI[@]}" "$SEGREC" project -q --profiles "$W/prof.h5" --out "$W/proj.h5"
"${MPI[@]}" "$SEGREC" cluster -q --projection "$W/proj.h5" --k 4:12:2 --out "$W/seg.h5"
WIDTHS=${WIDTHS:-}
LOSSES=${LOSSES:-}
if [[ -n $LOSSES ]]; then
  echo "== EASE, l2 ${EASE_L2:-200}, $NP rank(s)"
  "${MPI[@]}" "$SEGREC" train -q --model-kind ease --l2 "${EASE_L2:-200}" --val-users 0 \
    --data "$W/ds.h5" --out "$W/ease.h5"
  "$SEGREC" evaluate -q --model "$W/ease.h5" --foldin "$W/foldin.csv" --test "$W/test.csv" \
    --k 100 --json "$W/ease.json" >/dev/null
  /usr/bin/python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["systems"]["model"]
print("EASE held-out: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k in ("recall@20", "ndcg@100")))' "$W/ease.json"
fi
for seed in "${SEEDS[@]}"; do
  if [[ -n $LOSSES ]]; then
    for l in $LOSSES; do
      neg=()
      [[ $l == *:* ]] && neg=(--negatives "${l#*:}")
      echo "== seed $seed, $NP rank(s), loss $l"
      "${MPI[@]}" "$SEGREC" train --seed "$seed" --loss "${l%%:*}" "${neg[@]}" --data "$W/ds.h5" \
        --test-items "$W/test.csv" --out "$W/model.h5" | grep -v '^epoch'
    done
    continue
  fi
  if [[ -n $WIDTHS ]]; then
    for w in $WIDTHS; do
      echo "== seed $seed, $NP rank(s), hidden $w"
      "${MPI[@]}" "$SEGREC" train --seed "$seed" --hidden "$w" --data "$W/ds.h5" \
        --test-items "$W/test.csv" --out "$W/model.h5" | grep -v '^epoch'
    done
    continue
  fi
  echo "== seed $seed, $NP rank(s)"
  "${MPI[@]}" "$SEGREC" train --seed "$seed" --data "$W/ds.h5" --segments "$W/seg.h5" \
    --test-items "$W/test.csv" --compare-personalize --out "$W/model.h5" | grep -v '^epoch'
  /usr/bin/python3 "$ROOT/bench/quality/recs_from_model.py" "$W/model.h5" "$W/foldin.csv" "$W/recs.csv"
  echo -n "topn_quality.py score of the none model: "
  /usr/bin/python3 "$ANCHORS/topn_quality.py" score "$W" "$W/recs.csv"
done
