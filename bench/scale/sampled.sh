#!/usr/bin/env bash
# The sampled softmax against the full softmax at scale: `segrec generate` USERS x ITEMS
# (default 1M users x 20k items) on NP ranks (default 2), then the whole `segrec run` twice on
# the same events: with its defaults (--loss auto: sampled-softmax at this size) and with
# --loss softmax (every other default alike). Prints each stage's seconds (max over ranks),
# the training epochs, seconds per epoch, the validation NDCG@100 of the kept epoch, and the
# ratio sampled / full for NDCG and the whole run.
#   bench/scale/sampled.sh [USERS] [ITEMS] [NP]
#   EXTRA="--epochs 3"       options for both runs
#   AUTO_EXTRA="--negatives 1000"  options for the default run only
#   FULL_EXTRA="--epochs 2"  options for the full-softmax run only (it is ~10x slower per epoch;
#                            a capped run gives a lower bound on its quality and time)
#   KEEP=DIR                 work in DIR and keep it (the events are reused when present)
# Timings are noisy when other jobs share the cores.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERS=${1:-1000000}
ITEMS=${2:-20000}
NP=${3:-2}
SEGREC=${SEGREC:-$ROOT/build/segrec}
[[ -x "$SEGREC" ]] || "$ROOT/scripts/build.sh" >/dev/null
MPI=(mpirun -n "$NP" --oversubscribe --bind-to none)
[[ $(id -u) -eq 0 ]] && MPI+=(--allow-run-as-root)
if [[ -n "${KEEP:-}" ]]; then
  W=$KEEP
  mkdir -p "$W"
else
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
fi
read -r -a EXTRA_A <<<"${EXTRA:-}"
read -r -a FULL_A <<<"${FULL_EXTRA:-}"
read -r -a AUTO_A <<<"${AUTO_EXTRA:-}"

t0=$(date +%s)
[[ -s "$W/events.csv" ]] ||
  "${MPI[@]}" "$SEGREC" generate -q --users "$USERS" --items "$ITEMS" --events "$W/events.csv"
echo "generate: $(($(date +%s) - t0)) s ($USERS users x $ITEMS items, $NP ranks)"

summary() {  # report.json -> stage seconds, epochs, seconds per epoch, NDCG of the kept epoch
  /usr/bin/python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
st = r["stages"]
total = 0.0
for s in st:
    sec = max(s["seconds"])
    total += sec
    print(f"  {s['name']:<10} {sec:9.1f} s")
t = r["training"]
ndcg = [x for x in t["val_ndcg"] if x == x]
secs = t["seconds"]
print(f"  total      {total:9.1f} s")
print(f"  epochs {len(secs)}, {sum(secs) / max(1, len(secs)):.1f} s per epoch, "
      f"validation NDCG@100 {max(ndcg):.4f}")
print(f"RESULT {total:.1f} {max(ndcg):.6f}")
PY
}

declare -A RES
for loss in auto softmax; do
  args=(--events "$W/events.csv" --out "$W/run_$loss" --force "${EXTRA_A[@]}")
  if [[ $loss == softmax ]]; then
    args+=(--loss softmax "${FULL_A[@]}")
    echo "== segrec run --loss softmax ${EXTRA:-} ${FULL_EXTRA:-}"
  else
    args+=("${AUTO_A[@]}")
    echo "== segrec run (defaults) ${EXTRA:-} ${AUTO_EXTRA:-}"
  fi
  "${MPI[@]}" "$SEGREC" run -q "${args[@]}"
  /usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1]); a = f['mlp'].attrs; \
s = lambda v: v.decode() if isinstance(v, bytes) else v; \
print('  model: loss', s(a['loss']), 'hidden', s(a.get('hidden', '?')))" \
    "$W/run_$loss/model.h5" || true
  out=$(summary "$W/run_$loss/report.json")
  echo "$out" | grep -v '^RESULT'
  RES[$loss]=$(echo "$out" | grep '^RESULT' | cut -d' ' -f2-)
done
read -r ta na <<<"${RES[auto]}"
read -r tf nf <<<"${RES[softmax]}"
/usr/bin/python3 -c "print(f'ratio auto/softmax: NDCG@100 {$na / $nf:.3f}, whole run time {$ta / $tf:.3f}')"
