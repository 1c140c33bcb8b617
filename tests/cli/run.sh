#!/usr/bin/env bash
# segrec run: the whole pipeline at 1 and 3 ranks (same segments, same model up to
# rounding), stage reuse (skipped when up to date, re-run from the first changed stage,
# --force), the report, and its bad inputs.
source "$(dirname "$0")/lib.sh"

D="$WORK/in"; mkdir -p "$D"
seg 1 generate --users 900 --items 150 --events "$D/ev.csv" || { bad "generate: $(cat "$WORK/err")"; finish; exit 1; }
ARGS=(--events "$D/ev.csv" --epochs 2 --k 3:5)

for np in 1 3; do
  if seg $np run "${ARGS[@]}" --out "$WORK/r$np"; then
    missing=""
    for f in dataset.h5 profiles.h5 projection.h5 segments.h5 segments.csv segments.md \
             segments.json model.h5 report.json report.md; do
      [[ -s $WORK/r$np/$f ]] || missing+=" $f"
    done
    [[ -z $missing ]] && ok "run (-n $np): every output written" || bad "run (-n $np): missing$missing"
    [[ $(grep -c '^== ' "$WORK/out") -eq 5 ]] && ! grep -q 'skipped' "$WORK/out" &&
      ok "run (-n $np): five stages ran" || bad "run (-n $np): stages: $(grep '^== ' "$WORK/out")"
  else
    bad "run (-n $np): $(tail -5 "$WORK/err")"
  fi
done
cmp -s "$WORK/r1/segments.csv" "$WORK/r3/segments.csv" &&
  ok "segments identical at 1 and 3 ranks" || bad "segments differ at 1 and 3 ranks"
seg 1 inspect --digest "$WORK/r1/segments.h5" && grep '/labels\|/sizes' "$WORK/out" | awk '{print $NF}' >"$WORK/d1"
seg 1 inspect --digest "$WORK/r3/segments.h5" && grep '/labels\|/sizes' "$WORK/out" | awk '{print $NF}' >"$WORK/d3"
[[ -s $WORK/d1 ]] && cmp -s "$WORK/d1" "$WORK/d3" && ok "segments.h5 labels and sizes: same digest" ||
  bad "segments.h5 digests differ: $(paste "$WORK/d1" "$WORK/d3")"

# Reuse: nothing changed -> every stage skipped; a training option -> only train;
# the events file -> every stage; --force -> every stage.
R="$WORK/r3"
stages_ran() { grep '^== ' "$WORK/out" | grep -v skipped | sed 's/^== //' | tr '\n' ' '; }
seg 3 run "${ARGS[@]}" --out "$R" && [[ $(stages_ran) == "" ]] &&
  ok "unchanged: every stage skipped" || bad "unchanged: ran '$(stages_ran)' $(tail -3 "$WORK/err")"
seg 3 run --events "$D/ev.csv" --epochs 3 --k 3:5 --out "$R" && [[ $(stages_ran) == "train " ]] &&
  ok "--epochs changed: only train re-ran" || bad "--epochs changed: ran '$(stages_ran)'"
seg 3 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$R" && [[ $(stages_ran) == "cluster train " ]] &&
  ok "--k changed: cluster and train re-ran" || bad "--k changed: ran '$(stages_ran)'"
seg 3 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$R" --force &&
  [[ $(stages_ran) == "ingest profile project cluster train " ]] &&
  ok "--force: every stage re-ran" || bad "--force: ran '$(stages_ran)'"
touch -d '2001-01-01' "$D/ev.csv"
seg 3 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$R" &&
  [[ $(stages_ran) == "ingest profile project cluster train " ]] &&
  ok "events file touched: every stage re-ran" || bad "events touched: ran '$(stages_ran)'"
rm "$R/profiles.h5"
seg 3 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$R" &&
  [[ $(stages_ran) == "profile project cluster train " ]] &&
  ok "an output removed: its stage and the later ones re-ran" || bad "output removed: ran '$(stages_ran)'"
