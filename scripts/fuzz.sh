#!/usr/bin/env bash
# Builds the libFuzzer target of the ingest text layer (tests/fuzz/fuzz_parse.cpp, with
# AddressSanitizer and UndefinedBehaviorSanitizer) and runs it for FUZZ_SECONDS (default 30)
# from the seed corpus in tests/fuzz/corpus. New inputs go to build-fuzz/corpus (the seed
# corpus is not modified); a crash is written to build-fuzz/crash-* and fails the run.
# Needs clang++ (scripts/setup.sh --fuzz). Add a crash as a regression case to
# tests/test_parse.cpp once fixed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${FUZZ_DIR:-$ROOT/build-fuzz}
SECONDS_TO_RUN=${FUZZ_SECONDS:-30}
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (scripts/setup.sh --fuzz)" >&2; exit 77; }
mkdir -p "$OUT/corpus"
"$CXX" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -I"$ROOT/include" \
  "$ROOT/tests/fuzz/fuzz_parse.cpp" "$ROOT/src/io/parse.cpp" -o "$OUT/fuzz_parse"
cd "$OUT"
# -timeout: one input may take at most 10 s; -rss_limit_mb bounds memory.
./fuzz_parse -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
  -print_final_stats=1 -artifact_prefix="$OUT/" corpus "$ROOT/tests/fuzz/corpus" "$@"
