#!/usr/bin/env bash
# jobs/sweep-k.sbatch (on one node, or spread over several: SLURM_TEST_NODES): a prepare job, a job array over k (each task in its own folder) and a
# summary job (--dependency=afterok) that gathers inertia and silhouette into a table and a plot.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/job" && cd "$WORK/job" || exit 1
PY=python3
python3 -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3
cat >sweep.ini <<'INI'
events = out/events.csv
out = out
seed = 5
users = 1500
items = 200
segments = 4
dims = 8
k = 2:8:2
n-init = 1
silhouette-sample = 500
INI
SEGREC_SBATCH="--time=00:10:00" bash "$ROOT/jobs/sweep-k.sbatch" sweep.ini >submit.log 2>&1 ||
  { bad "submit: $(cat submit.log)"; finish; exit; }
cat submit.log
prep=$(sed -n 's/^prepare //p' submit.log)
array=$(sed -n 's/^array \([0-9]*\).*/\1/p' submit.log)
summary=$(sed -n 's/^summary //p' submit.log)
[[ -n $prep && -n $array && -n $summary ]] && ok "submitted $prep, $array (array), $summary" ||
  { bad "job ids: $(cat submit.log)"; finish; exit; }
dep=$(job_field "$summary" Dependency)
[[ $dep == afterok:${array}* ]] && ok "summary depends on the array ($dep)" || bad "summary dependency '$dep'"

wait_done "$summary" 500 && ok "summary job completed" ||
  { bad "summary job: $(job_field "$summary" JobState) $(cat segrec-sweep-*.out)"; finish; exit; }
hosts=()
for i in 0 1 2 3; do
  s=$(job_field "${array}_$i" JobState)
  [[ $s == COMPLETED ]] && ok "array task $i completed" || bad "array task $i: '$s'"
  hosts+=("$(job_field "${array}_$i" BatchHost)")
done
if [[ $SLURM_TEST_NODES -gt 1 ]]; then
  spread=$(printf '%s\n' "${hosts[@]}" | sort -u | grep -c .)
  [[ $spread -ge 2 ]] && ok "the array ran on $spread nodes: ${hosts[*]}" ||
    bad "the array did not spread over the nodes: ${hosts[*]}"
  ok "summary job ran on $(job_field "$summary" BatchHost)"
fi
for k in 2 4 6 8; do
  [[ -s out/sweep/k$k/segments.h5 && -s out/sweep/k$k/segments.md ]] && ok "k=$k in its own folder" ||
    bad "k=$k outputs: $(ls out/sweep/k$k 2>&1)"
  got=$("$SEGREC" inspect out/sweep/k$k/segments.h5 | grep -c '/centroids  \['"$k"' x 8\]')
  [[ $got -eq 1 ]] && ok "k=$k: $k centroids" || bad "k=$k: centroids $("$SEGREC" inspect out/sweep/k$k/segments.h5)"
done
T=out/sweep/summary.tsv
cat "$T"
[[ $(head -1 "$T") == k$'\t'inertia$'\t'silhouette* ]] && ok "table header" || bad "table header: $(head -1 "$T")"
[[ $(tail -n +2 "$T" | cut -f1 | tr '\n' ' ') == "2 4 6 8 " ]] && ok "one row per k" || bad "rows: $(cat "$T")"
# Inertia falls as k grows (each run keeps its best restart); silhouettes are in [-1, 1].
tail -n +2 "$T" | awk -F'\t' 'NR > 1 && $2 > prev * 1.0001 { bad = 1 } { prev = $2 }
  $3 < -1 || $3 > 1 || $3 != $3 { bad = 1 } END { exit bad }' && ok "inertia falls with k, silhouettes in range" ||
  bad "table values: $(cat "$T")"
# The table agrees with the files.
k4=$(awk -F'\t' '$1 == 4 { print $2 }' "$T")
$PY -c "import h5py,sys; a=float(h5py.File('out/sweep/k4/segments.h5','r').attrs['inertia']); sys.exit(int(abs(a-$k4) > 1e-6*abs(a)))" &&
  ok "table inertia = segments.h5 inertia" || bad "table inertia $k4 disagrees"
if $PY -c "import matplotlib" 2>/dev/null; then
  $PY -c "import sys; sys.exit(open('out/sweep/summary.png','rb').read(8) != b'\\x89PNG\\r\\n\\x1a\\n')" &&
    ok "summary.png is a PNG" || bad "summary.png: $(file out/sweep/summary.png 2>&1)"
fi
finish
