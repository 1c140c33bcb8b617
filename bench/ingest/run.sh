#!/usr/bin/env bash
# segrec ingest against pandas (read_csv + drop_duplicates + factorize) on the
# same generated ~1 GB events file, on this machine's cores, in one run.
#   bench/ingest/run.sh [USERS]   (default 620000 users, about 1 GB)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${1:-620000}
WORK=${WORK:-${TMPDIR:-/tmp}/segrec-bench-ingest}
mkdir -p "$WORK"
"$ROOT/scripts/setup.sh" --bench
"$ROOT/scripts/build.sh" >/dev/null
SEGREC="$ROOT/build/segrec"
MPI=(mpirun --oversubscribe --bind-to core)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
EV="$WORK/events-$USERS.csv"
[[ -f $EV ]] || "${MPI[@]}" -n 2 "$SEGREC" generate --users "$USERS" --noise 0.01 --events "$EV" >/dev/null
BYTES=$(stat -c %s "$EV")
MB=$(python3 -c "print($BYTES/1e6)")
echo "events file: $EV, $MB MB"
cat "$EV" >/dev/null  # warm the page cache for every contender alike

declare -A SECS MEM
for np in 1 2; do
  rm -f "$WORK/ds.h5"
  s=$(date +%s.%N)
  "${MPI[@]}" -n "$np" "$SEGREC" ingest --events "$EV" --out "$WORK/ds.h5" >"$WORK/log.$np"
  e=$(date +%s.%N)
  SECS[$np]=$(python3 -c "print($e-$s)")
  MEM[$np]=$(grep -oP 'peak memory \K[0-9.]+' "$WORK/log.$np")
done
PJSON=$(/usr/bin/python3 "$ROOT/bench/ingest/pandas_peer.py" "$EV")
python3 - "$MB" "${SECS[1]}" "${SECS[2]}" "${MEM[1]}" "${MEM[2]}" "$PJSON" <<'PY'
import json, sys
mb, s1, s2, m1, m2 = map(float, sys.argv[1:6]); p = json.loads(sys.argv[6])
print(f"{'':28s}{'seconds':>10s}{'MB/s':>10s}{'vs pandas':>11s}{'peak MiB/rank':>15s}")
print(f"{'pandas (1 core)':28s}{p['total_s']:10.2f}{mb/p['total_s']:10.1f}{1.0:10.2f}x{p['peak_rss_mib']:15.0f}")
for n, s, m in ((1, s1, m1), (2, s2, m2)):
    print(f"{'segrec ingest -n %d' % n:28s}{s:10.2f}{mb/s:10.1f}{p['total_s']/s:10.2f}x{m:15.0f}")
share = mb / 2 * 1e6 / 2**20
print(f"memory: peak per rank at -n 2 is {m2:.0f} MiB = {m2/share:.2f}x the rank's share "
      f"of the input ({share:.0f} MiB); target <= 3x")
print(f"pandas detail: read {p['read_s']:.2f} s, drop_duplicates {p['dedup_s']:.2f} s, "
      f"factorize {p['factorize_s']:.2f} s; {p['rows']} rows, {p['users']} users, {p['items']} items")
PY
