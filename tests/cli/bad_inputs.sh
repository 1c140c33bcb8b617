#!/usr/bin/env bash
# The bad-input table: each case exits non-zero with a one-line message naming
# the problem (and file:line where there is one), leaves no output, never hangs.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D"
H='user_id,item_id,event,timestamp,value'
good() { for i in $(seq 1 "$1"); do echo "u$((i % 7)),i$((i % 11)),view,$((1700000000 + i)),1"; done; }

printf '' >"$D/empty.csv"
echo "$H" >"$D/header_only.csv"
{ echo "user_id,event,timestamp"; echo "u1,view,1700000000"; } >"$D/no_item.csv"
{ echo "item_id,event,timestamp"; echo "i1,view,1700000000"; } >"$D/no_user.csv"
{ echo "$H"; good 20; printf 'u\xff\xfe,i1,view,1700000000,1\n'; } >"$D/non_utf8.csv"
{ echo "$H"; good 20; printf 'u1,'; head -c 10485760 /dev/zero | tr '\0' 'x'; echo ',view,1700000000,1'; } >"$D/long_line.csv"
{ echo "$H"; good 20; echo "u1,i1,view,1700000000,NaN"; } >"$D/nan.csv"
{ echo "$H"; good 20; echo "u1,i1,view,-5,1"; } >"$D/neg_time.csv"
{ echo "$H"; good 20; echo "u1,i1,view,99999999999,1"; } >"$D/absurd_time.csv"
{ echo "$H"; good 98; echo "u1,i1,view"; echo "u2,,view,1700000000,1"; } >"$D/two_percent.csv"
{ echo "$H"; good 200; echo "u1,i1,view"; } >"$D/half_percent.csv"
{ echo "$H"; good 20; echo "u1,i1,view,1700000000,1e39"; } >"$D/float_range.csv"
{ echo "$H"; good 20; printf 'u\0x,i1,view,1700000000,1\n'; } >"$D/nul.csv"
{ echo "$H"; good 20; } | gzip >"$D/log.csv.gz"
{ printf '\x28\xb5\x2f\xfd'; good 3; } >"$D/log.csv.zst"
mkfifo "$D/fifo.csv"
{ echo "user_id,item_id,event,User_ID"; good 3; } >"$D/dup_header.csv"
# Under 1% bad: five ids that differ only after a NUL, and an id holding a quoted newline.
{ echo "$H"; good 1000; for x in a b c d e; do printf 'u\0%s,i1,view,1700000000,1\n' $x; done
  printf '"line1\nline2",i1,view,1700000000,1\n'; good 3; } >"$D/nul_quoted.csv"

OUT="$WORK/o/d.h5"
for np in 1 2; do
  expect_fail "missing file" $np 3 "nope.csv': no such file" ingest --events "$D/nope.csv" --out "$OUT"
  expect_fail "a directory" $np 3 "is a directory" ingest --events "$D" --out "$OUT"
  expect_fail "empty file" $np 3 "empty.csv' is empty" ingest --events "$D/empty.csv" --out "$OUT"
  expect_fail "header only" $np 3 "no data rows in '.*header_only.csv'" \
    ingest --events "$D/header_only.csv" --out "$OUT"
  expect_fail "no user column" $np 3 "no_user.csv:1: no user column" \
    ingest --events "$D/no_user.csv" --out "$OUT"
  expect_fail "no item column" $np 3 "no_item.csv:1: no item column" \
    ingest --events "$D/no_item.csv" --out "$OUT"
  expect_fail "wrong delimiter" $np 3 "no user column in header.*delimiter ';'" \
    ingest --events "$D/nan.csv" --delimiter ';' --out "$OUT"
  expect_fail "non-UTF-8 id" $np 3 "non_utf8.csv:22: invalid UTF-8" \
    ingest --events "$D/non_utf8.csv" --out "$OUT"
  expect_fail "10 MB line" $np 3 "long_line.csv:22: line too long" \
    ingest --events "$D/long_line.csv" --out "$OUT"
  expect_fail "NaN value" $np 3 "nan.csv:22: non-finite value" ingest --events "$D/nan.csv" --out "$OUT"
  expect_fail "gzip log" $np 3 "log.csv.gz' is gzip-compressed.*gunzip" \
    ingest --events "$D/log.csv.gz" --out "$OUT"
  expect_fail "zstd log" $np 3 "log.csv.zst' is zstd-compressed" ingest --events "$D/log.csv.zst" --out "$OUT"
  expect_fail "a FIFO" $np 3 "fifo.csv': not a regular file" ingest --events "$D/fifo.csv" --out "$OUT"
  expect_fail "a device" $np 3 "/dev/zero': not a regular file" ingest --events /dev/zero --out "$OUT"
  expect_fail "a /proc file" $np 3 "no fixed size" ingest --events /proc/self/status --out "$OUT"
  expect_fail "a duplicate header name" $np 3 \
    "dup_header.csv:1: the header names the user column twice: 'user_id' \(column 1\) and 'User_ID' \(column 4\)" \
    ingest --events "$D/dup_header.csv" --out "$OUT"
  expect_fail "value beyond float32" $np 3 "float_range.csv:22: value out of range" \
    ingest --events "$D/float_range.csv" --out "$OUT"
  expect_fail "NUL inside an id" $np 3 "nul.csv:22: NUL byte" ingest --events "$D/nul.csv" --out "$OUT"
  expect_fail "negative timestamp" $np 3 "neg_time.csv:22: bad time" \
    ingest --events "$D/neg_time.csv" --out "$OUT"
  expect_fail "absurd timestamp" $np 3 "absurd_time.csv:22: bad time" \
    ingest --events "$D/absurd_time.csv" --out "$OUT"
  expect_fail "over 1% bad rows" $np 3 "2 of 100 \(2.00%\).*two_percent.csv:100: field count" \
    ingest --events "$D/two_percent.csv" --out "$OUT"
  expect_fail "unwritable output" $np 4 "does not exist" \
    ingest --events "$D/half_percent.csv" --out "$WORK/o/missing/dir/d.h5"
