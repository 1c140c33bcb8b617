#!/usr/bin/env bash
# An error on one rank ends the whole job quickly, with the message printed
# once and tagged with the rank, and no output (or temporary) left behind.
source "$(dirname "$0")/lib.sh"

for np in 2 3; do
  rm -rf "$WORK/o"; mkdir -p "$WORK/o"
  start=$SECONDS
  SEGREC_FAULT=ingest.read:1 seg "$np" ingest --events "$DATA/events_small.csv" --out "$WORK/o/d.h5"
  rc=$?; took=$((SECONDS - start))
  if [[ $rc -eq 124 ]]; then bad "fault on rank 1 of $np: hang"; continue; fi
  [[ $rc -ne 0 ]] && ok "fault on rank 1 of $np: exit $rc" || bad "fault on rank 1 of $np: exit 0"
  [[ $took -le 20 ]] && ok "ended within $took s" || bad "took $took s"
  n=$(grep -c '^segrec: error (rank 1): injected fault' "$WORK/err")
  [[ $n -eq 1 ]] && ok "message once, tagged with the rank" || bad "message count $n: $(cat "$WORK/err")"
  [[ -z $(ls -A "$WORK/o") ]] && ok "nothing left behind" || bad "left: $(ls -A "$WORK/o")"
done

# A fault on the last rank while the output file is half-written.
rm -rf "$WORK/o"; mkdir -p "$WORK/o"
SEGREC_FAULT=dataset.write:2 seg 3 ingest --events "$DATA/events_small.csv" --out "$WORK/o/d.h5"
rc=$?
[[ $rc -ne 0 && $rc -ne 124 ]] && ok "fault while writing: exit $rc" || bad "fault while writing: exit $rc"
[[ -z $(ls -A "$WORK/o") ]] && ok "no half-written file" || bad "left: $(ls -A "$WORK/o")"
finish
