# Shared helpers of the CLI tests (sourced). Environment from CTest:
# SEGREC (the executable), MPIEXEC, MPIFLAGS, SHARED_DATA.
set -uo pipefail
: "${SEGREC:?}" "${MPIEXEC:=mpirun}" "${MPIFLAGS:=--oversubscribe --allow-run-as-root}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA="$HERE/../data"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/segrec-cli.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0

ok() { PASSES=$((PASSES + 1)); echo "ok   $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }

# seg NP ARGS...: runs segrec on NP ranks (bounded by a timeout); output in $WORK/out, $WORK/err.
seg() {
  local np=$1; shift
  # shellcheck disable=SC2086
  timeout 120 "$MPIEXEC" -n "$np" $MPIFLAGS "$SEGREC" "$@" >"$WORK/out" 2>"$WORK/err"
}

# expect_fail NAME NP CODE PATTERN ARGS...: non-zero exit CODE, exactly one error line on
# stderr that matches PATTERN, and no file left behind in $WORK/o.
expect_fail() {
  local name=$1 np=$2 code=$3 pattern=$4; shift 4
  rm -rf "$WORK/o"; mkdir -p "$WORK/o"
  local start=$SECONDS rc
  # A rank that exits non-zero makes mpirun wait odls_base_sigkill_timeout (2 s) before it
  # reaps the job; these runs end by themselves, so that wait is skipped.
  MPIFLAGS="$MPIFLAGS --mca odls_base_sigkill_timeout 0" seg "$np" "$@"; rc=$?
  local lines; lines=$(grep -c '^segrec: error' "$WORK/err")
  if [[ $rc -eq 124 ]]; then bad "$name (-n $np): timed out (hang)"; return; fi
  if [[ $rc -ne $code ]]; then bad "$name (-n $np): exit $rc, want $code: $(head -c 400 "$WORK/err")"; return; fi
  if [[ $lines -ne 1 ]]; then bad "$name (-n $np): $lines error lines, want 1: $(head -c 400 "$WORK/err")"; return; fi
  if ! grep '^segrec: error' "$WORK/err" | grep -qiE -- "$pattern"; then
    bad "$name (-n $np): message does not match '$pattern': $(grep '^segrec: error' "$WORK/err")"; return
  fi
  if [[ -n $(ls -A "$WORK/o") ]]; then bad "$name (-n $np): left files: $(ls -A "$WORK/o")"; return; fi
  ok "$name (-n $np, exit $rc, $((SECONDS - start)) s)"
}

# model_fixture DIR USERS ITEMS SEED DIMS K: a small pipeline at 2 ranks, generate -> ingest ->
# profile -> project -> cluster -> train (history, projection and segment heads):
# DIR/ev.csv, ds.h5, p.h5, h.h5, s.h5, m.h5. Returns non-zero on a failed stage.
model_fixture() {
  local dir=$1 users=$2 items=$3 seed=$4 dims=$5 k=$6
  mkdir -p "$dir"
  seg 2 generate --users "$users" --items "$items" --seed "$seed" --events "$dir/ev.csv" >/dev/null &&
    seg 2 ingest --events "$dir/ev.csv" --out "$dir/ds.h5" &&
    seg 2 profile --data "$dir/ds.h5" --out "$dir/p.h5" &&
    seg 2 project --profiles "$dir/p.h5" --dims "$dims" --out "$dir/h.h5" &&
    seg 2 cluster --projection "$dir/h.h5" --k "$k" --out "$dir/s.h5" &&
    seg 2 train --data "$dir/ds.h5" --profiles "$dir/p.h5" --projection "$dir/h.h5" \
      --segments "$dir/s.h5" --input both --hidden 16 --epochs 2 --batch-size 64 --out "$dir/m.h5"
}

finish() {
  echo "$PASSES passed, $FAILS failed"
  [[ $FAILS -eq 0 ]]
}
