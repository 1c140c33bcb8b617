#!/usr/bin/env bash
# Scaling evidence over TCP between test hosts (network namespaces, scripts/multihost.sh):
#   1. allreduce ping between hosts (segrec_allreduce_bench): latency and bandwidth
#      for the alpha-beta fit of docs/scaling.md;
#   2. weak scaling: USERS_PER_RANK users per rank at 1, 2, 4 ranks, 1 rank per host;
#   3. strong scaling: STRONG_USERS users at 1, 2, 4 ranks on one host (shared memory)
#      and on 1, 2, 4 hosts (TCP).
# Per configuration: seconds per PCA pass (project --verbose), per K-means iteration
# (segments.h5 /iterations/seconds, median) and per training epoch (model.h5
# /curves/seconds, the second epoch), and bytes sent per rank per step from the
# Comm::stats() counters (/iterations/bytes_sent, train's "allreduce bytes/step/rank",
# project's "bytes sent per X^T pass"). Needs root (namespaces).
#   bench/scaling/run.sh [OUT.jsonl]   (default bench/scaling/results.jsonl)
#   PARTS="ping" bench/scaling/run.sh  reruns only some parts (ping weak strong), replacing
#                                      their lines in OUT
# Above 2 ranks on a 2-core machine the runs are oversubscribed: use their
# timings for communication volume and correctness, not for speed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/bench/scaling/results.jsonl}
USERS_PER_RANK=${USERS_PER_RANK:-20000}
STRONG_USERS=${STRONG_USERS:-40000}
ITEMS=${ITEMS:-2000}
BUILD=${BUILD_DIR:-$ROOT/build}
SEGREC=$BUILD/segrec
PING=$BUILD/segrec_allreduce_bench
[[ -x $SEGREC && -x $PING ]] || "$ROOT/scripts/build.sh" >/dev/null
MH="$ROOT/scripts/multihost.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/segrec-scaling.XXXXXX")
export SEGREC_MH_DIR="$WORK/mh"
trap '"$MH" down >/dev/null 2>&1; rm -rf "$WORK"' EXIT
"$MH" up 4 >/dev/null
eval "$("$MH" env)"
LOCAL=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
PARTS=${PARTS:-ping weak strong}
touch "$OUT"
for part in $PARTS; do  # drop the old lines of the parts rerun
  case $part in ping) key=allreduce ;; *) key=$part ;; esac
  grep -v "\"bench\": \"$key\"" "$OUT" >"$WORK/keep" || true
  cp "$WORK/keep" "$OUT"
done
record() { echo "$1" | tee -a "$OUT"; }

# 1. allreduce ping: 2 and 4 hosts (1 rank each), messages 8 B .. 16 MiB.
[[ $PARTS == *ping* ]] && for np in 2 4; do
  "$MH_MPIRUN" -n $np --map-by node "$PING" $((16 << 20)) 2 | while read -r line; do
    record "{\"bench\": \"allreduce\", \"where\": \"hosts\", ${line#\{}"
  done
done

# run_case KIND WHERE NP USERS: one pipeline; records one JSON line.
run_case() {
  local kind=$1 where=$2 np=$3 users=$4 d="$WORK/$1-$2-$3"
  mkdir -p "$d"
  local run
  if [[ $where == hosts ]]; then run=("$MH_MPIRUN" -n "$np" --map-by node); else run=("${LOCAL[@]}" -n "$np"); fi
  "${run[@]}" "$SEGREC" generate --users "$users" --items "$ITEMS" --seed 1 --events "$d/ev.csv" >"$d/generate.txt"
  "${run[@]}" "$SEGREC" ingest --events "$d/ev.csv" --out "$d/ds.h5" >"$d/ingest.txt"
  "${run[@]}" "$SEGREC" profile --data "$d/ds.h5" --out "$d/p.h5" >"$d/profile.txt"
  "${run[@]}" "$SEGREC" project --profiles "$d/p.h5" --dims 16 --out "$d/h.h5" --verbose >"$d/project.txt"
  "${run[@]}" "$SEGREC" cluster --projection "$d/h.h5" --k 16 --n-init 1 --tol 0 --max-iter 20 \
    --algorithm lloyd --silhouette-sample 0 --out "$d/seg.h5" >"$d/cluster.txt"
  "${run[@]}" "$SEGREC" train --data "$d/ds.h5" --hidden 64 --epochs 2 --batch-size 500 \
    --patience 0 --out "$d/model.h5" >"$d/train.txt"
  record "$(/usr/bin/python3 - "$kind" "$where" "$np" "$users" "$d" <<'PY'
import json, re, statistics, sys
import h5py
kind, where, np_, users, d = sys.argv[1:]
proj = open(f"{d}/project.txt").read()
train = open(f"{d}/train.txt").read()
def grab(pat, text, cast=float):
    m = re.search(pat, text)
    return cast(m.group(1)) if m else None
with h5py.File(f"{d}/seg.h5", "r") as f:
    it_s = list(f["/iterations/seconds"][:])
    it_b = list(f["/iterations/bytes_sent"][:])
with h5py.File(f"{d}/model.h5", "r") as f:
    ep_s = list(f["/curves/seconds"][:])
def peak(stage):
    return grab(r"peak memory ([0-9.]+) MiB", open(f"{d}/{stage}.txt").read())
events = grab(r"([0-9]+) events", open(f"{d}/ingest.txt").read(), int)
passes = (grab(r"products X: (\d+)", proj, int) or 0) + (grab(r"X\^T: (\d+)", proj, int) or 0)
print(json.dumps({
    "bench": kind, "where": where, "ranks": int(np_), "users": int(users),
    "users_per_rank": int(users) // int(np_),
    "pca_fit_s": grab(r"fit ([0-9.]+)", proj), "pca_passes": passes,
    "pca_s_per_pass": (grab(r"fit ([0-9.]+)", proj) or 0) / max(1, passes),
    "pca_bytes_per_xt_pass": grab(r"bytes sent per X\^T pass: (\d+)", proj, int),
    "kmeans_iterations": len(it_s), "kmeans_s_per_iter": statistics.median(it_s),
    "kmeans_bytes_per_iter": int(statistics.median(it_b)),
    "train_epoch_s": ep_s[-1], "train_bytes_per_step": grab(r"allreduce (\d+) bytes/step/rank", train, int),
    "train_steps_per_epoch": grab(r"epochs of (\d+) steps", train, int),
    "train_params": grab(r"\((\d+) parameters\)", train, int),
    "train_users": grab(r"steps over (\d+) users", train, int),
    "kmeans_k": 16, "kmeans_h": 16, "events": events,
    "peak_mib": {s: peak(s) for s in ("ingest", "profile", "project", "cluster", "train")},
}))
PY
)"
}

# 2. weak scaling over hosts; 3. strong scaling on one host and over hosts.
[[ $PARTS == *weak* ]] && for np in 1 2 4; do run_case weak hosts $np $((USERS_PER_RANK * np)); done
[[ $PARTS == *strong* ]] && for where in local hosts; do
  for np in 1 2 4; do run_case strong $where $np "$STRONG_USERS"; done
done
echo "results in $OUT; summary: /usr/bin/python3 bench/scaling/summarize.py $OUT" >&2
