#!/usr/bin/env bash
# A rank frozen inside each kind of collective HDF5 call (SEGREC_STOP: the rank stops
# itself with SIGSTOP at the named call): file open, metadata read, collective dataset
# write, file close. The other ranks wait inside HDF5 / MPI-IO, outside segrec's own
# collectives; the stall watchdog must still end the job with exit 6 within
# --stall-timeout + 10 s, name the call and the file, and leave no temporary file.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D"
seg 1 generate --users 400 --items 80 --seed 6 --events "$D/ev.csv" &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" ||
  { bad "setup: $(tail -c 600 "$WORK/err")"; finish; exit 1; }

# stopped NAME NP SPEC WAIT ARGS...: NP ranks, SEGREC_STOP=SPEC ("<call>:<rank>[:<n>]"); the
# message must say the other ranks were waiting in WAIT (a regex; "" = the stopped call).
stopped() {
  local name=$1 np=$2 spec=$3 want=$4; shift 4
  [[ -z $want ]] && want="${spec%%:*} \\(collective\\) on '[^']+'"
  rm -rf "$WORK/o"; mkdir -p "$WORK/o"
  # shellcheck disable=SC2086
  SEGREC_STOP=$spec timeout 60 "$MPIEXEC" -n "$np" $MPIFLAGS "$SEGREC" "$@" --stall-timeout 3 \
    >"$WORK/out" 2>"$WORK/err" &
  local job=$! t0="" victim="" i
  for i in $(seq 1 400); do
    victim=$(sed -n 's/^segrec: test stop at .*pid \([0-9]*\))$/\1/p' "$WORK/err" | head -1)
    [[ -n $victim ]] && { t0=$EPOCHREALTIME; break; }
    kill -0 $job 2>/dev/null || break
    sleep 0.1
  done
  wait $job; local rc=$?
  local t1=$EPOCHREALTIME
  [[ -n $victim ]] && kill -KILL "$victim" 2>/dev/null
  local took; took=$(awk -v a="${t0:-0}" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local msg; msg=$(grep -m1 '^segrec: error' "$WORK/err")
  if [[ -z $victim ]]; then
    bad "$name: the rank never reached $spec (exit $rc): $(tail -c 300 "$WORK/err")"
  elif [[ $rc -ne 6 ]]; then
    bad "$name: exit $rc, want 6: $msg"
  elif ! grep -qE "stalled: no progress for [0-9]+ s \(--stall-timeout 3\) .*waiting in ($want)" <<<"$msg"; then
    bad "$name: message does not name $want: $msg"
  elif awk -v t="$took" 'BEGIN { exit !(t > 13) }'; then
    bad "$name: ended $took s after the stop, want <= 13 s"
  elif [[ -n $(ls -A "$WORK/o") ]] || ls "$D" | grep -q tmp; then
    bad "$name: left files: $(ls -A "$WORK/o" "$D")"
  else
    ok "$name: exit 6 ${took} s after the stop: $(cut -c1-150 <<<"$msg")"
  fi
}

P=(profile --data "$D/ds.h5" --out "$WORK/o/p.h5")
stopped "rank 1 frozen in the collective open" 2 H5Fopen:1 "" "${P[@]}"
# Rank 0 reads metadata for all ranks. HDF5 serves the others this small file's later
# metadata from what the collective open read, so they go on to the next collective
# (segrec's own or HDF5's) and wait there.
stopped "rank 0 (the reader) frozen in a collective metadata read" 2 H5Dopen2:0 \
  "H5[A-Za-z0-9]+ \(collective\) on '[^']+'|allreduce|broadcast" "${P[@]}"
stopped "rank 1 frozen in a collective dataset read" 2 H5Dread:1 "" "${P[@]}"
stopped "rank 1 frozen in a collective dataset write" 3 H5Dwrite:1 "" \
  ingest --events "$D/ev.csv" --out "$WORK/o/ds.h5"
stopped "rank 1 frozen in the collective close of the output" 2 H5Fclose:1:2 \
  "H5Fclose \\(collective\\) on '[^']*/o/p.h5'" "${P[@]}"
finish
