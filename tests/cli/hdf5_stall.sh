#!/usr/bin/env bash
# Parallel HDF5 and MPI-IO calls are collective; none may leave the job hanging.
# 1. A rank frozen inside each kind of collective HDF5 call (SEGREC_STOP: the rank stops
#    itself with SIGSTOP at the named call): file open, metadata read, dataset read and
#    write, file close. The other ranks wait inside HDF5 / MPI-IO, outside segrec's own
#    collectives; the stall watchdog must still end the job with exit 6 within
#    --stall-timeout + 10 s, name the call and the file, and leave no temporary file.
# 2. Bad files at 1 and at 2-3 ranks: damaged metadata (read by rank 0 alone before the
#    collective open, so every rank exits 3 instead of waiting for rank 0 inside HDF5); a
#    format attribute stored as a variable-length string (not a segrec file, exit 3); a
#    full disk (exit 4, and the message says so). `seg` is bounded by 30 s here, so a
#    hang fails fast.
source "$(dirname "$0")/lib.sh"

seg() {
  local np=$1; shift
  # shellcheck disable=SC2086
  timeout 30 "$MPIEXEC" -n "$np" $MPIFLAGS "$SEGREC" "$@" >"$WORK/out" 2>"$WORK/err"
}

D="$WORK/in"; mkdir -p "$D"
seg 1 generate --users 2000 --items 150 --seed 7 --events "$D/ev.csv" &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" &&
  seg 2 profile --data "$D/ds.h5" --out "$D/p.h5" ||
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

# xor55 FILE OFFSET...: XOR the bytes at these offsets with 0x55.
xor55() {
  local f=$1 o; shift
  for o in "$@"; do
    printf "$(printf '\\x%02x' $(( $(od -An -tu1 -j"$o" -N1 "$f") ^ 0x55 )))" |
      dd of="$f" bs=1 seek="$o" conv=notrunc status=none
  done
}
# Bytes 200, 213, ..., 2048 (headers, heaps, trees, as a bad copy would have them); and the
# address in the first object header continuation message (type 0x10, size 16), which
# rank 0 alone follows in a collective metadata read.
cp "$D/p.h5" "$D/bad.h5" && xor55 "$D/bad.h5" $(seq 200 13 2048)
cont=$(LC_ALL=C grep -obUaP '\x10\x00\x10\x00\x00\x00\x00\x00' "$D/p.h5" | head -1 | cut -d: -f1)
[[ -n $cont ]] || bad "no object header continuation message in p.h5"
cp "$D/p.h5" "$D/cont.h5" && xor55 "$D/cont.h5" $(seq $((cont + 8)) $((cont + 15)))
for f in bad cont; do
  nps="1 2 3"; [[ $f == bad ]] && nps=2
  for np in $nps; do
    expect_fail "damaged metadata ($f.h5)" $np 3 "cannot read '.*$f.h5' \(truncated or damaged\?\)" \
      project --profiles "$D/$f.h5" --dims 4 --out "$WORK/o/h.h5" --stall-timeout 5
  done
done

# The format attribute as a variable-length string (what h5py writes for a str).
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  cp "$D/p.h5" "$D/vlen.h5"
  /usr/bin/python3 -c 'import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    v = f.attrs["format"]; del f.attrs["format"]; f.attrs["format"] = v.decode()' "$D/vlen.h5"
  for np in 1 2; do
    expect_fail "variable-length format attribute" $np 3 \
      "vlen.h5' is an HDF5 file but not a segrec file \(its format attribute is a variable-length string\)" \
      project --profiles "$D/vlen.h5" --dims 4 --out "$WORK/o/h.h5" --stall-timeout 5
  done
else
  echo "note: no h5py; the variable-length attribute case is not run (tests/test_h5_mpi.cpp has it)"
fi

# A full disk: the error names the system's reason.
F="$WORK/full"; mkdir -p "$F"
if mount -t tmpfs -o size=300k tmpfs "$F" 2>/dev/null; then
  for np in 1 3; do
    seg $np ingest --events "$D/ev.csv" --out "$F/d.h5"; rc=$?
    msg=$(grep -m1 '^segrec: error' "$WORK/err")
    [[ $rc -eq 4 ]] && grep -q "No space left on device" <<<"$msg" && [[ -z $(ls -A "$F") ]] &&
      ok "disk full: exit 4, the reason named, nothing left (-n $np): $(cut -c1-140 <<<"$msg")" ||
      bad "disk full (-n $np): exit $rc: $msg; left: $(ls -A "$F")"
  done
  umount "$F"
else
  echo "note: cannot mount a tmpfs here (not root); the full-disk case is not run"
fi
finish
