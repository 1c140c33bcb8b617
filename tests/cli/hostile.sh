#!/usr/bin/env bash
# Hostile uses that must not lose data or mislead: an output that is one of the inputs, a
# NaN row or an out-of-range segment in a companion file, --dims far above the features,
# and two `segrec run` jobs on one output directory.
source "$(dirname "$0")/lib.sh"
PY=python3
python3 -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3

D="$WORK/in"; mkdir -p "$D"
seg 2 generate --users 300 --items 60 --seed 3 --events "$D/ev.csv" >/dev/null &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/d.h5" && seg 2 profile --data "$D/d.h5" --out "$D/p.h5" &&
  seg 2 project --profiles "$D/p.h5" --dims 4 --out "$D/j.h5" &&
  seg 2 cluster --projection "$D/j.h5" --k 3 --out "$D/s.h5" &&
  seg 2 train --data "$D/d.h5" --projection "$D/j.h5" --input both --hidden 8 --epochs 1 \
    --batch-size 50 --out "$D/m.h5" || bad "setup: $(cat "$WORK/err")"

# ---- an output that resolves to an input: exit 2 before any work, the input intact ----------
cp "$D/ev.csv" "$D/x.csv"
ln -f "$D/d.h5" "$D/hard.h5"
ln -sf "$D/d.h5" "$D/sym.h5"
sum() { md5sum "$@" | cut -d' ' -f1 | tr '\n' ' '; }
before=$(sum "$D/x.csv" "$D/d.h5")
for np in 1 2; do
  expect_fail "ingest --out = --events" $np 2 "--out '.*x.csv' is the input --events" \
    ingest --events "$D/x.csv" --out "$D/x.csv"
  expect_fail "profile --out = --data" $np 2 "is the input --data" profile --data "$D/d.h5" --out "$D/d.h5"
  expect_fail "profile --out = a hard link of --data" $np 2 "--out '.*hard.h5' is the input --data" \
    profile --data "$D/d.h5" --out "$D/hard.h5"
  expect_fail "profile --data via a symbolic link" $np 2 "is the input --data '.*sym.h5'" \
    profile --data "$D/sym.h5" --out "$D/d.h5"
  expect_fail "train --checkpoint = --data" $np 2 "--checkpoint .* is the input --data" \
    train --data "$D/d.h5" --checkpoint "$D/d.h5" --out "$WORK/o/m.h5"
  expect_fail "--out is a directory" $np 2 "--out '.*' is a directory" profile --data "$D/d.h5" --out "$D"
  expect_fail "run --out is an input file" $np 2 "--out '.*x.csv' exists and is not a directory" \
    run --events "$D/x.csv" --out "$D/x.csv"
done
[[ $(sum "$D/x.csv" "$D/d.h5") == "$before" ]] && ok "the inputs are intact" || bad "an input changed"

# ---- a NaN row in /H, a segment label outside [0, k): named, not served --------------------
if $PY -c 'import h5py' 2>/dev/null; then
  cp "$D/j.h5" "$D/jnan.h5"
  $PY -c "import h5py; f=h5py.File('$D/jnan.h5','r+'); f['/H'][7,1]=float('nan')"
  cp "$D/s.h5" "$D/sbad.h5"
  $PY -c "import h5py; f=h5py.File('$D/sbad.h5','r+'); f['/labels'][250]=9"
  for np in 1 3; do
    expect_fail "NaN row in --projection" $np 3 "jnan.h5': /H row 7 \(user '.*'\) holds a non-finite value" \
      recommend --model "$D/m.h5" --data "$D/d.h5" --projection "$D/jnan.h5" --out "$WORK/o/r.csv"
    expect_fail "segment label out of range" $np 3 "sbad.h5': /labels row 250 \(user '.*'\) holds segment 9 outside \[0, 3\)" \
      recommend --model "$D/m.h5" --data "$D/d.h5" --projection "$D/j.h5" --segments "$D/sbad.h5" \
      --out "$WORK/o/r.csv"
  done
else
  echo "skip NaN row and label range cases: no h5py"
fi

# ---- --dims far above the features: warned at once, solved at the clamped size ------------
start=$SECONDS
seg 2 project --profiles "$D/p.h5" --dims 100000 --out "$WORK/clamp.h5" --progress-interval 0.2
rc=$?
first=$(grep -m1 -E "warning|PCA" "$WORK/err")
[[ $rc -eq 0 && $first == *"warning: --dims 100000 is more than the"* && $((SECONDS - start)) -lt 60 ]] &&
  ok "dims 100000: clamped and warned before the PCA ($((SECONDS - start)) s)" ||
  bad "dims clamp: rc $rc, first line '$first', $((SECONDS - start)) s"

# ---- two jobs on one --out: the second fails at once; a stale lock is taken over ------------
R="$WORK/run"
(timeout 300 "$MPIEXEC" -n 1 $MPIFLAGS "$SEGREC" run --events "$D/ev.csv" --out "$R" --until train \
  --hidden 8 --epochs 3 >"$WORK/first.out" 2>&1; echo $? >"$WORK/first.rc") &
for _ in $(seq 300); do [[ -s $R/.segrec.lock ]] && break; sleep 0.05; done
holder=$(cut -d' ' -f2 "$R/.segrec.lock" 2>/dev/null)
kill -STOP "$holder" 2>/dev/null  # the first job holds the lock while the second tries
expect_fail "a second run on the same --out" 2 2 "'.*run' is in use by another segrec job \(host .*, pid $holder" \
  run --events "$D/ev.csv" --out "$R" --until ingest
kill -CONT "$holder" 2>/dev/null
wait
[[ $(cat "$WORK/first.rc") == 0 && ! -e $R/.segrec.lock ]] && ok "the first run ends cleanly and releases the lock" ||
  bad "first run: rc $(cat "$WORK/first.rc"), lock $(ls -a "$R"): $(tail -3 "$WORK/first.out")"
echo "gone-host 999999 4242 2026-01-01T00:00:00Z" >"$R/.segrec.lock"
seg 2 run --events "$D/ev.csv" --out "$R" --until ingest &&
  grep -q "took over the stale lock .*gone-host, pid 999999, job 4242" "$WORK/out" &&
  ok "a stale lock is taken over and named" || bad "stale lock: $(cat "$WORK/out" "$WORK/err")"
finish
