#!/usr/bin/env bash
# Collective HDF5 I/O meets a bad file: damaged metadata (read by rank 0 alone before
# the collective open, so every rank exits 3 instead of waiting for rank 0 inside
# HDF5); a format attribute stored as a variable-length string (not a segrec file,
# exit 3); a full disk (exit 4, and the message says so). At 1 and at 2-3 ranks;
# `seg` is bounded by a short timeout here, so a hang fails fast.
source "$(dirname "$0")/lib.sh"

seg() {
  local np=$1; shift
  # shellcheck disable=SC2086
  timeout 30 "$MPIEXEC" -n "$np" $MPIFLAGS "$SEGREC" "$@" --stall-timeout 5 >"$WORK/out" 2>"$WORK/err"
}

D="$WORK/in"; mkdir -p "$D"
seg 1 generate --users 2000 --items 150 --seed 7 --events "$D/ev.csv" &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" &&
  seg 2 profile --data "$D/ds.h5" --out "$D/p.h5" ||
  { bad "setup: $(tail -c 600 "$WORK/err")"; finish; exit 1; }

# damage IN OUT: XOR the bytes at offsets 200, 213, ..., 2048 with 0x55 (headers, heaps, trees).
damage() {
  cp "$1" "$2" &&
    for ((o = 200; o <= 2048; o += 13)); do
      printf "$(printf '\\x%02x' $(( $(od -An -tu1 -j$o -N1 "$2") ^ 0x55 )))" |
        dd of="$2" bs=1 seek=$o conv=notrunc status=none
    done
}
damage "$D/p.h5" "$D/bad.h5" || bad "damage"
for np in 1 2 3; do
  expect_fail "damaged metadata" $np 3 "cannot read '.*bad.h5' \(truncated or damaged\?\)" \
    project --profiles "$D/bad.h5" --dims 4 --out "$WORK/o/h.h5"
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
      project --profiles "$D/vlen.h5" --dims 4 --out "$WORK/o/h.h5"
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
