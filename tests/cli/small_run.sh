# Sourced after lib.sh: small_run DIR makes a complete small run in DIR with the
# standard file names (dataset.h5, profiles.h5, projection.h5, segments.h5 with a k
# sweep, segments.csv/.md/.json, model.h5, and recommendations.csv when the program
# has a `recommend` command). Returns non-zero (with the error in $WORK/err) on failure.
has_command() { "$SEGREC" --help 2>/dev/null | grep -qE "^  $1 "; }

small_run() {
  local R=$1
  mkdir -p "$R"
  seg 2 generate --users 600 --items 120 --seed 5 --events "$R/events.csv" >/dev/null &&
    seg 2 ingest --events "$R/events.csv" --out "$R/dataset.h5" &&
    seg 2 profile --data "$R/dataset.h5" --out "$R/profiles.h5" &&
    seg 2 project --profiles "$R/profiles.h5" --dims 6 --out "$R/projection.h5" &&
    seg 2 cluster --projection "$R/projection.h5" --k 2:6 --out "$R/segments.h5" &&
    seg 2 train --data "$R/dataset.h5" --out "$R/model.h5" --hidden 16 --epochs 3 \
      --batch-size 64 || return 1
  if has_command recommend; then
    seg 2 recommend --data "$R/dataset.h5" --model "$R/model.h5" --segments "$R/segments.h5" \
      --out "$R/recommendations.csv" || return 1
  fi
}
