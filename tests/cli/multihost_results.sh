#!/usr/bin/env bash
# Multi-host runs over TCP (3 namespace hosts x 1 rank, no shared memory): every
# stage gives the same files as -n 3 on one host, and every file written from 3
# hosts reads back identically (parallel HDF5 digests, read from 1 rank and from 3 hosts).
source "$(dirname "$0")/lib.sh"
source "$HERE/multihost_lib.sh"

# While the hosts are up the root namespace has an unreachable route for the test subnet: a
# client started outside the namespaces fails here at once instead of using the default route.
if "$MH" route >/dev/null; then
  ok "guard route in place: $("$MH" route)"
  t0=$SECONDS
  if timeout 10 bash -c 'exec 3<>/dev/tcp/10.213.0.10/9' 2>"$WORK/stray"; then
    bad "a connection from the root namespace to a test address succeeded"
  elif grep -qi "no route to host" "$WORK/stray" && ((SECONDS - t0 < 3)); then
    ok "a stray client in the root namespace fails at once ($(tr -d '\n' <"$WORK/stray" | tail -c 60))"
  else
    bad "a stray client did not fail with 'No route to host': $(cat "$WORK/stray")"
  fi
else
  bad "no unreachable route for 10.213.0.0/24 in the root namespace while the hosts are up"
fi

G=(generate --users 3000 --items 300 --seed 5)
pipeline() {  # pipeline RUNNER DIR
  local run=$1 d=$2
  mkdir -p "$d"
  $run 3 "${G[@]}" --events "$d/ev.csv" --items-out "$d/items.csv" &&
    $run 3 ingest --events "$d/ev.csv" --out "$d/ds.h5" &&
    $run 3 profile --data "$d/ds.h5" --item-categories "$d/items.csv" --out "$d/p.h5" &&
    $run 3 project --profiles "$d/p.h5" --dims 8 --out "$d/h.h5" &&
    $run 3 cluster --projection "$d/h.h5" --k 6 --out "$d/seg.h5" &&
    $run 3 train --data "$d/ds.h5" --hidden 32 --epochs 2 \
      --batch-size 200 --out "$d/model.h5"
}
t0=$SECONDS
pipeline seg "$WORK/one" && ok "pipeline -n 3 on one host ($((SECONDS - t0)) s)" ||
  bad "pipeline on one host: $(tail -c 600 "$WORK/err")"
t0=$SECONDS
pipeline hosts "$WORK/three" && ok "pipeline on 3 hosts x 1 rank over TCP ($((SECONDS - t0)) s)" ||
  bad "pipeline on 3 hosts: $(tail -c 600 "$WORK/err")"

cmp -s "$WORK/one/ev.csv" "$WORK/three/ev.csv" && ok "events identical" || bad "events differ"
for f in ds p h seg model; do
  digest "$WORK/one/$f.h5" >"$WORK/d1" && digest "$WORK/three/$f.h5" >"$WORK/d3"
  if [[ -s "$WORK/d1" ]] && diff -q "$WORK/d1" "$WORK/d3" >/dev/null; then
    ok "$f.h5 from 3 hosts identical to -n 3 on one host ($(wc -l <"$WORK/d1") datasets)"
  else
    bad "$f.h5 differs: $(diff "$WORK/d1" "$WORK/d3" | head -4)"
  fi
  # Parallel read from the 3 hosts: the same digests as a 1-rank read.
  if hosts 3 inspect --digest "$WORK/three/$f.h5"; then
    grep digest "$WORK/out" | grep -vE 'seconds|/time' >"$WORK/dr"
    diff -q "$WORK/d3" "$WORK/dr" >/dev/null && ok "$f.h5 reads back identically on 3 hosts" ||
      bad "$f.h5 read on 3 hosts differs: $(diff "$WORK/d3" "$WORK/dr" | head -4)"
  else
    bad "inspect $f.h5 on 3 hosts: $(tail -c 400 "$WORK/err")"
  fi
done

# Two hosts x 2 ranks: the ranks of a host sum their gradients in shared memory and the hosts
# exchange those sums (--grad-sync sharded, hierarchical); the model agrees with -n 4 on one
# host (where one shared-memory sum covers every rank) within float rounding.
T=(train --data "$WORK/one/ds.h5" --hidden 32 --epochs 3 --batch-size 200 --input-dropout 0.2)
if seg 4 "${T[@]}" --out "$WORK/m4.h5" &&
  timeout 150 "$MH_MPIRUN" -n 4 --oversubscribe --map-by ppr:2:node "$SEGREC" "${T[@]}" \
    --out "$WORK/m22.h5" >"$WORK/out" 2>"$WORK/err"; then
  grep -q "sharded over 2 node(s) x 2 ranks" "$WORK/out" "$WORK/err" &&
    ok "2 hosts x 2 ranks: the exchange is hierarchical" ||
    bad "2 hosts x 2 ranks: not hierarchical: $(grep -h gradients "$WORK/out" "$WORK/err")"
  PY=python3
  $PY -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3
  if $PY -c 'import h5py' 2>/dev/null; then
    if rel=$($PY - "$WORK/m4.h5" "$WORK/m22.h5" <<'PY'
import sys, h5py, numpy as np
a, b = (h5py.File(f, "r") for f in sys.argv[1:3])
num = den = 0.0
for k in a["/mlp"]:
    if isinstance(a["/mlp"][k], h5py.Dataset):
        x, y = a["/mlp"][k][...].astype(float), b["/mlp"][k][...].astype(float)
        num += ((x - y) ** 2).sum(); den += (x ** 2).sum()
r = (num / den) ** 0.5
print(f"{r:.2e}")
sys.exit(0 if r < 1e-4 else 1)
PY
    ); then
      ok "train on 2 hosts x 2 ranks (hierarchical exchange) = -n 4 on one host (relative difference $rel)"
    else
      bad "train on 2 hosts x 2 ranks differs from -n 4 on one host: $rel"
    fi
  else
    echo "skip: no h5py to compare the 2 x 2 model"
  fi
else
  bad "train on 2 hosts x 2 ranks: $(tail -c 600 "$WORK/err")"
fi

# The whole pipeline in one job (segrec run): every file identical to -n 3 on one host.
R=(run --events "$WORK/one/ev.csv" --epochs 2 --k 6)
seg 3 "${R[@]}" --out "$WORK/run1" && hosts 3 "${R[@]}" --out "$WORK/run3" &&
  ok "segrec run on one host and on 3 hosts" || bad "segrec run: $(tail -c 600 "$WORK/err")"
cmp -s "$WORK/run1/segments.csv" "$WORK/run3/segments.csv" && ok "run: segments.csv identical" ||
  bad "run: segments.csv differs"
for f in dataset profiles projection segments model; do
  digest "$WORK/run1/$f.h5" >"$WORK/d1" && digest "$WORK/run3/$f.h5" >"$WORK/d3"
  [[ -s "$WORK/d1" ]] && diff -q "$WORK/d1" "$WORK/d3" >/dev/null &&
    ok "run: $f.h5 from 3 hosts identical to -n 3 on one host" ||
    bad "run: $f.h5 differs: $(diff "$WORK/d1" "$WORK/d3" | head -4)"
done
finish
