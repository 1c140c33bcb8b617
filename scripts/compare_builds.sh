#!/usr/bin/env bash
# Runs the same `segrec run` with two builds and compares every output: the digest of each
# HDF5 dataset (`segrec inspect --digest`; wall-time curves such as /curves/seconds left out)
# and the bytes of each CSV, Markdown and JSON output other than the run report (timings).
#
#   scripts/compare_builds.sh OLD_SEGREC NEW_SEGREC WORK_DIR [RANKS...]
#
# Data: a generated log (USERS users, default 3000, seed 7) and, when ML100K names a folder
# holding u.data (default ../shared/data/ml-100k beside the checkout), MovieLens 100K.
# RANKS defaults to "1 2". EXTRA holds options added to every run (e.g. "--epochs 10").
# A run folder that already holds report.json is reused. Prints one table row per
# (data, ranks, file) and exits 1 if any output differs.
set -euo pipefail
[[ $# -ge 3 ]] || { sed -n 2,12p "$0" >&2; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2") WORK=$3
shift 3
ranks=("$@")
[[ ${#ranks[@]} -gt 0 ]] || ranks=(1 2)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ML100K=${ML100K:-$ROOT/../shared/data/ml-100k}
USERS=${USERS:-3000}
read -r -a extra <<<"${EXTRA:-}"
MPIRUN=(mpirun --oversubscribe)
[[ $(id -u) -eq 0 ]] && MPIRUN+=(--allow-run-as-root)
mkdir -p "$WORK"

declare -A data_args
[[ -s $WORK/generated.csv ]] ||
  "$OLD" generate --users "$USERS" --seed 7 --events "$WORK/generated.csv" \
    --truth "$WORK/generated-truth.csv" --items-out "$WORK/generated-items.csv" --quiet
data_args[generated]="--events $WORK/generated.csv"
if [[ -s $ML100K/u.data ]]; then
  data_args[ml-100k]="--events $ML100K/u.data --format movielens --min-value 4"
else
  echo "compare_builds: no MovieLens 100K at $ML100K (set ML100K); generated data only" >&2
fi

digests() {  # FILE.h5 -> "path digest" lines, wall-time datasets left out
  "$NEW" inspect --digest "$1" | awk '/ digest / && $1 !~ /seconds$/ {print $1, $NF}'
}

status=0
printf '| data | ranks | file | outputs compared | result |\n|---|---:|---|---:|---|\n'
for data in $(printf '%s\n' "${!data_args[@]}" | sort); do
  read -r -a args <<<"${data_args[$data]}"
  for np in "${ranks[@]}"; do
    for side in old new; do
      bin=$OLD
      [[ $side == new ]] && bin=$NEW
      dir=$WORK/$data/$side-n$np
      [[ -s $dir/report.json ]] ||
        "${MPIRUN[@]}" -n "$np" "$bin" run "${args[@]}" --out "$dir" --quiet "${extra[@]}"
    done
    a=$WORK/$data/old-n$np b=$WORK/$data/new-n$np
    for f in $(cd "$a" && ls | grep -vE '^report\.|\.ckpt\.h5$|^plots$'); do
      if [[ $f == *.h5 ]]; then
        n=$(digests "$a/$f" | wc -l)
        if diff <(digests "$a/$f") <(digests "$b/$f") >/dev/null; then r=identical; else
          r="DIFFERS: $(diff <(digests "$a/$f") <(digests "$b/$f") | grep -c '^<') datasets"
          status=1
        fi
        n="$n datasets"
      else
        n="1 file"
        if cmp -s "$a/$f" "$b/$f"; then r=identical; else r=DIFFERS; status=1; fi
      fi
      printf '| %s | %s | %s | %s | %s |\n' "$data" "$np" "$f" "$n" "$r"
    done
  done
done
exit $status
