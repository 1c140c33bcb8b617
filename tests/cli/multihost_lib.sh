# Shared setup of the multi-host tests (sourced after lib.sh): creates 3 test hosts
# as network namespaces (scripts/multihost.sh), removes them on exit, and skips
# (exit 77) where that is impossible (not root, no `ip netns`).
MH="$HERE/../../scripts/multihost.sh"
if ! "$MH" check 2>"$WORK/mhcheck"; then
  echo "skip: $(cat "$WORK/mhcheck")"
  exit 77
fi
export SEGREC_MH_DIR="$WORK/mh" PREFIX=${SEGREC_MH_PREFIX:-srmh}
trap '"$MH" down >/dev/null 2>&1; rm -rf "$WORK"' EXIT
"$MH" up 3 >/dev/null || { echo "FAIL cannot create test hosts"; exit 1; }
eval "$("$MH" env)"

# hosts NP ARGS...: segrec on NP ranks spread over the test hosts (TCP only);
# output in $WORK/out, $WORK/err. SEGREC_TEST_STEP_DELAY_MS is passed on when set.
hosts() {
  local np=$1; shift
  local x=()
  [[ -n ${SEGREC_TEST_STEP_DELAY_MS:-} ]] && x=(-x SEGREC_TEST_STEP_DELAY_MS)
  timeout "${HOSTS_TIMEOUT:-150}" "$MH_MPIRUN" -n "$np" --map-by node "${x[@]}" "$SEGREC" "$@" \
    >"$WORK/out" 2>"$WORK/err"
}

# digest FILE: content digests of an HDF5 file's datasets, timings excluded.
digest() {
  seg 1 inspect --digest "$1" && grep digest "$WORK/out" | grep -vE 'seconds|/time' || return 1
}
