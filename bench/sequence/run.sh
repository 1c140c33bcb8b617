#!/usr/bin/env bash
# Training throughput of `segrec train --model-kind sequence` against a GRU4Rec-style PyTorch peer
# (torch_gru_peer.py: the same network -- a separate output embedding, no time-gap input, so
# segrec runs with --seq-tied false --seq-time-gap false -- windows, loss, optimiser and
# batch; no dropout) on
# MovieLens 100K, both on the same 2 cores: segrec at 2 ranks (one BLAS thread each) and at
# 1 rank, the peer with 2 threads. Reports events/s (predicted events per second of training steps), the
# last epoch's mean loss of each, and the ratio. Timings taken while other jobs run are noisy.
#   bench/sequence/run.sh [RATINGS] [EPOCHS] [MAX_LEN] [DIM] [BATCH]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATINGS=${1:-/work/shared/data/ml-100k/u.data}
EPOCHS=${2:-5}
L=${3:-50}
D=${4:-64}
B=${5:-128}
ANCHORS=${ANCHORS:-/work/shared/anchors}
SEGREC=${SEGREC:-$ROOT/build/segrec}
[[ -x "$SEGREC" ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

"${MPI[@]}" -n 1 "$SEGREC" ingest -q --events "$RATINGS" --format movielens --out "$W/ds.h5"
ARGS=(--data "$W/ds.h5" --model-kind sequence --epochs "$EPOCHS" --val-users 0 --max-len "$L"
  --seq-dim "$D" --batch-size "$B" --seq-lr 1e-3 --seq-dropout 0 --seq-tied false --seq-time-gap false
  --lr-schedule constant --checkpoint-every 0)
rate() { sed -n 's/.*, \([0-9]*\) events\/s).*/\1/p'; }
loss() {
  /usr/bin/python3 -c "import h5py,sys; print('%.4f' % h5py.File(sys.argv[1])['/curves/train_loss'][-1])" "$1"
}
echo "== MovieLens 100K, $EPOCHS epochs, max-len $L, dim $D, batch $B; load: $(cut -d' ' -f1-3 /proc/loadavg)"
s2=$("${MPI[@]}" -n 2 "$SEGREC" train "${ARGS[@]}" --out "$W/m2.h5" | rate)
echo "segrec, 2 ranks:  $s2 events/s; last epoch loss $(loss "$W/m2.h5")"
s1=$("${MPI[@]}" -n 1 "$SEGREC" train "${ARGS[@]}" --out "$W/m1.h5" | rate)
echo "segrec, 1 rank:   $s1 events/s; last epoch loss $(loss "$W/m1.h5")"
ln -sf "$ANCHORS/_fairblas.py" "$W/_fairblas.py"
cp "$ROOT/bench/sequence/torch_gru_peer.py" "$W/"
peer=$(/usr/bin/python3 "$W/torch_gru_peer.py" "$RATINGS" --epochs "$EPOCHS" --max-len "$L" \
  --dim "$D" --batch-size "$B" --lr 1e-3 --threads 2)
echo "$peer"
p=$(echo "$peer" | sed -n 's/.*: \([0-9]*\) events\/s.*/\1/p')
echo "ratio segrec (2 ranks) / torch (2 threads): $(echo "scale=2; $s2 / $p" | bc)"
echo "ratio segrec (1 rank) / torch (2 threads):  $(echo "scale=2; $s1 / $p" | bc)"
