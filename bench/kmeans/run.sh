#!/bin/bash
# K-means benchmark: segrec (-n 2 x 1 thread, -n 1 x 2 threads) against scikit-learn and
# faiss (2 threads) on the same matrix and initial centroids, in one run; prints ms per
# Lloyd iteration, GFLOP/s and the ratios. Extra arguments go to bench.py, e.g.
#   bench/kmeans/run.sh --sizes 200000x100 --iters 10 --repeats 3
# Whole process instead (default options, scikit-learn KMeans(n_init=1).fit, time and inertia
# ratios, segrec's time breakdown): bench/kmeans/run.sh whole [--cases 1000000x32x16,...]
# Environment: BUILD (default <repo>/build, a Release build), PEERS (kmeans_peers.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PEERS=${PEERS:-$ROOT/../shared/anchors/kmeans_peers.py}
[ -x "$BUILD/segrec" ] || { echo "no $BUILD/segrec: build first (cmake --build $BUILD)" >&2; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "uptime: $(uptime)"
if [ "${1:-}" = whole ]; then
  shift
  /usr/bin/python3 "$HERE/whole.py" --segrec "$BUILD/segrec" --fairblas "$(dirname "$PEERS")" "$@"
else
  /usr/bin/python3 "$HERE/bench.py" --segrec "$BUILD/segrec" --peers "$PEERS" "$@"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
