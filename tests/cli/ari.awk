# Adjusted Rand index of two labelings given as CSV files "user_id,label" (with headers):
#   awk -F, -f ari.awk truth.csv predicted.csv
# Users missing from either file are ignored.
function c2(x) { return x * (x - 1) / 2 }
FNR == 1 { file++; next }
file == 1 { truth[$1] = $2; next }
file == 2 && ($1 in truth) {
  n++; a = truth[$1]; b = $2
  nij[a SUBSEP b]++; ai[a]++; bj[b]++
}
END {
  for (k in nij) s += c2(nij[k])
  for (k in ai) sa += c2(ai[k])
  for (k in bj) sb += c2(bj[k])
  expected = sa * sb / c2(n)
  maxi = (sa + sb) / 2
  if (maxi == expected) { print 1; exit }
  printf "%.6f\n", (s - expected) / (maxi - expected)
}
