#!/usr/bin/env bash
# --max-memory-per-rank: a stage whose estimate per rank exceeds the limit is refused before
# it allocates, on every rank, with one line naming the stage, the bytes, the limit and what
# to change (exit 2, no output left); the estimate's items are checked in closed form.
source "$(dirname "$0")/lib.sh"

D="$WORK/d"
mkdir -p "$D"
seg 2 generate --users 2000 --items 300 --seed 5 --events "$D/ev.csv" >/dev/null &&
  seg 2 ingest --events "$D/ev.csv" --out "$D/ds.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
I=$(grep -o 'users, [0-9]* items' "$WORK/out" | head -1 | cut -d' ' -f2)  # items in ds.h5
seg 2 profile --data "$D/ds.h5" --out "$D/p.h5" &&
  seg 2 project --profiles "$D/p.h5" --dims 8 --out "$D/h.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }
[[ -n $I ]] || { bad "setup: no item count in ingest's summary"; finish; exit; }

# Bytes as the binary prints them (progress::format_bytes: "%.1f KiB", "%.1f MiB", ...).
fmt() {
  awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB PiB", u, " "); n = 1
    while (b >= 1024 && n < 6) { b /= 1024; n++ }
    if (n == 1) printf "%.0f B", b; else printf "%.1f %s", b, u[n] }'
}
H=200
P=$((I * H + H + H * I + I))  # history input: W0 (I x H), b0, W1 (H x I), b1
HINT='use more ranks \(--grad-sync items or sharded keeps 1/ranks of the moments and output block\), a smaller --hidden or --batch-size, or raise --max-memory-per-rank'
TR=(train --data "$D/ds.h5" --hidden "$H" --batch-size 100 --epochs 1 --out "$WORK/o/m.h5")
for np in 1 2; do
  # Adam moments: 2P floats on one rank; --grad-sync items splits them over 2 ranks.
  moments=$(fmt $((2 * P * 4 / np)))
  expect_fail "train refused" $np 2 \
    "^segrec: error: train: needs [0-9.]+ MiB per rank \(.*parameters \(weights, best and validation copies\) $(fmt $((3 * P * 4))), gradient $(fmt $((P * 4))), Adam moments $moments, .*\), over the 2\.0 MiB allowed by --max-memory-per-rank; $HINT\$" \
    "${TR[@]}" --max-memory-per-rank 2M
  rm -rf "$WORK/o"; mkdir -p "$WORK/o"
  seg $np "${TR[@]}" --max-memory-per-rank 64M && [[ -s $WORK/o/m.h5 ]] &&
    ok "train within 64M (-n $np)" || bad "train within 64M (-n $np): $(tail -3 "$WORK/err")"
done

# --hidden auto (the default): width 1000 within the limit; under a limit that 1000 exceeds,
# the widest multiple of 64 that fits, named in the summary line (64 more is refused).
AUTO=(train --data "$D/ds.h5" --batch-size 100 --epochs 1 --out "$WORK/o/m.h5" --grad-sync allreduce)
rm -rf "$WORK/o"; mkdir -p "$WORK/o"
seg 1 "${AUTO[@]}" && grep -qE "^wrote .*: $I-1000-$I .*, hidden 1000 \(auto\)," "$WORK/out" &&
  ok "auto width 1000 without a limit" || bad "auto width: $(grep wrote "$WORK/out") $(tail -3 "$WORK/err")"
for np in 1 2; do
  rm -rf "$WORK/o"; mkdir -p "$WORK/o"
  w=
  if seg $np "${AUTO[@]}" --max-memory-per-rank 12M; then
    w=$(grep -oE "^wrote .*: $I-[0-9]+-$I " "$WORK/out" | sed -E "s/.*: $I-([0-9]+)-$I /\1/")
    [[ -n $w && $w -lt 1000 && $((w % 64)) -eq 0 ]] &&
      grep -qE "hidden $w \(auto: the widest of 1000 or a multiple of 64 within --max-memory-per-rank\)" "$WORK/out" &&
      ok "auto width $w under 12M (-n $np)" || bad "auto width under 12M (-n $np): $(grep wrote "$WORK/out")"
  else
    bad "auto width under 12M (-n $np) refused: $(tail -2 "$WORK/err")"
  fi
  [[ -n $w ]] && expect_fail "width $w + 64 over 12M" $np 2 \
    "^segrec: error: train: needs .* over the 12\.0 MiB allowed" "${AUTO[@]}" --hidden $((w + 64)) \
    --max-memory-per-rank 12M
done
rm -rf "$WORK/o"; mkdir -p "$WORK/o"

# cluster: 2000 x 8 floats of /H, split over the ranks; refused before it reads them.
for np in 1 2; do
  expect_fail "cluster refused" $np 2 \
    "^segrec: error: cluster: needs [0-9.]+ KiB per rank \(projection block \(users x dims, 3 copies\) $(fmt $((3 * 2000 / np * 8 * 4))), .*\), over the 64\.0 KiB allowed by --max-memory-per-rank; use more ranks \(the users' rows are split over the ranks\), a smaller k or fewer --threads, or raise --max-memory-per-rank\$" \
    cluster --projection "$D/h.h5" --k 4 --out "$WORK/o/s.h5" --max-memory-per-rank 64K
done
rm -rf "$WORK/o"; mkdir -p "$WORK/o"
seg 2 cluster --projection "$D/h.h5" --k 4 --out "$WORK/o/s.h5" --max-memory-per-rank 64M &&
  ok "cluster within 64M" || bad "cluster within 64M: $(tail -3 "$WORK/err")"
finish
