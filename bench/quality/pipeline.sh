#!/usr/bin/env bash
# Top-N quality on MovieLens 100K with the strong-generalisation protocol of
# ../shared/anchors/topn_quality.py (ratings >= 4, users with >= 5 positives, 20% of the
# users held out, 80% of each held-out user's items folded in, 20% scored), in one run:
# popularity and EASE (the anchors) beside segrec at its DEFAULT options (personalize none) and
# with per-segment output heads (--personalize segment-heads), to show what the segments add. segrec trains with `segrec run` on train.csv and recommends for the
# held-out users from foldin.csv with `segrec recommend --events` (users never seen in
# training); topn_quality.py scores every recommendations CSV the same way.
#   bench/quality/run.sh [SEEDS]     (default "7": the reference split; e.g. "7 1 2 3")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEEDS=${1:-7}
NP=${NP:-2}
DATA=${DATA:-$ROOT/../shared/data/ml-100k/u.data}
ANCHORS=${ANCHORS:-$ROOT/../shared/anchors}
WORK=${WORK:-${TMPDIR:-/tmp}/segrec-bench-quality}
[[ -f $DATA ]] || { echo "skip: MovieLens 100K not found at $DATA"; exit 0; }
"$ROOT/scripts/setup.sh" --bench
"$ROOT/scripts/build.sh" >/dev/null
SEGREC="$ROOT/build/segrec"
MPI=(mpirun -n "$NP" --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
Q=(/usr/bin/python3 "$ANCHORS/topn_quality.py")
mkdir -p "$WORK"

for seed in $SEEDS; do
  S="$WORK/split-$seed"
  [[ -f $S/test.csv ]] || "${Q[@]}" split "$DATA" ml100k "$S" --seed "$seed" >/dev/null
  [[ -f $S/anchors.json ]] || "${Q[@]}" anchors "$S" >"$S/anchors.json"
  for mode in default segment-heads; do
    R="$S/segrec-$mode"
    extra=()
    [[ $mode == segment-heads ]] && extra=(--personalize segment-heads)
    "${MPI[@]}" "$SEGREC" run --events "$S/train.csv" --out "$R" "${extra[@]}" -q
    "${MPI[@]}" "$SEGREC" recommend --model "$R/model.h5" --events "$S/foldin.csv" --top 100 \
      --out "$R/recs.csv" -q
    "${Q[@]}" score "$S" "$R/recs.csv" >"$R/score.json"
  done
done

/usr/bin/python3 - "$WORK" $SEEDS <<'PY'
import json, sys, statistics as st
work, seeds = sys.argv[1], sys.argv[2:]
rows = {}
for s in seeds:
    d = f"{work}/split-{s}"
    a = json.load(open(f"{d}/anchors.json"))
    got = {"popularity": a["popularity"], "EASE (best lambda on test)": a["ease(best lambda on test: optimistic)"],
           "segrec (default options)": json.load(open(f"{d}/segrec-default/score.json")),
           "segrec --personalize segment-heads": json.load(open(f"{d}/segrec-segment-heads/score.json"))}
    for name, m in got.items():
        rows.setdefault(name, []).append((m["recall@20"], m["ndcg@100"], m["recall@50"]))
print(f"MovieLens 100K, strong generalisation, split seed(s) {' '.join(seeds)}" +
      (" (mean over seeds)" if len(seeds) > 1 else ""))
print(f"{'':36s}{'Recall@20':>10s}{'Recall@50':>10s}{'NDCG@100':>10s}")
for name, v in rows.items():
    r20, n100, r50 = (st.mean(x[i] for x in v) for i in (0, 1, 2))
    print(f"{name:36s}{r20:10.4f}{r50:10.4f}{n100:10.4f}")
print("targets (segrec default): Recall@20 >= 0.39, NDCG@100 >= 0.43")
PY
