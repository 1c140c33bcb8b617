#!/usr/bin/env bash
# Help, version, option errors, INI configs and the report of a small ingest.
source "$(dirname "$0")/lib.sh"

seg 1 --help && grep -q "ingest" "$WORK/out" && ok "--help lists commands" || bad "--help"
seg 1 --version && grep -qE "^segrec [0-9]+\.[0-9]+" "$WORK/out" && ok "--version" || bad "--version"
for c in generate ingest inspect info; do
  seg 1 "$c" --help && grep -q -- "--seed" "$WORK/out" && ok "$c --help" || bad "$c --help"
done
seg 2 info && grep -q "parallel" "$WORK/out" && ok "info reports parallel HDF5" || bad "info"

expect_fail "unknown command" 1 2 "unknown command 'frobnicate'" frobnicate
expect_fail "unknown option" 2 2 "unrecognised option '--frob'" ingest --frob 1
expect_fail "bad value" 2 2 "invalid value '2' for --max-bad-fraction" \
  ingest --events "$DATA/events_small.csv" --out "$WORK/o/d.h5" --max-bad-fraction 2
expect_fail "not a number" 1 2 "min-user-events" \
  ingest --events "$DATA/events_small.csv" --out "$WORK/o/d.h5" --min-user-events abc
expect_fail "conflicting options" 2 2 "--columns.*only with --no-header" \
  ingest --events "$DATA/events_small.csv" --out "$WORK/o/d.h5" --columns user_id,item_id
expect_fail "missing --out" 1 2 "for --out" ingest --events "$DATA/events_small.csv"

# A small ingest and its report.
if seg 2 ingest --events "$DATA/events_small.csv" --out "$WORK/d.h5"; then
  grep -qE "rows read +10 " "$WORK/out" && grep -qE "exact duplicates +1 " "$WORK/out" &&
    grep -qE "rows kept +9 " "$WORK/out" && grep -q "unknown event type 'share'" "$WORK/out" &&
    grep -q "4 users, 5 items, 9 events" "$WORK/out" && ok "ingest report" ||
    bad "ingest report: $(cat "$WORK/out")"
else
  bad "ingest of events_small.csv: $(cat "$WORK/err")"
fi
ls "$WORK" | grep -q "tmp-" && bad "temporary file left" || ok "no temporary left"

# INI config: values apply, the command line overrides them, unknown keys are errors.
cat >"$WORK/c.ini" <<INI
# a pipeline config
[ingest]
events = $DATA/events_small.csv
out = $WORK/ini.h5
min-item-users = 2   # drop items seen by one user
INI
seg 1 ingest --config "$WORK/c.ini" && grep -q "3 users, 3 items" "$WORK/out" &&
  ok "--config applies" || bad "--config: $(cat "$WORK/out" "$WORK/err")"
seg 1 ingest --config "$WORK/c.ini" --min-item-users 1 && grep -q "4 users, 5 items" "$WORK/out" &&
  ok "command line overrides --config" || bad "override: $(cat "$WORK/out")"
SEGREC_CONFIG="$WORK/c.ini" seg 1 ingest && grep -q "3 users, 3 items" "$WORK/out" &&
  ok "SEGREC_CONFIG" || bad "SEGREC_CONFIG: $(cat "$WORK/err")"
printf 'events = x\nfrobnicate = 3\n' >"$WORK/bad.ini"
expect_fail "unknown INI key" 1 2 "bad.ini:2: unknown option 'frobnicate'" ingest --config "$WORK/bad.ini"
printf 'events x\n' >"$WORK/bad2.ini"
expect_fail "malformed INI line" 1 2 "bad2.ini:1:" ingest --config "$WORK/bad2.ini"

# inspect shows the report of a dataset.
seg 1 inspect "$WORK/d.h5" && grep -q "segrec-dataset version 1" "$WORK/out" &&
  grep -q "/interactions/indptr  \[5\]" "$WORK/out" && ok "inspect" || bad "inspect: $(cat "$WORK/out")"
grep -q "item attributes: categories (5 of 5 items, 4 categories)" "$WORK/out" &&
  ok "inspect: item attributes" || bad "inspect item attributes: $(cat "$WORK/out")"

# Item attribute columns named with --col-*: prices and names in the dataset.
printf 'customer,sku,Cost,Label,qty\nc1,s1,2.5,Mug,3\nc2,s1,3.5,Mug,1\nc2,s2,,Cup,1\n' >"$WORK/retail.csv"
seg 2 ingest --events "$WORK/retail.csv" --col-user customer --col-item sku --col-price Cost \
  --col-item-name Label --out "$WORK/retail.h5" &&
  grep -q "2 users, 2 items, 3 events, .*; item attributes: price name$" "$WORK/out" &&
  seg 1 inspect "$WORK/retail.h5" &&
  grep -q "item attributes: prices (1 of 2 items), names (2 of 2 items)$" "$WORK/out" &&
  grep -q "/log/price  \[3\]" "$WORK/out" && ok "ingest with --col-price, --col-item-name" ||
  bad "item attributes: $(cat "$WORK/out" "$WORK/err")"
finish
