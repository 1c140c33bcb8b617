#!/usr/bin/env bash
# Hostile uses that must not lose data or mislead: an output that is one of the inputs, a
# NaN row or an out-of-range segment in a companion file, --dims far above the features,
# and two `segrec run` jobs on one output directory.
source "$(dirname "$0")/lib.sh"
PY=python3
python3 -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3

D="$WORK/in"; mkdir -p "$D"
model_fixture "$D" 300 60 3 4 3 || bad "setup: $(cat "$WORK/err")"

# ---- an output that resolves to an input: exit 2 before any work, the input intact ----------
cp "$D/ev.csv" "$D/x.csv"
ln -f "$D/ds.h5" "$D/hard.h5"
ln -sf "$D/ds.h5" "$D/sym.h5"
sum() { md5sum "$@" | cut -d' ' -f1 | tr '\n' ' '; }
before=$(sum "$D/x.csv" "$D/ds.h5")
for np in 1 2; do
  expect_fail "ingest --out = --events" $np 2 "--out '.*x.csv' is the input --events" \
    ingest --events "$D/x.csv" --out "$D/x.csv"
  expect_fail "profile --out = --data" $np 2 "is the input --data" profile --data "$D/ds.h5" --out "$D/ds.h5"
  expect_fail "profile --out = a hard link of --data" $np 2 "--out '.*hard.h5' is the input --data" \
    profile --data "$D/ds.h5" --out "$D/hard.h5"
  expect_fail "profile --data via a symbolic link" $np 2 "is the input --data '.*sym.h5'" \
    profile --data "$D/sym.h5" --out "$D/ds.h5"
  expect_fail "train --checkpoint = --data" $np 2 "--checkpoint .* is the input --data" \
    train --data "$D/ds.h5" --checkpoint "$D/ds.h5" --out "$WORK/o/m.h5"
  expect_fail "--out is a directory" $np 2 "--out '.*' is a directory" profile --data "$D/ds.h5" --out "$D"
  expect_fail "run --out is an input file" $np 2 "--out '.*x.csv' exists and is not a directory" \
    run --events "$D/x.csv" --out "$D/x.csv"
done
[[ $(sum "$D/x.csv" "$D/ds.h5") == "$before" ]] && ok "the inputs are intact" || bad "an input changed"

# ---- a NaN row in /H, a segment label outside [0, k): named, not served --------------------
if $PY -c 'import h5py' 2>/dev/null; then
  cp "$D/h.h5" "$D/hnan.h5"
  $PY -c "import h5py; f=h5py.File('$D/hnan.h5','r+'); f['/H'][7,1]=float('nan')"
  cp "$D/s.h5" "$D/sbad.h5"
  $PY -c "import h5py; f=h5py.File('$D/sbad.h5','r+'); f['/labels'][250]=9"
  for np in 1 3; do
    expect_fail "NaN row in --projection" $np 3 "hnan.h5': /H row 7 \(user '.*'\) holds a non-finite value" \
      recommend --model "$D/m.h5" --data "$D/ds.h5" --projection "$D/hnan.h5" --out "$WORK/o/r.csv"
    expect_fail "segment label out of range" $np 3 "sbad.h5': /labels row 250 \(user '.*'\) holds segment 9 outside \[0, 3\)" \
      recommend --model "$D/m.h5" --data "$D/ds.h5" --projection "$D/h.h5" --segments "$D/sbad.h5" \
      --out "$WORK/o/r.csv"
  done
else
  echo "skip NaN row and label range cases: no h5py"
fi

# ---- an input this user may not read: said so, not "not an HDF5 file" (root: as nobody) ------
cp "$D/ds.h5" "$WORK/secret.h5"; chmod 600 "$WORK/secret.h5"; chmod o+x "$WORK"
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  setpriv --reuid=nobody --regid=nogroup --clear-groups "$SEGREC" inspect "$WORK/secret.h5" \
    >/dev/null 2>"$WORK/err"
  rc=$?
  [[ $rc -eq 3 ]] && grep -q "cannot open '.*secret.h5': Permission denied" "$WORK/err" &&
    ok "an unreadable input is named as such" || bad "unreadable input: rc $rc $(cat "$WORK/err")"
elif [[ $(id -u) -ne 0 ]]; then
  seg 1 inspect "$WORK/secret.h5" >/dev/null; chmod 000 "$WORK/secret.h5"
  seg 1 inspect "$WORK/secret.h5"; rc=$?
  [[ $rc -eq 3 ]] && grep -q "Permission denied" "$WORK/err" &&
    ok "an unreadable input is named as such" || bad "unreadable input: rc $rc $(cat "$WORK/err")"
fi

# ---- --min-report-users 1 turns the privacy floor off: said, not silent ----------------------
seg 1 cluster --projection "$D/h.h5" --k 3 --min-report-users 1 --out "$WORK/s1.h5" &&
  grep -q "warning: --min-report-users 1 lowers the privacy floor from 50: it is off" "$WORK/err" &&
  grep -q "privacy floor" "$WORK/s1.md" && ok "--min-report-users 1 is warned about, in the report too" ||
  bad "min-report-users warning: $(cat "$WORK/err")"

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
