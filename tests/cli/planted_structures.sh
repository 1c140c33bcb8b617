#!/usr/bin/env bash
# Default segmentation on logs whose planted segments differ only in taste, only in behaviour
# and value, or in both (generate --structure), at 1 and 3 ranks:
# ingest -> profile -> project -> cluster --k 2:12 (view, shape and k chosen by segrec):
# the planted k is found and the adjusted Rand index is >= 0.95; taste and both are clustered
# as spherical segments on the interest or combined view, behaviour as tied segments on the
# value view; every output is the same at 1 and 3 ranks.
source "$(dirname "$0")/lib.sh"
step() {
  local np=$1 name=$2; shift 2
  if seg "$np" "$@"; then :; else bad "$name: $(cat "$WORK/err")"; finish; exit 1; fi
}
for spec in taste:8 behaviour:8 both:6; do
  structure=${spec%%:*} k=${spec##*:}
  D="$WORK/$structure"; mkdir -p "$D"
  step 2 generate generate --users 3000 --segments "$k" --structure "$structure" --seed 11 \
    --events "$D/ev.csv" --truth "$D/truth.csv"
  for np in 1 3; do
    O="$D/np$np"; mkdir -p "$O"
    step $np ingest ingest --events "$D/ev.csv" --out "$O/dataset.h5"
    step $np profile profile --data "$O/dataset.h5" --out "$O/profiles.h5"
    step $np project project --profiles "$O/profiles.h5" --dims 24 --out "$O/projection.h5"
    step $np cluster cluster --projection "$O/projection.h5" --k 2:12 --out "$O/segments.h5" \
      --segments-csv "$O/segments.csv"
  done
  cmp -s "$D/np1/segments.csv" "$D/np3/segments.csv" && ok "$structure: same segments at 1 and 3 ranks" ||
    bad "$structure: segments differ between 1 and 3 ranks"
  O="$D/np1"
  got_k=$(($(cut -d, -f2 "$O/segments.csv" | tail -n +2 | sort -u | wc -l)))
  read -r view shape < <(/usr/bin/python3 -c "
import h5py, sys
a = h5py.File(sys.argv[1]).attrs
s = lambda v: v.decode() if isinstance(v, bytes) else v
print(s(a['view']), s(a['shape']))" "$O/segments.h5" 2>/dev/null || echo unknown unknown)
  ari=$(awk -F, -f "$HERE/ari.awk" "$D/truth.csv" "$O/segments.csv")
  [[ $got_k -eq $k ]] && ok "$structure: planted k = $k found" || bad "$structure: k = $got_k, planted $k"
  awk -v a="$ari" 'BEGIN { exit !(a >= 0.95) }' && ok "$structure: adjusted Rand index $ari >= 0.95" ||
    bad "$structure: adjusted Rand index $ari < 0.95"
  case $structure in
    taste | both)
      [[ ($view == interest || $view == combined) && $shape == spherical || $view == unknown ]] &&
        ok "$structure: view $view, $shape segments" || bad "$structure: view $view, $shape segments"
      ;;
    behaviour)
      [[ $view == value && $shape == tied || $view == unknown ]] &&
        ok "behaviour: view $view, $shape segments" || bad "behaviour: view $view, $shape segments"
      ;;
  esac
done
finish
