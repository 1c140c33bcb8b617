#!/usr/bin/env bash
# Faithfulness of `segrec recommend --explain` on MovieLens 100K (a deletion test), and
# what the explanation costs.
#   1. `segrec split` (strong: 20% of the users held out, 80% of their items folded in;
#      ratings >= 4, seed 42), `segrec run` on train, then recommend for the held-out users
#      from their fold-in events (new users, --min-events 0) with --explain.
#   2. For each held-out user's top-1 item, three reduced histories: without the 3 items
#      the explanation names, without 3 random history items, and without the 3 items the
#      co-occurrence heuristic names (the history items held by most training users together
#      with the recommended item). All three are rescored in one `segrec recommend` over the
#      whole catalogue; deletion.py reports how far the item falls (its rank among the
#      items outside the full history).
#   3. Cost: plain `recommend --top 10` against `recommend --top 10 --explain`, wall time
#      of the whole command (best of REPEAT), on the held-out users and on every training
#      user (--data).
#   bench/explain/run.sh        (env NP=1, REPEAT=3, WORK=mktemp, DATA=../shared/data/ml-100k)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NP=${NP:-1}
REPEAT=${REPEAT:-3}
DATA=${DATA:-$ROOT/../shared/data/ml-100k}
[[ -f $DATA/u.data ]] || { echo "skip: MovieLens 100K not found in $DATA"; exit 0; }
SEGREC=${SEGREC:-$ROOT/build/segrec}
[[ -x $SEGREC ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun -n "$NP" --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
W=${WORK:-$(mktemp -d)}
mkdir -p "$W"
PY=/usr/bin/python3
ML=(--format movielens)

"${MPI[@]}" "$SEGREC" split "${ML[@]}" --events "$DATA/u.data" --min-value 4 --seed 42 \
  --out "$W/split" -q
"${MPI[@]}" "$SEGREC" run "${ML[@]}" --events "$W/split/train.data" --out "$W/run" \
  --until train -q
M="$W/run/model.h5"
"${MPI[@]}" "$SEGREC" recommend -q --model "$M" "${ML[@]}" --events "$W/split/foldin.data" \
  --top 10 --min-events 0 --explain --out "$W/explain.csv"

# Deletion test.
$PY "$ROOT/bench/explain/deletion.py" make "$W/split/train.data" "$W/split/foldin.data" \
  "$W/explain.csv" "$W/reduced.data"
"${MPI[@]}" "$SEGREC" recommend -q --model "$M" "${ML[@]}" --events "$W/reduced.data" \
  --top 100000 --min-events 0 --out "$W/reduced.csv"
$PY "$ROOT/bench/explain/deletion.py" score "$W/split/foldin.data" "$W/explain.csv" \
  "$W/reduced.csv"

# Cost of --explain: best wall time of REPEAT runs each.
best() {
  local b=""
  for _ in $(seq "$REPEAT"); do
    local t0 t1
    t0=$(date +%s.%N)
    "${MPI[@]}" "$SEGREC" recommend -q --model "$M" "$@" >/dev/null
    t1=$(date +%s.%N)
    b=$(echo "$t0 $t1 $b" | awk '{ d = $2 - $1; if ($3 == "" || d < $3) print d; else print $3 }')
  done
  echo "$b"
}
echo
echo "cost of --explain (--top 10, $NP rank(s), best of $REPEAT, whole command):"
for who in held-out training; do
  if [[ $who == held-out ]]; then in=("${ML[@]}" --events "$W/split/foldin.data" --min-events 0)
  else in=(--data "$W/run/dataset.h5" --min-events 0); fi
  plain=$(best "${in[@]}" --top 10 --out "$W/plain.csv")
  expl=$(best "${in[@]}" --top 10 --explain --out "$W/expl.csv")
  users=$(($(cut -d, -f1 "$W/plain.csv" | sort -u | wc -l) - 1))
  awk -v w="$who" -v u="$users" -v p="$plain" -v e="$expl" \
    'BEGIN { printf "  %-9s users %5d: plain %.3f s, --explain %.3f s, ratio %.2fx\n", w, u, p, e, e / p }'
done
