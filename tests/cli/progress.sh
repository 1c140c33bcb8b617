#!/usr/bin/env bash
# Progress and logs from the executable: --log-json events, the summary line with the
# files written, --quiet / --verbose, option checks, Slurm variables, `segrec info`.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

seg 2 generate --users 500 --items 100 --seed 9 --events "$WORK/ev.csv" >/dev/null &&
  seg 2 ingest --events "$WORK/ev.csv" --out "$WORK/ds.h5" &&
  seg 2 profile --data "$WORK/ds.h5" --out "$WORK/p.h5" &&
  seg 2 project --profiles "$WORK/p.h5" --dims 4 --out "$WORK/h.h5" && ok "setup" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }

# The summary line names every file written.
grep -qE "^segrec project: done in .* rank\(s\), peak memory .*; wrote $WORK/h.h5$" "$WORK/out" &&
  ok "summary line says what was written" || bad "summary: $(tail -1 "$WORK/out")"

# --log-json: one object per line; start and end, one progress event per K-means iteration.
L="$WORK/o/events.jsonl"
mkdir -p "$WORK/o"
SLURM_JOB_ID=31337 seg 2 cluster --projection "$WORK/h.h5" --k 2:4 --n-init 2 --swap-tries 0 \
  --out "$WORK/o/s.h5" --log-json "$L" && ok "cluster with --log-json" ||
  bad "cluster --log-json: $(cat "$WORK/err")"
grep -q "(job 31337)" "$WORK/out" && ok "job id in the summary" || bad "job id: $(tail -1 "$WORK/out")"
$PY - "$L" "$WORK/o/s.h5" >"$WORK/check" 2>&1 <<'PY' && ok "JSON events: $(cat "$WORK/check")" || bad "JSON events: $(cat "$WORK/check")"
import json, sys
import h5py
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev[0]["event"] == "start" and ev[0]["command"] == "cluster", ev[0]
assert ev[-1]["event"] == "end" and ev[-1]["exit_code"] == 0, ev[-1]
assert sys.argv[2] in ev[-1]["outputs"], ev[-1]["outputs"]
assert all(e["ranks"] == 2 and e["job_id"] == "31337" for e in ev)
t = [e["elapsed_s"] for e in ev]
assert t == sorted(t), "elapsed_s goes backwards"
it = [e for e in ev if e["event"] == "progress" and e["stage"] == "kmeans"]
for e in it:
    assert set(e["metrics"]) == {"inertia", "changed", "shift"}, e
# The winning run of the picked k is in segments.h5: its iterations are among the events.
with h5py.File(sys.argv[2]) as f:
    k, inertia = int(f.attrs["k"]), list(f["iterations/inertia"][:])
runs, cur = [], []
for e in it:
    if e["step"] == 1 and cur:
        runs.append(cur); cur = []
    cur.append(e)
runs.append(cur)
# Per k: 2 restarts (--restart-iters iterations at most), then the best one "continued"
# unless it had converged.
starts = [r for r in runs if not r[0]["task"].endswith("continued")]
assert len(starts) == 3 * 2, f"{len(starts)} Lloyd runs, want 3 k x 2 restarts"
def same(a, b):  # the log keeps 10 significant digits
    return len(a) == len(b) and all(abs(x - y) <= 1e-8 * max(abs(x), abs(y)) for x, y in zip(a, b))
with h5py.File(sys.argv[2]) as f:
    won = int(f.attrs["restart"])
mine = [r for r in runs if r[0]["task"].startswith(f"k={k}")]
logged = [e["metrics"]["inertia"] for e in mine[won]]
if len(mine) == 3:
    logged += [e["metrics"]["inertia"] for e in mine[2]]
assert same(logged, inertia), "segments.h5 iterations not found in the log"
# The line of each k done (the runs inside a k report only the k, when due).
sweep = [e for e in ev if e["event"] == "progress" and e["stage"] == "cluster"
         and "inertia" in e["metrics"]]
