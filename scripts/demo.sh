#!/usr/bin/env bash
# The whole pipeline on a generated data set under mpirun -n 2:
# installs what is missing, builds, generates, runs every stage, says where the outputs are.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/out/demo}
NP=${NP:-2}
USERS=${USERS:-20000}
"$ROOT/scripts/build.sh"
SEGREC="$ROOT/build/segrec"
MPIRUN=(mpirun -n "$NP" --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
mkdir -p "$OUT"
has() { "$SEGREC" "$1" --help >/dev/null 2>&1; }
run() { echo "+ segrec $*"; "${MPIRUN[@]}" "$SEGREC" "$@"; }

run generate --users "$USERS" --items 3000 --segments 8 --noise 0.002 \
  --events "$OUT/events.csv" --truth "$OUT/truth.csv" --items-out "$OUT/items.csv"
run ingest --events "$OUT/events.csv" --out "$OUT/dataset.h5"
if has profile; then
  run profile --data "$OUT/dataset.h5" --item-categories "$OUT/items.csv" --out "$OUT/profiles.h5"
fi
if has project; then
  run project --profiles "$OUT/profiles.h5" --dims 32 --out "$OUT/projection.h5"
fi
if has cluster; then
  run cluster --projection "$OUT/projection.h5" --k 8 --out "$OUT/segments.h5" \
    --segments-csv "$OUT/segments.csv"
fi
echo
echo "outputs are in $OUT:"
ls -l "$OUT"
