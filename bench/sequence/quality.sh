#!/usr/bin/env bash
# Next-item quality on a temporal-last split: popularity, EASE, the bag MLP and the sequence
# model (segrec train --model-kind popularity|ease|mlp|sequence, segrec evaluate, full ranking,
# history excluded) against the PyTorch peer (torch_peer.py, SASRec by default), on MovieLens
# 100K (every rating an event) and on a generate --sequential log. One table per data set of
# test HR@10, NDCG@10 and MRR, and each system's ratio to the peer.
# Both sides split the same events: the log is written as CSV sorted by user, time and item
# number (MovieLens ids as integers), which reproduces the order ingest keeps in /log on these
# logs, so the peer's tie-break (file order) matches split --temporal-last's (item index);
# the script checks that both pick the same test target for every user ("0 differ"). Timings (per system, seconds) are noisy on a shared machine.
# The sequence model runs at segrec's defaults (auto epochs, early stopping on its validation
# users); the peer at up to PEER_EPOCHS epochs with early stopping (patience 10) on its
# validation target. SEED is passed to both.
#   bench/sequence/quality.sh [RATINGS]   env: NP (2), EPOCHS (20, the bag MLP's),
#   PEER (sasrec|gru), PEER_EPOCHS (200), SEED (1), GEN_USERS (3000), GEN_ITEMS (500),
#   DATASETS ("ml gen")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATINGS=${1:-/work/shared/data/ml-100k/u.data}
NP=${NP:-2}
EPOCHS=${EPOCHS:-20}
PEER=${PEER:-sasrec}
PEER_EPOCHS=${PEER_EPOCHS:-200}
SEED=${SEED:-1}
ANCHORS=${ANCHORS:-/work/shared/anchors}
SEGREC=${SEGREC:-$ROOT/build/segrec}
[[ -x "$SEGREC" ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
ln -sf "$ANCHORS/_fairblas.py" "$W/_fairblas.py"
cp "$ROOT/bench/sequence/torch_peer.py" "$W/"
seg() { "${MPI[@]}" -n "$NP" "$SEGREC" "$@"; }

# bench NAME EVENTS.csv: split, train, evaluate every system, run the peer, print the table.
bench() {
  local name=$1 ev=$2 d="$W/$1"
  mkdir -p "$d"
  seg ingest -q --events "$ev" --out "$d/all.h5"
  seg split -q --temporal-last --data "$d/all.h5" --out "$d/split" >/dev/null
  seg ingest -q --events "$d/split/train.csv" --out "$d/train.h5"
  # The peer's rule on the same file: the test target of every user with >= 3 distinct items.
  /usr/bin/python3 - "$ev" "$d/split/test.csv" <<'PY'
import sys
import numpy as np, pandas as pd
df = pd.read_csv(sys.argv[1], dtype={"user_id": str, "item_id": str})
df["order"] = np.arange(len(df))
df = df.sort_values(["user_id", "timestamp", "order"], kind="stable")
df = df.drop_duplicates(["user_id", "item_id"], keep="first")
peer = {u: g.item_id.iloc[-1] for u, g in df.groupby("user_id") if len(g) >= 3}
seg = dict(pd.read_csv(sys.argv[2], dtype={"user_id": str, "item_id": str})[["user_id", "item_id"]].values)
diff = sum(peer.get(u) != i for u, i in seg.items()) + len(set(peer) - set(seg))
print(f"split check: {len(seg)} test users (segrec), {len(peer)} (peer rule), {diff} differ")
PY
  local -a sys_names=(popularity ease mlp sequence)
  local -a sys_args=("--model-kind popularity" "--model-kind ease"
    "--model-kind mlp --epochs $EPOCHS"
    "--model-kind sequence --seed $SEED")
  : >"$d/rows"
  for s in 0 1 2 3; do
    local t0=$SECONDS
    # shellcheck disable=SC2086
    seg train -q --data "$d/train.h5" ${sys_args[$s]} --out "$d/${sys_names[$s]}.h5" >/dev/null
    seg evaluate -q --model "$d/${sys_names[$s]}.h5" --foldin "$d/split/foldin.csv" \
      --test "$d/split/test.csv" --k 10 --min-events 0 --json "$d/${sys_names[$s]}.json" >/dev/null
    /usr/bin/python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['systems']['model']
print(sys.argv[2], m['full_hr@10'], m['full_ndcg@10'], m['full_mrr'], sys.argv[3])" \
      "$d/${sys_names[$s]}.json" "segrec-${sys_names[$s]}" $((SECONDS - t0)) >>"$d/rows"
  done
  local t0=$SECONDS
  /usr/bin/python3 "$W/torch_peer.py" "$ev" --model "$PEER" --epochs "$PEER_EPOCHS" --threads 2 \
    --seed "$SEED" --patience 10 \
    2>/dev/null >"$d/peer.json"
  /usr/bin/python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['test']
print(sys.argv[2], m['hr10'], m['ndcg10'], m['mrr'], sys.argv[3])" \
    "$d/peer.json" "torch-$PEER" $((SECONDS - t0)) >>"$d/rows"
  echo "== $name ($(sed -n 's/.*"users": \([0-9]*\), "items": \([0-9]*\), "eval_users": \([0-9]*\).*/\1 users, \2 items, \3 test users/p' "$d/peer.json"))"
  awk 'BEGIN { printf "%-18s %8s %8s %8s %7s %7s %7s %6s\n", "system", "HR@10", "NDCG@10", "MRR",
               "HR/p", "NDCG/p", "MRR/p", "s" }
       { n[NR] = $1; h[NR] = $2; g[NR] = $3; m[NR] = $4; t[NR] = $5 }
       END { for (r = 1; r <= NR; r++)
               printf "%-18s %8.4f %8.4f %8.4f %7.2f %7.2f %7.2f %6d\n", n[r], h[r], g[r], m[r],
                      h[r] / h[NR], g[r] / g[NR], m[r] / m[NR], t[r] }' "$d/rows"
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $NP ranks, segrec epochs $EPOCHS, seed $SEED, peer $PEER (<= $PEER_EPOCHS epochs, patience 10)"
# MovieLens: every rating is an event; sorted by user, time, item id as a number.
if [[ " ${DATASETS:-ml gen} " == *" ml "* ]]; then
awk -F'\t' 'BEGIN { OFS = "," } { print $1, $2, $4 }' "$RATINGS" | LC_ALL=C sort -t, -k1,1 -k3,3n -k2,2n |
  awk 'BEGIN { print "user_id,item_id,timestamp" } { print }' >"$W/ml.csv"
bench "MovieLens 100K" "$W/ml.csv"
fi
[[ " ${DATASETS:-ml gen} " == *" gen "* ]] || exit 0
seg generate -q --users "${GEN_USERS:-3000}" --items "${GEN_ITEMS:-500}" --seed 7 --sequential \
  --noise 0.02 --events "$W/gen_raw.csv" >/dev/null
/usr/bin/python3 - "$W/gen_raw.csv" "$W/gen.csv" <<'PY'
import sys, pandas as pd
df = pd.read_csv(sys.argv[1], dtype={"user_id": str, "item_id": str})
# Rows without a timestamp are dropped for both sides. Ties in time: items by the number
# in their id, then the id (ingest's item order).
df["num"] = df.item_id.str.extract(r"(\d+)$", expand=False).fillna(-1).astype(int)
df = df.dropna(subset=["timestamp"])
df = df.sort_values(["user_id", "timestamp", "num", "item_id"], kind="stable").drop(columns="num")
df.to_csv(sys.argv[2], index=False)
PY
bench "generate --sequential" "$W/gen.csv"