assert [e["metrics"]["k"] for e in sweep] == [2, 3, 4], sweep
print(f"{len(ev)} events, {len(it)} iterations")
PY

# --quiet prints nothing at all; --verbose prints every iteration and the stage timings.
seg 2 cluster --projection "$WORK/h.h5" --k 3 --out "$WORK/o/q.h5" --quiet &&
  [[ ! -s $WORK/out && ! -s $WORK/err ]] && ok "--quiet: no output" ||
  bad "--quiet: $(cat "$WORK/out" "$WORK/err" | head -5)"
seg 2 cluster --projection "$WORK/h.h5" --k 3 --n-init 1 --out "$WORK/o/v.h5" --verbose &&
  n=$(grep -cE '^\[[0-9:]+\] kmeans: k=3  iter [0-9]+ \(max 300\)  inertia ' "$WORK/err") &&
  [[ $n -ge 2 ]] && ok "--verbose: $n iteration lines" || bad "--verbose: $(head -5 "$WORK/err")"
seg 2 ingest --events "$WORK/ev.csv" --out "$WORK/o/d.h5" --verbose &&
  grep -qE '^\[[0-9:]+\] ingest: shuffle ' "$WORK/err" && ok "--verbose: ingest timings" ||
  bad "--verbose ingest: $(head -5 "$WORK/err")"
seg 1 train --data "$WORK/ds.h5" --out "$WORK/o/m.h5" --hidden 8 --epochs 2 --batch-size 64 \
  --progress-interval 0.000001 &&
  grep -qE '^\[[0-9:]+\] train  epoch 2/2 \(100%\)  loss [0-9.]+ .*samples/s [0-9.]+M?' "$WORK/err" &&
  ok "train: epoch lines in a batch log" || bad "train progress: $(head -5 "$WORK/err")"

rm -rf "$WORK/o"; mkdir -p "$WORK/o"
expect_fail "quiet and verbose" 2 2 "--quiet.*--verbose|--verbose.*--quiet" \
  cluster --projection "$WORK/h.h5" --k 3 --out "$WORK/o/x.h5" --quiet --verbose
expect_fail "progress interval 0" 2 2 "for --progress-interval" \
  cluster --projection "$WORK/h.h5" --k 3 --out "$WORK/o/x.h5" --progress-interval 0
expect_fail "unwritable JSON log" 2 4 "--log-json" \
  cluster --projection "$WORK/h.h5" --k 3 --out "$WORK/o/x.h5" --log-json "$WORK/nodir/e.jsonl"

# Threads per rank: OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK; `segrec info` says which.
env -u OMP_NUM_THREADS SLURM_CPUS_PER_TASK=3 "$SEGREC" info >"$WORK/out" 2>&1 &&
  grep -qE '^threads/rank +3 \(SLURM_CPUS_PER_TASK' "$WORK/out" && ok "info: SLURM_CPUS_PER_TASK" ||
  bad "info threads: $(cat "$WORK/out")"
OMP_NUM_THREADS=2 SLURM_CPUS_PER_TASK=3 "$SEGREC" info >"$WORK/out" 2>&1 &&
  grep -qE '^threads/rank +2 \(OMP_NUM_THREADS' "$WORK/out" && ok "info: OMP_NUM_THREADS wins" ||
  bad "info threads: $(cat "$WORK/out")"
for key in compiler build eigen hdf5 mpi; do
  grep -qE "^$key " "$WORK/out" || bad "info lacks '$key'"
done
grep -qE '^hdf5 .*\((parallel|serial)\)' "$WORK/out" && ok "info: build options" || bad "info hdf5"

# Exit codes are documented in --help.
"$SEGREC" --help >"$WORK/out" 2>&1
grep -q "exit codes: 0 success, 1 other failure, 2 usage" "$WORK/out" &&
  grep -q "5 interrupted after writing a checkpoint" "$WORK/out" && ok "--help lists exit codes" ||
  bad "--help epilogue"
finish
