#!/bin/bash
# Segments benchmark: planted-structure recovery (segrec's default chain against the
# scikit-learn tf-idf -> TruncatedSVD -> normalise -> KMeans chain) and the k each rule picks,
# on segrec generate's logs and on the independent plant.py's, plus MovieLens 100K when
# ../shared/data/ml-100k exists. Extra arguments go to bench.py (e.g. --users 20000 --ks 4,8,16).
# Environment: BUILD (default <repo>/build, a Release build).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
[ -x "$BUILD/segrec" ] || { echo "no $BUILD/segrec: build first" >&2; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$HERE/bench.py" --segrec "$BUILD/segrec" --movielens "$ROOT/../shared/data/ml-100k" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