# The report.
grep -q '"name": "train"' "$R/report.json" && grep -q '"explained_variance_ratio"' "$R/report.json" &&
  grep -q '"k": 4' "$R/report.json" && grep -q '"val_ndcg"' "$R/report.json" &&
  grep -q '^## Training' "$R/report.md" && ok "report.json and report.md cover every stage" ||
  bad "report: $(head -c 600 "$R/report.json")"
if command -v python3 >/dev/null; then
  python3 - "$R/report.json" <<'PY' && ok "report.json: stages, per-rank figures, k" || bad "report.json content"
import json, sys
r = json.load(open(sys.argv[1]))
assert [s["name"] for s in r["stages"]] == ["ingest", "profile", "project", "cluster", "train"]
train = r["stages"][-1]
assert not train["skipped"] and len(train["seconds"]) == 3 and len(train["peak_mib"]) == 3
assert r["segments"]["k"] == 4 and sum(r["segments"]["sizes"]) == 900
assert r["ingest"]["users"] == 900 and len(r["training"]["train_loss"]) == 3
PY
  
else
  echo "skip: python3 absent, report.json not parsed"
fi

seg 1 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$R" --until project &&
  [[ $(grep -c '^== ' "$WORK/out") -eq 3 ]] && ok "--until project stops after project" ||
  bad "--until: $(grep '^== ' "$WORK/out")"

# An interrupted training resumes by itself when the same command runs again, and ends
# with the model of an uninterrupted run.
seg 2 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$WORK/full" -q
seg 2 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$WORK/cut" --stop-after-steps 4; rc=$?
[[ $rc -eq 5 && -f $WORK/cut/model.h5.ckpt.h5 && ! -f $WORK/cut/model.h5 ]] &&
  ok "stopped training: exit 5, checkpoint, no model" || bad "stop: exit $rc $(tail -3 "$WORK/err")"
seg 2 run --events "$D/ev.csv" --epochs 3 --k 4 --out "$WORK/cut" && grep -q '== train: resuming' "$WORK/out" &&
  [[ $(stages_ran) == "train: resuming from $WORK/cut/model.h5.ckpt.h5 train " ]] &&
  ok "same command again: resumed from the checkpoint" || bad "resume: $(grep '^==' "$WORK/out") $(tail -3 "$WORK/err")"
seg 1 inspect --digest "$WORK/full/model.h5" && grep '/mlp/' "$WORK/out" >"$WORK/mf"
seg 1 inspect --digest "$WORK/cut/model.h5" && grep '/mlp/' "$WORK/out" >"$WORK/mc"
[[ -s $WORK/mf ]] && cmp -s "$WORK/mf" "$WORK/mc" && ok "resumed model identical to an uninterrupted run" ||
  bad "resumed model differs: $(diff "$WORK/mf" "$WORK/mc" | head -4)"

# One INI for the whole pipeline.
printf '# pipeline\n[cluster]\nk = 3\n[train]\nepochs = 1\nhidden = 32\n' >"$D/p.ini"
seg 2 run --events "$D/ev.csv" --out "$WORK/ini" --config "$D/p.ini" &&
  grep -q '"k": 3' "$WORK/ini/report.json" && grep -q 'kept epoch 1' "$WORK/out" &&
  ok "options from an INI reach their stages" || bad "INI: $(tail -5 "$WORK/out" "$WORK/err")"

for np in 1 3; do
  expect_fail "no events" $np 2 "events" run --out "$WORK/o/x"
  expect_fail "missing events file" $np 2 "cannot read" run --events "$WORK/none.csv" --out "$WORK/o/x"
  expect_fail "bad --until" $np 2 "until" run --events "$D/ev.csv" --out "$WORK/o/x" --until recommend2
  expect_fail "bad stage option" $np 2 "epochs" run --events "$D/ev.csv" --out "$WORK/o/x" --epochs 0
done
finish
