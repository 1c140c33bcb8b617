#!/usr/bin/env bash
# EASE benchmark: `segrec train --model-kind ease` against a numpy EASE (ease_peer.py: sparse
# Gram, np.linalg.inv, as the reference implementation) on the same split and lambda, on the
# same cores. The split is topn_quality.py's (ratings >= 4, users with >= 5, 20% of users held
# out, seed 7); both fit B on the training users (segrec: --val-users 0, one --l2) and score the
# held-out users' fold-in histories; segrec's NDCG@100 comes from `segrec evaluate`.
# Timed: the fit (Gram + factor/inverse + B; segrec's own "fit" line, the peer's perf_counter),
# best of REPEAT, wall and CPU seconds (all ranks and threads). Configurations:
#   numpy, 2 BLAS threads | segrec 2 ranks x 1 thread | segrec 1 rank x 2 BLAS threads |
#   segrec 1 rank x 1 thread | segrec as one process without mpirun and no thread variables
#   (the BLAS then takes the process's CPUs for the factor and inverse)
# On a shared machine the wall times are noisy (other builds share the cores): the CPU
# seconds are the steadier comparison.
#
# usage: bench/ease/run.sh [RATINGS] [LAMBDA]   (default: ml-100k u.data, 200)
#        RATINGS = synthetic:USERSxITEMS writes a u.data-format file of planted tastes
#        (Zipf item popularity, 40 ratings >= 4 per user on average) to time larger n.
# env:   SEGREC (default build/segrec), REPEAT (3), WORK (default: a temporary directory)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATINGS=${1:-/work/shared/data/ml-100k/u.data}
L2=${2:-200}
ANCHORS=${ANCHORS:-/work/shared/anchors}
SEGREC=${SEGREC:-$ROOT/build/segrec}
REPEAT=${REPEAT:-3}
[[ -x "$SEGREC" ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
if [[ -n "${WORK:-}" ]]; then mkdir -p "$WORK"; W=$WORK; else W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; fi

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "load $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $RATINGS == synthetic:* ]]; then
  spec=${RATINGS#synthetic:}
  /usr/bin/python3 - "${spec%x*}" "${spec#*x}" "$W/u.data" <<'PY'
import sys, numpy as np
users, items, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(11)
pop = 1.0 / np.arange(1, items + 1) ** 0.8
groups = 20
with open(out, "w") as f:
    for u in range(users):
        g = u % groups  # a taste: a slice of the catalogue weighted up
        w = pop.copy(); w[g::groups] *= 8; w /= w.sum()
        k = max(5, int(rng.poisson(40)))
        for i in rng.choice(items, size=min(k, items), replace=False, p=w):
            f.write(f"{u}\t{i}\t{4 + rng.integers(0, 2)}\t{u}\n")
PY
  RATINGS=$W/u.data
fi
/usr/bin/python3 "$ANCHORS/topn_quality.py" split "$RATINGS" ml100k "$W" >"$W/split.json"
echo "== split: $(cat "$W/split.json"), lambda $L2, best of $REPEAT"
"$SEGREC" ingest -q --events "$W/train.csv" --out "$W/ds.h5"

peer=$(OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$ROOT/bench/ease/ease_peer.py" "$W" "$L2" \
  --repeat "$REPEAT")
peer_fit=$(echo "$peer" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["fit_s"])')
peer_cpu=$(echo "$peer" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["fit_cpu_s"])')
peer_ndcg=$(echo "$peer" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["ndcg@100"])')
printf '%-30s %9s %9s %10s %10s %10s\n' system fit_s cpu_s ndcg@100 "fit ratio" "cpu ratio"
printf '%-30s %9.4f %9.4f %10s %10s %10s\n' "numpy (2 BLAS threads)" "$peer_fit" "$peer_cpu" \
  "$peer_ndcg" 1.00 1.00

# One segrec configuration: NP ranks, THREADS BLAS threads per rank; best fit of REPEAT.
# NP 0: one process without mpirun and nothing set (the default threads).
run_segrec() {
  local np=$1 threads=$2 label=$3 best_fit="" best_cpu="" line fit cpu launch
  for _ in $(seq "$REPEAT"); do
    if [[ $np -eq 0 ]]; then
      launch=(env -u OPENBLAS_NUM_THREADS -u OMP_NUM_THREADS -u SLURM_CPUS_PER_TASK)
    else
      launch=(env OPENBLAS_NUM_THREADS="$threads" "${MPI[@]}" -n "$np")
    fi
    line=$("${launch[@]}" "$SEGREC" train --model-kind ease \
      --l2 "$L2" --val-users 0 --data "$W/ds.h5" --out "$W/ease.h5" | grep '^wrote')
    fit=$(echo "$line" | sed -E 's/.*; fit ([0-9.e-]+) s on.*/\1/')
    cpu=$(echo "$line" | sed -E 's/.* rank\(s\), ([0-9.e-]+) CPU s.*/\1/')
    if [[ -z $best_fit ]] || awk "BEGIN{exit !($fit < $best_fit)}"; then
      best_fit=$fit best_cpu=$cpu
    fi
  done
  "$SEGREC" evaluate -q --model "$W/ease.h5" --foldin "$W/foldin.csv" --test "$W/test.csv" \
    --k 100 --json "$W/eval.json" >/dev/null
  local ndcg
  ndcg=$(/usr/bin/python3 -c 'import json, sys
print(round(json.load(open(sys.argv[1]))["systems"]["model"]["ndcg@100"], 4))' "$W/eval.json")
  printf '%-30s %9.4f %9.4f %10s %10.2f %10.2f\n' "$label" "$best_fit" "$best_cpu" "$ndcg" \
    "$(awk "BEGIN{print $peer_fit / $best_fit}")" "$(awk "BEGIN{print $peer_cpu / $best_cpu}")"
}
run_segrec 2 1 "segrec 2 ranks x 1 thread"
run_segrec 1 2 "segrec 1 rank x 2 BLAS threads"
run_segrec 1 1 "segrec 1 rank x 1 thread"
run_segrec 0 0 "segrec 1 process, defaults"
echo "(ratio = numpy / segrec: above 1, segrec is faster; NDCG@100 of the held-out users)"
