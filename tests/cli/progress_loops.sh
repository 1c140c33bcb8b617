#!/usr/bin/env bash
# Progress inside the long loops, in a batch log (stderr not a terminal): training steps
# within an epoch, PCA rows within a pass, the runs of each k of a K-means sweep, and the
# blocks of users of recommend and evaluate; each with an ETA from its first line on.
source "$(dirname "$0")/lib.sh"
# A duration as format_duration prints it: 1.25 s, 42 s, 3m07s or 2h05m (slow under load).
DUR='([0-9.]+ s|[0-9]+m[0-9]{2}s|[0-9]+h[0-9]{2}m)'

seg 1 generate --users 5000 --items 2000 --seed 9 --events "$WORK/ev.csv" >/dev/null &&
  seg 1 ingest --events "$WORK/ev.csv" --out "$WORK/ds.h5" &&
  seg 1 profile --data "$WORK/ds.h5" --out "$WORK/p.h5" ||
  { bad "setup: $(cat "$WORK/err")"; finish; exit; }

# first_line PATTERN: number of the first line of $WORK/err matching PATTERN (0: none).
first_line() { grep -nE -m1 -- "$1" "$WORK/err" | cut -d: -f1 || true; }

# Training, every 0.05 s: 157 steps of 32 users an epoch (about a second). A line naming a
# step inside epoch 1 comes before any line of a finished epoch, and has an ETA.
T=(train --data "$WORK/ds.h5" --out "$WORK/m.h5" --hidden 64 --val-users 0)
seg 1 "${T[@]}" --epochs 2 --batch-size 32 --progress-interval 0.05 || bad "train: $(cat "$WORK/err")"
steps=$(grep -cE '^\[[0-9:]+\] train  epoch 1/2  step [0-9]+/157 \([0-9]+%\)  ETA [0-9]' "$WORK/err")
in_epoch=$(first_line '^\[[0-9:]+\] train  epoch 1/2  step ([0-9]|[0-9][0-9]|1[0-4][0-9]|15[0-6])/157 ')
done_epoch=$(first_line 'train  epoch (1/2 \(50%\)|2/2)')
[[ $steps -ge 1 && -n $in_epoch && ( -z $done_epoch || $in_epoch -lt $done_epoch ) ]] &&
  ok "train: $steps step lines in epoch 1, the first before the epoch ends" ||
  bad "train steps ($steps, line $in_epoch before $done_epoch): $(head -5 "$WORK/err")"
# Every update shown: each step of both epochs, the ETA over all of them, then the epoch lines.
seg 1 "${T[@]}" --epochs 3 --batch-size 500 --progress-interval 0.000001 ||
  bad "train: $(cat "$WORK/err")"
grep -E 'train  epoch' "$WORK/err" | sed -E 's/^\[[0-9:]+\] //; s/  (ETA|loss|samples).*//' >"$WORK/seq"
{
  for e in 1 2 3; do
    for s in $(seq 1 10); do echo "train  epoch $e/3  step $s/10 ($(((10 * (e - 1) + s) * 100 / 30))%)"; done
    echo "train  epoch $e/3 ($((e * 100 / 3))%)"
  done
} | sed -E 's/\(([0-9]+)%\)/(~%)/' >"$WORK/want"
sed -E 's/\(([0-9]+)%\)/(~%)/' "$WORK/seq" | diff -q - "$WORK/want" >/dev/null &&
  ok "train: a line per step of every epoch, then the epoch line" ||
  bad "train sequence: $(sed -E 's/\(([0-9]+)%\)/(~%)/' "$WORK/seq" | diff - "$WORK/want" | head -6)"
grep -qE '^\[[0-9:]+\] train  epoch 1/3  step 1/10 \(3%\)  ETA '"$DUR"'  samples/s [0-9]' "$WORK/err" &&
  grep -qE 'train  epoch 3/3  step 5/10 \(83%\)  ETA ' "$WORK/err" &&
  ok "train: ETA over the steps of all epochs from the first line on" ||
  bad "train ETA: $(grep -m3 'step' "$WORK/err")"

# PCA: each pass over the data, and the rows inside a pass (every 4096 rows of rank 0).
seg 1 project --profiles "$WORK/p.h5" --dims 8 --out "$WORK/h.h5" --progress-interval 0.000001 ||
  bad "project: $(cat "$WORK/err")"
grep -qE '^\[[0-9:]+\] project: PCA  pass 1/6  rows 4096/5000 \(1[0-9]%\)  ETA ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] project: PCA  pass 5/6  rows 4096/5000 ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] project: PCA  pass 4/6 \(67%\)  ETA ' "$WORK/err" &&
  ok "project: rows within each pass" || bad "project lines: $(head -8 "$WORK/err")"

# A K-means sweep: each k's restarts and gap reference sets are parts of the k; the lines of
# the Lloyd runs inside name the sweep's progress and ETA.
seg 1 cluster --projection "$WORK/h.h5" --k 2:4 --n-init 2 --gap-references 2 \
  --out "$WORK/s.h5" --progress-interval 0.000001 || bad "cluster: $(cat "$WORK/err")"
grep -qE '^\[[0-9:]+\] cluster: k sweep  k 1/3  run 1/4 \(8%\)  ETA '"$DUR"'  k 2$' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] cluster: k sweep  k 3/3  run 3/4 \(92%\)  ETA ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] gap reference: k=3  iter 1 \(max [0-9]+\) .*  \| cluster: k sweep [0-9]+%, ETA ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] kmeans: k=4  iter 1 \(max [0-9]+\) .*  \| cluster: k sweep 67%' "$WORK/err" &&
  ok "cluster: runs of each k of the sweep, the sweep's ETA in the runs' lines" ||
  bad "cluster lines: $(grep -m6 -E 'cluster|k=3' "$WORK/err")"
seg 1 cluster --projection "$WORK/h.h5" --k 3 --n-init 3 --out "$WORK/s3.h5" \
  --progress-interval 0.000001 && grep -qE '^\[[0-9:]+\] cluster: k=3  run 2/3 \(67%\)  ETA ' "$WORK/err" &&
  ok "cluster: the restarts of one k" || bad "cluster one k: $(grep -m4 cluster "$WORK/err")"

# recommend and evaluate: blocks of users scored.
seg 1 recommend --model "$WORK/m.h5" --data "$WORK/ds.h5" --top 5 --block-users 500 \
  --out "$WORK/r.csv" --progress-interval 0.000001 || bad "recommend: $(cat "$WORK/err")"
grep -qE '^\[[0-9:]+\] recommend: users scored  block 1/10 \(10%\)  ETA ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] recommend: users scored  block 4/10 \(40%\)  ETA ' "$WORK/err" &&
  ok "recommend: blocks of users" || bad "recommend lines: $(head -4 "$WORK/err")"
seg 1 split --events "$WORK/ev.csv" --protocol strong --out "$WORK/split" &&
  seg 1 evaluate --model "$WORK/m.h5" --foldin "$WORK/split/foldin.csv" \
    --test "$WORK/split/test.csv" --block-users 200 --progress-interval 0.000001 ||
  bad "evaluate: $(cat "$WORK/err")"
grep -qE '^\[[0-9:]+\] evaluate: users scored  block 1/5 \(20%\)  ETA ' "$WORK/err" &&
  grep -qE '^\[[0-9:]+\] evaluate: users scored  block 4/5 \(80%\)  ETA ' "$WORK/err" &&
  ok "evaluate: blocks of users" || bad "evaluate lines: $(head -4 "$WORK/err")"
finish
