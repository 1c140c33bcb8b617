#!/usr/bin/env bash
# --pseudonymize: no raw user id in any output of the pipeline, the pseudonyms are
# HMAC-SHA256(key, id) (checked against Python's hmac), the same for any rank count, the key is
# never written; the segment report's size floor.
source "$(dirname "$0")/lib.sh"
PY=python3
python3 -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3

KEY="privacy-test-key-0123456789"
seg 2 generate --users 400 --items 80 --seed 4 --noise 0.01 --events "$WORK/ev.csv" >/dev/null ||
  { bad "generate: $(cat "$WORK/err")"; finish; exit; }
# Raw ids look like "u000123"; make them distinctive so that a leak is found by grep.
sed -i '2,$s/^u/person-/' "$WORK/ev.csv"
P="$WORK/p"; mkdir -p "$P"
for np in 1 3; do
  SEGREC_TEST_KEY=$KEY seg $np ingest --events "$WORK/ev.csv" --pseudonymize env:SEGREC_TEST_KEY \
    --out "$P/ds$np.h5" || bad "ingest -n $np: $(cat "$WORK/err")"
done
seg 1 inspect --digest "$P/ds1.h5" && grep digest "$WORK/out" | grep -v report >"$P/d1"
seg 1 inspect --digest "$P/ds3.h5" && grep digest "$WORK/out" | grep -v report >"$P/d3"
diff -q "$P/d1" "$P/d3" >/dev/null && ok "pseudonymized dataset identical at 1 and 3 ranks" ||
  bad "rank count changes the dataset: $(diff "$P/d1" "$P/d3" | head -3)"
seg 2 ingest --events "$WORK/ev.csv" --pseudonymize "$KEY" --out "$P/lit.h5" ||
  bad "literal key: $(cat "$WORK/err")"
seg 2 profile --data "$P/ds3.h5" --out "$P/profiles.h5" &&
  seg 2 project --profiles "$P/profiles.h5" --dims 6 --out "$P/projection.h5" &&
  seg 2 cluster --projection "$P/projection.h5" --k 4 --out "$P/segments.h5" &&
  seg 2 train --data "$P/ds3.h5" --hidden 8 --epochs 1 --batch-size 50 --out "$P/model.h5" ||
  bad "pipeline: $(cat "$WORK/err")"
leaks=$(grep -rlaE "person-[0-9]" "$P" || true)
[[ -z $leaks ]] && ok "no raw user id in any output ($(ls "$P" | wc -l) files)" ||
  bad "raw ids in: $leaks"
keyed=$(grep -rla "$KEY" "$P" || true)
[[ -z $keyed ]] && ok "the key is in no output" || bad "key written to: $keyed"
grep -qa "<redacted>" "$P/lit.h5" && ok "recorded command line redacted" || bad "no redaction"
# The pseudonyms are the HMAC-SHA256 of the raw ids (first 128 bits, hex).
$PY - "$WORK/ev.csv" "$P/ds3.h5" "$KEY" "$P/segments.csv" <<'PYEOF' && ok "pseudonyms = HMAC-SHA256(key, id) in dataset and segments.csv" || bad "pseudonyms differ"
import csv, hmac, hashlib, sys, h5py
events, ds, key, seg = sys.argv[1:5]
raw = set()
with open(events) as f:
    for row in csv.DictReader(f):
        if row.get("user_id"):
            raw.add(row["user_id"].strip())
want = {hmac.new(key.encode(), r.encode(), hashlib.sha256).hexdigest()[:32] for r in raw}
got = {x.decode().rstrip("\0") for x in h5py.File(ds, "r")["/users/ids"][:]}
csv_ids = {l.split(",")[0] for l in open(seg).read().split("\n")[1:] if l}
sys.exit(not (got and got <= want and csv_ids == got and len(got) > 300))
PYEOF
for np in 1 3; do
  expect_fail "short key" $np 2 "at least 16 random bytes" \
    ingest --events "$WORK/ev.csv" --pseudonymize short --out "$WORK/o/d.h5"
  expect_fail "unset key variable" $np 2 "environment variable 'SEGREC_NO_SUCH_KEY' is not set" \
    ingest --events "$WORK/ev.csv" --pseudonymize env:SEGREC_NO_SUCH_KEY --out "$WORK/o/d.h5"
done
# The ingest report keeps file:line of malformed rows but not their text.
seg 1 ingest --events "$WORK/ev.csv" --pseudonymize "$KEY" --out "$P/r.h5" &&
  grep -q "ev.csv:[0-9]*: " "$WORK/out" && ! grep -q "person-" "$WORK/out" &&
  ok "report names malformed rows without their text" || bad "report: $(grep 'e.g.' "$WORK/out")"

# Report floor: with --min-report-users above every segment, no segment is described.
seg 2 cluster --projection "$P/projection.h5" --k 4 --min-report-users 100000 --out "$P/s2.h5" &&
  ! grep -q "## Segment" "$P/s2.md" && grep -q '"described": false' "$P/s2.json" &&
  ! grep -q '"described": true' "$P/s2.json" && ok "no segment under the floor is described" ||
  bad "floor: $(head -20 "$P/s2.md")"
finish
