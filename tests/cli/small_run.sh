# Sourced after lib.sh: small_run DIR makes a complete small run in DIR with `segrec run`
# (dataset.h5, profiles.h5, projection.h5, segments.h5 with a k sweep, segments.csv/.md/.json,
# model.h5, recommendations.csv, report.json) from the training part of a strong split of a
# generated event log (DIR/split: train.csv, foldin.csv, test.csv). Returns non-zero (with
# the error in $WORK/err) on failure.
has_command() { "$SEGREC" --help 2>/dev/null | grep -qE "^  $1 "; }

small_run() {
  local R=$1
  mkdir -p "$R"
  seg 2 generate --users 600 --items 120 --seed 5 --events "$R/events.csv" >/dev/null &&
    seg 2 split --events "$R/events.csv" --protocol strong --out "$R/split" &&
    seg 2 run --events "$R/split/train.csv" --out "$R" --dims 6 --k 2:6 --hidden 16 \
      --epochs 3 --batch-size 64
}
