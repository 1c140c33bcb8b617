#!/usr/bin/env bash
# The whole segmentation chain recovers planted segments:
# generate (20,000 users, 8 segments) -> ingest -> profile -> project -> cluster,
# adjusted Rand index against the truth >= 0.95, at 2 ranks.
source "$(dirname "$0")/lib.sh"
NP=2
D="$WORK/run"; mkdir -p "$D"
step() {
  local name=$1; shift
  if seg "$NP" "$@"; then ok "$name"; else bad "$name: $(cat "$WORK/err")"; finish; exit 1; fi
}
step generate generate --users 20000 --segments 8 --seed 42 --events "$D/ev.csv" \
  --truth "$D/truth.csv" --items-out "$D/items.csv"
step ingest ingest --events "$D/ev.csv" --out "$D/dataset.h5"
step profile profile --data "$D/dataset.h5" --item-categories "$D/items.csv" --out "$D/profiles.h5"
step project project --profiles "$D/profiles.h5" --dims 32 --out "$D/projection.h5"
step cluster cluster --projection "$D/projection.h5" --k 8 --out "$D/segments.h5" \
  --segments-csv "$D/segments.csv"
ari=$(awk -F, -f "$HERE/ari.awk" "$D/truth.csv" "$D/segments.csv")
n=$(($(wc -l <"$D/segments.csv") - 1))
[[ $n -eq 20000 ]] && ok "segments.csv has every user" || bad "segments.csv has $n users"
awk -v a="$ari" 'BEGIN { exit !(a >= 0.95) }' && ok "adjusted Rand index $ari >= 0.95" ||
  bad "adjusted Rand index $ari < 0.95"
# The report names items and lists categories from an item attribute file, and shows RFM.
awk -F, 'NR == 1 { print "item_id,name,category"; next } { print $1 ",Product " $1 "," $2 }' \
  "$D/items.csv" >"$D/info.csv"
mkdir -p "$D/named"
step report cluster --projection "$D/projection.h5" --k 8 --out "$D/named/segments.h5" \
  --report-item-info "$D/info.csv"
for want in "| Product i" "Most over-represented categories" "| recency (days) |" "top categories c"; do
  grep -qF "$want" "$D/named/segments.md" && ok "report shows '$want'" ||
    bad "report lacks '$want'"
done
finish
