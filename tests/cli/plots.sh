#!/usr/bin/env bash
# scripts/plot_report.py on a small run: every picture written, a PNG of sane size,
# skipped pictures for absent inputs, the documented exit codes, and the evaluation
# JSON shapes it understands.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/small_run.sh"
PY=/usr/bin/python3
PLOT="$HERE/../../scripts/plot_report.py"
if ! $PY -c 'import matplotlib, h5py, numpy' 2>/dev/null; then
  echo "skipped: /usr/bin/python3 lacks matplotlib, h5py or numpy (apt-get install python3-matplotlib python3-h5py)"
  exit 77
fi

R="$WORK/run"
small_run "$R" && ok "small run" || { bad "small run: $(cat "$WORK/err")"; finish; exit; }

# png_size FILE -> "W H" from the IHDR chunk (empty when not a PNG)
png_size() {
  $PY - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(24)
if b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
    print(*struct.unpack(">II", b[16:24]))
PY
}

$PY "$PLOT" "$R" >"$WORK/plot.out" 2>"$WORK/plot.err"; rc=$?
[[ $rc -eq 0 ]] && ok "plot_report exit 0" || bad "plot_report exit $rc: $(cat "$WORK/plot.err")"
for p in users_pca segment_sizes k_sweep training lift_heatmap; do
  f="$R/plots/$p.png"
  read -r w h <<<"$(png_size "$f" 2>/dev/null)"
  if [[ -s $f && -n ${w:-} && $w -ge 300 && $w -le 3000 && $h -ge 200 && $h -le 3000 ]]; then
    ok "$p.png ${w}x$h"
  else
    bad "$p.png: missing, empty or odd size (${w:-?}x${h:-?})"
  fi
  grep -qx "$f" "$WORK/plot.out" || bad "$p.png not listed on stdout"
done
[[ ! -e $R/plots/baselines.png ]] && grep -q "baselines.png skipped" "$WORK/plot.err" &&
  ok "baselines skipped without an evaluation JSON" || bad "baselines: $(cat "$WORK/plot.err")"

# The lift heatmap also comes from segments.json alone; absent inputs are skipped cleanly.
mkdir -p "$WORK/json_only" && cp "$R/segments.json" "$WORK/json_only/"
$PY "$PLOT" "$WORK/json_only" --out "$WORK/json_only/p" >"$WORK/out" 2>"$WORK/err" &&
  [[ -s $WORK/json_only/p/lift_heatmap.png && $(ls "$WORK/json_only/p" | wc -l) -eq 1 ]] &&
  grep -q "users_pca.png skipped" "$WORK/err" && ok "segments.json alone: lift heatmap only" ||
  bad "segments.json alone: $(cat "$WORK/err")"
mkdir -p "$WORK/empty"
$PY "$PLOT" "$WORK/empty" >/dev/null 2>"$WORK/err"; rc=$?
[[ $rc -eq 0 && $(ls "$WORK/empty/plots" | wc -l) -eq 0 ]] && ok "empty directory: exit 0, nothing written" ||
  bad "empty directory: exit $rc $(cat "$WORK/err")"

# Exit codes: 2 usage, 3 unreadable input.
$PY "$PLOT" "$WORK/nope" >/dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] && ok "missing directory: exit 2" || bad "missing directory: exit $rc"
mkdir -p "$WORK/broken" && echo "not hdf5" >"$WORK/broken/segments.h5"
$PY "$PLOT" "$WORK/broken" >/dev/null 2>"$WORK/err"; rc=$?
[[ $rc -eq 3 ]] && grep -q "cannot read" "$WORK/err" && ok "broken segments.h5: exit 3" ||
  bad "broken segments.h5: exit $rc $(cat "$WORK/err")"

# Evaluation JSON shapes the baseline chart accepts (a parser test, not run output).
$PY - "$HERE/../../scripts" >"$WORK/out" 2>&1 <<'PY' && ok "evaluation JSON shapes" || bad "evaluation JSON shapes: $(cat "$WORK/out")"
import sys
sys.path.insert(0, sys.argv[1])
from plot_report import parse_evaluation as p
want = {"model": {"ndcg@10": 0.3}, "popular": {"ndcg@10": 0.1}}
assert p({"methods": {"model": {"ndcg@10": 0.3}, "popular": {"ndcg@10": 0.1}}}) == want
assert p([{"method": "model", "ndcg@10": 0.3}, {"method": "popular", "ndcg@10": 0.1}]) == want
assert p({"model": {"ndcg@10": 0.3}, "popular": {"ndcg@10": 0.1}, "k": 10}) == want
assert p({"results": [{"name": "model", "metrics": {"ndcg": 0.3}}]}) == {"model": {"metrics.ndcg": 0.3}}
assert p({"k": 10}) == {}
PY

# With an evaluation from `segrec evaluate --json` when the program has it.
if has_command evaluate; then
  seg 2 evaluate --model "$R/model.h5" --foldin "$R/split/foldin.csv" --test "$R/split/test.csv" \
    --json "$R/evaluation.json" &&
    $PY "$PLOT" "$R" >/dev/null 2>"$WORK/err" && [[ -s $R/plots/baselines.png ]] &&
    ok "baselines.png from segrec evaluate --json" ||
    bad "baselines from evaluate: $(cat "$WORK/err")"
else
  echo "note: no 'segrec evaluate' in this build: baselines.png not exercised on run output"
fi
finish