done

# Under the 1% limit the bad row is dropped, counted and shown with file:line.
seg 2 ingest --events "$D/half_percent.csv" --out "$WORK/ok.h5" &&
  grep -qE "dropped: field count +1 " "$WORK/out" && grep -q "half_percent.csv:202: field count" "$WORK/out" &&
  ok "0.5% bad rows are dropped and reported" || bad "half percent: $(cat "$WORK/out" "$WORK/err")"

# NUL bytes and a quoted newline: whole records dropped and named, no cut or fake users.
for np in 1 3; do
  seg $np ingest --events "$D/nul_quoted.csv" --out "$WORK/nq.h5" --examples 10 &&
    grep -qE "dropped: .*NUL byte +5 " "$WORK/out" && grep -qE "bad quoting +1 " "$WORK/out" &&
    grep -q "nul_quoted.csv:1007: bad quoting: newline inside a quoted field" "$WORK/out" &&
    grep -q ": 7 users," "$WORK/out" &&
    ok "NUL ids and a quoted newline are dropped whole (-n $np)" ||
    bad "NUL/quoted newline (-n $np): $(cat "$WORK/out" "$WORK/err")"
done

# HDF5 inputs: an HDF5 file of another kind, and a truncated one.
cp "$WORK/ok.h5" "$D/dataset.h5"
for np in 1 2; do
  expect_fail "HDF5 file as events" $np 3 "is an HDF5 file, not an event log" \
    ingest --events "$D/dataset.h5" --out "$OUT"
  expect_fail "text file as HDF5" $np 3 "is not an HDF5 file" inspect "$D/nan.csv"
done
head -c $(( $(stat -c %s "$D/dataset.h5") / 2 )) "$D/dataset.h5" >"$D/truncated.h5"
for np in 1 2; do
  expect_fail "truncated HDF5" $np 3 "truncated.h5' \(truncated or damaged" inspect "$D/truncated.h5"
done
# ---- the option table across the commands, at 1 and 3 ranks ----------------------------------
# The stage files of a small data set (500 users, 100 items), and a second one with other items.
seg 2 generate --users 500 --items 100 --seed 2 --events "$D/t.csv" >/dev/null &&
  seg 2 ingest --events "$D/t.csv" --out "$D/t.h5" && seg 2 profile --data "$D/t.h5" --out "$D/tp.h5" &&
  seg 2 project --profiles "$D/tp.h5" --dims 8 --out "$D/tj.h5" &&
  seg 2 generate --users 300 --items 60 --seed 9 --events "$D/u.csv" >/dev/null &&
  seg 2 ingest --events "$D/u.csv" --out "$D/u.h5" &&
  seg 2 train --data "$D/t.h5" --hidden 8 --epochs 2 --batch-size 50 --out "$D/tm.h5" \
    --stop-after-steps 2 >/dev/null
[[ $? -eq 5 ]] || bad "table setup: $(cat "$WORK/err")"
PY=python3
python3 -c 'import h5py' 2>/dev/null || PY=/usr/bin/python3
if $PY -c 'import h5py' 2>/dev/null; then
  cp "$D/t.h5" "$D/v99.h5"
  $PY -c "import h5py, numpy; h5py.File('$D/v99.h5','r+').attrs['format_version']=numpy.int64(99)"
