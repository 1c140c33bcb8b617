#!/usr/bin/env bash
# Installs what is missing, builds, and runs the test suite through CTest.
#
#   scripts/test.sh [--no-slurm] [--sanitize] [--fuzz] [ctest arguments...]
#
#   (default)   the Release build in ${BUILD_DIR:-build}: every test, the job-script tests on a
#               private Slurm cluster included (installs slurmctld, slurmd, slurm-client, munge;
#               they need root and are skipped without it)
#   --no-slurm  leaves out the Slurm tests (label slurm) and their packages
#   --sanitize  also the unit and MPI tests built with AddressSanitizer and
#               UndefinedBehaviorSanitizer in ${ASAN_BUILD_DIR:-build-asan} (by clang, installed;
#               ASAN_CXX names another compiler)
#   --fuzz      also the libFuzzer target of the ingest parser for ${FUZZ_SECONDS:-30} s
# Each part prints its wall time. CI (.ci/run) runs all of them. A failed test is run once more
# (--repeat until-pass:2): the Slurm preemption test depends on the private cluster's timing
# and fails about one run in five on a loaded 2-core machine; its failures are printed all the same.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-$ROOT/build-asan}
slurm=1 sanitize=0 fuzz=0
args=()
for a in "$@"; do
  case $a in
    --slurm) slurm=1 ;;  # the default; accepted for older command lines
    --no-slurm) slurm=0 ;;
    --sanitize) sanitize=1 ;;
    --fuzz) fuzz=1 ;;
    *) args+=("$a") ;;
  esac
done
setup=()
[[ $slurm -eq 1 ]] && setup+=(--slurm)
[[ $fuzz -eq 1 ]] && setup+=(--fuzz)
[[ $sanitize -eq 1 ]] && setup+=(--sanitize)
"$ROOT/scripts/setup.sh" "${setup[@]}"

timed() {
  local name=$1 start=$SECONDS rc=0
  shift
  echo "==== $name"
  "$@" || rc=$?
  echo "==== $name: $((SECONDS - start)) s, exit $rc"
  return $rc
}

"$ROOT/scripts/build.sh"
status=0
# The Slurm and multi-host tests mostly wait (for the private cluster's scheduler, for stall
# timeouts, for lost TCP links): they run one at a time in a second CTest beside the others
# (and beside the sanitizer build), their output printed once they end.
waiting='^(slurm|multihost)$'
[[ $slurm -eq 0 ]] && waiting='^multihost$'
waiting_log="$BUILD_DIR/waiting-tests.log"
(cd "$BUILD_DIR" && timed "waiting tests" ctest -j1 --repeat until-pass:2 --output-on-failure \
  -L "$waiting" "${args[@]}") >"$waiting_log" 2>&1 &
waiting_pid=$!
(cd "$BUILD_DIR" && timed "tests" ctest -j"$(nproc)" --repeat until-pass:2 --output-on-failure \
  -LE '^(slurm|multihost)$' "${args[@]}") || status=1

if [[ $sanitize -eq 1 ]]; then
  # Leak checks are off: Open MPI and HDF5 keep allocations until exit by design.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
  # -O1 -g1: what the sanitizers need (line tables for their reports) at half the compile time
  # of -O2 -g. clang (ASAN_CXX) compiles segrec's Eigen code in half GCC's time; the Release
  # build above is GCC's.
  asan_cxx=${ASAN_CXX:-clang++}
  command -v "$asan_cxx" >/dev/null || asan_cxx=c++
  timed "sanitizer build ($asan_cxx)" bash -c "CXX='$asan_cxx' cmake -S '$ROOT' -B '$ASAN_BUILD_DIR' \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO='-O1 -g1 -DNDEBUG' \
    -DSEGREC_SANITIZE=ON -DSEGREC_WERROR=ON >/dev/null && \
    cmake --build '$ASAN_BUILD_DIR' -j$(nproc) --target segrec_unit_tests segrec_mpi_tests" || status=1
  # The MPI tests at 1, 2 and 4 ranks (3 ranks, the uneven partitions, run in the Release suite
  # above; under the sanitizers it would add ~40 s of 2 cores).
  (cd "$ASAN_BUILD_DIR" && timed "sanitizer tests" ctest -j2 --output-on-failure -L 'unit|mpi' \
    -E '^mpi_np3$') || status=1
fi

if [[ $fuzz -eq 1 ]]; then
  timed "fuzz" env FUZZ_SECONDS="${FUZZ_SECONDS:-30}" "$ROOT/scripts/fuzz.sh" || status=1
fi
wait "$waiting_pid" || status=1
cat "$waiting_log"
exit $status
