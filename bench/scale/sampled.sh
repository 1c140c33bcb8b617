#!/usr/bin/env bash
# The sampled softmax against the full softmax at scale: `segrec generate` USERS x ITEMS
# (default 1M users x 20k items) on NP ranks (default 2), then the whole `segrec run` twice on
# the same events: with its defaults (--loss auto: sampled-softmax at this size, the auto epoch
# count) and with --loss softmax (every other default alike). Each run is three invocations of
# `segrec run` on the same folder: --until cluster, --until train (only the train stage runs:
# its wall and CPU seconds, /usr/bin/time over all ranks), then the rest (recommend). Prints
# each stage's seconds (max over ranks) and peak MiB per rank, the train stage's resolved
# choices (loss, width, batch, epochs), its wall and CPU seconds, the validation NDCG@100 per
# epoch and of the kept epoch, the load average, and the ratio sampled / full for NDCG and
# the whole run.
#   bench/scale/sampled.sh [USERS] [ITEMS] [NP]
#   EXTRA="--epochs 3"       options for both runs
#   AUTO_EXTRA="--negatives 1000"  options for the default run only
#   FULL_EXTRA="--epochs 200"  options for the full-softmax run only (it is ~10x slower per
#                            epoch; "--epochs 200" trains it to early stopping (--patience 10);
#                            a capped run gives a lower bound on its quality and time)
#   FULL=0                   the default run only (no full-softmax run, no ratio)
#   AUTO=0                   the full-softmax run only (no ratio)
#   REST=0                   stop each run after its train stage (no recommend)
#   KEEP=DIR                 work in DIR and keep it (the events are reused when present)
# Timings are noisy when other jobs share the cores: the load average is printed.
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

summary() {  # report.json files -> stage seconds and peak MiB, epochs, NDCG per epoch
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
total = 0.0
for path in sys.argv[1:]:
    r = json.load(open(path))
    for s in r["stages"]:
        if s["skipped"]:
            continue
        sec = max(s["seconds"])
        total += sec
        peak = ", ".join(f"{m:.0f}" for m in s["peak_mib"])
        print(f"  {s['name']:<10} {sec:9.1f} s   peak MiB per rank {peak}")
    if "training" in r:
        t = r["training"]
print(f"  total      {total:9.1f} s (stages)")
ndcg = [x for x in t["val_ndcg"] if x == x]
secs = t["seconds"]
print(f"  epochs {len(secs)}, {sum(secs) / max(1, len(secs)):.1f} s per epoch, "
      f"validation NDCG@100 per epoch {' '.join(f'{x:.4f}' for x in t['val_ndcg'])}, "
      f"kept {max(ndcg):.4f}")
print(f"RESULT {total:.1f} {max(ndcg):.6f}")
PY
}

timed() {  # timed NAME segrec-run-args...: /usr/bin/time over all ranks, load before and after
  local name=$1; shift
  local l0; l0=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -f '%e %U %S' -o "$W/$name.time" "${MPI[@]}" "$SEGREC" run "$@" >"$W/$name.log" 2>&1 ||
    { tail -20 "$W/$name.log"; exit 1; }
  read -r wall usr sys <"$W/$name.time"
  echo "  [$name] wall $wall s, CPU $(echo "$usr + $sys" | bc) s (all ranks), load $l0 -> $(cut -d' ' -f1-3 /proc/loadavg)"
  cp "$W/${name%_*}/report.json" "$W/$name.json"
}

declare -A RES
for loss in auto softmax; do
  [[ $loss == softmax && ${FULL:-1} == 0 ]] && continue
  [[ $loss == auto && ${AUTO:-1} == 0 ]] && continue
  args=(--events "$W/events.csv" --out "$W/run_$loss" "${EXTRA_A[@]}")
  if [[ $loss == softmax ]]; then
    args+=(--loss softmax "${FULL_A[@]}")
    echo "== segrec run --loss softmax ${EXTRA:-} ${FULL_EXTRA:-}"
  else
    args+=("${AUTO_A[@]}")
    echo "== segrec run (defaults) ${EXTRA:-} ${AUTO_EXTRA:-}"
  fi
  rm -rf "$W/run_$loss"
  # --force only for the first part: the later ones reuse the stages already run.
  timed "run_${loss}_1" "${args[@]}" --force --until cluster
  timed "run_${loss}_2" "${args[@]}" --until train
  grep -o 'loss [a-z-]* .*up to [0-9]* epochs[^;]*' "$W/run_${loss}_2.log" | sed 's/^/  train: /' || true
  parts=("$W/run_${loss}_1.json" "$W/run_${loss}_2.json")
  if [[ ${REST:-1} != 0 ]]; then
    timed "run_${loss}_3" "${args[@]}"
    parts+=("$W/run_${loss}_3.json")
  fi
  out=$(summary "${parts[@]}")
  echo "$out" | grep -v '^RESULT'
  RES[$loss]=$(echo "$out" | grep '^RESULT' | cut -d' ' -f2-)
done
[[ ${FULL:-1} == 0 || ${AUTO:-1} == 0 ]] && exit 0
read -r ta na <<<"${RES[auto]}"
read -r tf nf <<<"${RES[softmax]}"
/usr/bin/python3 -c "print(f'ratio auto/softmax: NDCG@100 {$na / $nf:.3f}, whole run time {$ta / $tf:.3f}')"