fi
TR=(train --hidden 8 --batch-size 50)
for np in 1 3; do
  expect_fail "k = 0" $np 2 "invalid value '0' for --k" cluster --projection "$D/tj.h5" --k 0 --out "$OUT"
  expect_fail "k > users" $np 3 "--k 600 asks for 600 segments but there are only 500 users" \
    cluster --projection "$D/tj.h5" --k 600 --out "$OUT"
  expect_fail "hidden 0" $np 2 "invalid value '0' for --hidden" train --data "$D/t.h5" --hidden 0 --out "$OUT"
  expect_fail "epochs 0" $np 2 "invalid value '0' for --epochs" "${TR[@]}" --data "$D/t.h5" --epochs 0 --out "$OUT"
  expect_fail "dims 0" $np 2 "for --dims" project --profiles "$D/tp.h5" --dims 0 --out "$OUT"
  expect_fail "structure unknown" $np 2 \
    "^segrec: error: invalid value 'tastes' for --structure: use taste, behaviour or both$" \
    generate --structure tastes --events "$OUT"
  for cmd in generate ingest profile project cluster train inspect info; do
    expect_fail "unknown option ($cmd)" $np 2 "unrecognised option '--no-such-option'" $cmd --no-such-option 1
  done
  expect_fail "conflicting: --no-header without --columns" $np 2 "header-less files need --columns" \
    ingest --events "$D/t.csv" --no-header --out "$OUT"
  expect_fail "conflicting: pick silhouette without a sample" $np 2 \
    "--pick silhouette and --silhouette-sample 0 cannot be used together" \
    cluster --projection "$D/tj.h5" --k 2:4 --pick silhouette --silhouette-sample 0 --out "$OUT"
  expect_fail "covariance unknown" $np 2 \
    "^segrec: error: invalid value 'spherical' for --covariance: use tied, full or diag$" \
    cluster --projection "$D/tj.h5" --k 3 --algorithm gmm --covariance spherical --out "$OUT"
  expect_fail "reg-covar 0" $np 2 "invalid value '0' for --reg-covar: must be > 0" \
    cluster --projection "$D/tj.h5" --k 3 --algorithm gmm --reg-covar 0 --out "$OUT"
  expect_fail "conflicting: pick bic without gmm" $np 2 \
    "--pick bic needs --algorithm gmm \\(K-means has no likelihood\\)$" \
    cluster --projection "$D/tj.h5" --k 2:4 --pick bic --out "$OUT"
  expect_fail "conflicting: covariance without gmm" $np 2 "--covariance needs --algorithm gmm" \
    cluster --projection "$D/tj.h5" --k 3 --covariance full --out "$OUT"
  expect_fail "conflicting: projected input without --projection" $np 2 "needs --projection" \
    "${TR[@]}" --data "$D/t.h5" --input projected --out "$OUT"
  expect_fail "model of other items than the data" $np 3 "written for other items" \
    "${TR[@]}" --data "$D/u.h5" --epochs 2 --out "$OUT" --checkpoint "$D/tm.h5.ckpt.h5" --resume
  expect_fail "projection of other users" $np 3 "rows" \
    "${TR[@]}" --data "$D/u.h5" --input both --projection "$D/tj.h5" --out "$OUT"
  expect_fail "a file of another kind" $np 3 "is a segrec-profiles file, expected segrec-dataset" \
    profile --data "$D/tp.h5" --out "$OUT"
  [[ -f "$D/v99.h5" ]] && expect_fail "format version mismatch" $np 3 "format version 99" \
    profile --data "$D/v99.h5" --out "$OUT"
  expect_fail "unwritable output (no folder)" $np 4 "does not exist" \
    profile --data "$D/t.h5" --out "$WORK/o/none/p.h5"
  expect_fail "unwritable output (refuses files)" $np 4 "cannot write '/proc/p.h5'" \
    profile --data "$D/t.h5" --out /proc/p.h5
  expect_fail "budget" $np 3 "over the 1 KiB allowed per rank" \
    profile --data "$D/t.h5" --out "$OUT" --max-memory-per-rank 1K
done
# dims above the feature count is clamped, with a warning (documented in `segrec project`).
seg 1 project --profiles "$D/tp.h5" --dims 5000 --out "$WORK/clamp.h5" && grep -q "warning: --dims 5000" "$WORK/err" &&
  ok "dims > features: clamped with a warning" || bad "dims > features: $(cat "$WORK/err")"
finish
