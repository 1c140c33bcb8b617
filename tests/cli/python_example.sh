#!/usr/bin/env bash
# scripts/example_read.py (docs/python.md) on a small run: reads segments.h5, model.h5
# and recommendations.csv with h5py and pandas, and agrees with the program's own view.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/small_run.sh"
PY=/usr/bin/python3
EX="$HERE/../../scripts/example_read.py"
if ! $PY -c 'import h5py, pandas' 2>/dev/null; then
  echo "skipped: /usr/bin/python3 lacks h5py or pandas (apt-get install python3-h5py python3-pandas)"
  exit 77
fi
R="$WORK/run"
small_run "$R" && ok "small run" || { bad "small run: $(cat "$WORK/err")"; finish; exit; }

$PY "$EX" "$R" >"$WORK/ex.out" 2>"$WORK/ex.err"; rc=$?
[[ $rc -eq 0 ]] && ok "example_read exit 0" || bad "example_read exit $rc: $(cat "$WORK/ex.err")"
users=$(tail -n +2 "$R/segments.csv" | wc -l)
grep -qE "^segments.h5: $users users in [0-9]+ segments" "$WORK/ex.out" &&
  ok "segments.h5: $users users (as segments.csv)" || bad "segments line: $(head -3 "$WORK/ex.out")"
# Per-segment counts equal those of segments.csv.
tail -n +2 "$R/segments.csv" | cut -d, -f2 | sort -n | uniq -c | awk '{print $2, $1}' >"$WORK/csv_counts"
awk '/^users per segment:$/{f=1; next} f && /^[0-9]+ +[0-9]+$/{print $1, $2} f && !/^[0-9]+ +[0-9]+$/{f=0}' \
  "$WORK/ex.out" >"$WORK/py_counts"
[[ -s $WORK/py_counts ]] && diff -q "$WORK/csv_counts" "$WORK/py_counts" >/dev/null &&
  ok "segment sizes agree with segments.csv" || bad "segment sizes: $(cat "$WORK/py_counts")"
grep -qE "^model.h5: [0-9]+ items, layers .*, 3 epochs" "$WORK/ex.out" && ok "model.h5 read" ||
  bad "model line: $(grep model.h5 "$WORK/ex.out")"
if has_command recommend; then
  grep -qE "^recommendations.csv: [0-9]+ rows" "$WORK/ex.out" && ok "recommendations.csv read" ||
    bad "recommendations: $(grep -A3 recommendations "$WORK/ex.out")"
else
  echo "note: no 'segrec recommend' in this build: the CSV part is not exercised"
  grep -q "^recommendations.csv: absent" "$WORK/ex.out" && ok "absent CSV reported" || bad "CSV line"
fi
$PY "$EX" "$WORK/nope" >/dev/null 2>&1; rc=$?
[[ $rc -eq 2 ]] && ok "missing directory: exit 2" || bad "missing directory: exit $rc"
finish
