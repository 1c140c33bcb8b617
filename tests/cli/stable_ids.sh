#!/usr/bin/env bash
# Stable segment ids across refreshes (cluster --previous, and run's automatic --previous),
# at 1 and 3 ranks: an unchanged rerun keeps every id and moves nobody; 10% more users keep
# every id (each new segment is the old segment it shares most users with, and holds the
# same planted segment); a permuted previous file is followed; bad previous files fail
# with one line naming the file.
source "$(dirname "$0")/lib.sh"
D="$WORK/d"; mkdir -p "$D"
step() {
  local name=$1 np=$2; shift 2
  if seg "$np" "$@"; then ok "$name"; else bad "$name: $(cat "$WORK/err")"; finish; exit 1; fi
}
# most_overlap OLD.csv NEW.csv: "new_segment old_segment_with_most_users" per new segment.
most_overlap() {
  awk -F, 'FNR == 1 { f++; next } f == 1 { old[$1] = $2; next }
    ($1 in old) { n[$2 SUBSEP old[$1]]++; if (n[$2 SUBSEP old[$1]] > best[$2]) { best[$2] = n[$2 SUBSEP old[$1]]; arg[$2] = old[$1] } }
    END { for (s in arg) print s, arg[s] }' "$1" "$2" | sort -n
}
# planted TRUTH.csv SEGMENTS.csv: "segment planted_segment_most_of_its_users_have".
planted() {
  awk -F, 'FNR == 1 { f++; next } f == 1 { t[$1] = $2; next }
    ($1 in t) { n[$2 SUBSEP t[$1]]++; if (n[$2 SUBSEP t[$1]] > best[$2]) { best[$2] = n[$2 SUBSEP t[$1]]; arg[$2] = t[$1] } }
    END { for (s in arg) print s, arg[s] }' "$1" "$2" | sort -n
}
# moved CSV_A CSV_B: users of both files whose segment differs.
moved() {
  awk -F, 'FNR == 1 { f++; next } f == 1 { a[$1] = $2; next } ($1 in a) && a[$1] != $2 { m++ }
    END { print m + 0 }' "$1" "$2"
}

G=(--segments 6 --items 300 --seed 42)
step "generate 4000 users" 2 generate --users 4000 "${G[@]}" --events "$D/ev1.csv" --truth "$D/t1.csv"
step "generate 4400 users" 2 generate --users 4400 "${G[@]}" --events "$D/ev2.csv" --truth "$D/t2.csv"
for v in 1 2; do
  step "ingest $v" 2 ingest --events "$D/ev$v.csv" --out "$D/ds$v.h5"
  step "profile $v" 2 profile --data "$D/ds$v.h5" --out "$D/p$v.h5"
  step "project $v" 2 project --profiles "$D/p$v.h5" --dims 16 --out "$D/h$v.h5"
done
step "project 1 in 8 dims" 2 project --profiles "$D/p1.h5" --dims 8 --out "$D/h1_8.h5"
join -t, <(tail -n +2 "$D/t1.csv" | sort) <(tail -n +2 "$D/t2.csv" | sort) |
  awk -F, '$2 != $3 { d++ } END { exit d > 0 || NR != 4000 }' &&
  ok "the first 4000 generated users are the same in both logs" ||
  bad "4400 users do not start with the 4000"

for np in 1 3; do
  O="$WORK/np$np"; mkdir -p "$O"
  step "cluster (-n $np)" $np cluster --projection "$D/h1.h5" --k 6 --out "$O/s1.h5"
  # Unchanged data, --previous is --out itself.
  cp "$O/s1.csv" "$O/s1.before.csv"
  step "unchanged rerun, --previous = --out (-n $np)" $np cluster --projection "$D/h1.h5" --k 6 \
    --previous "$O/s1.h5" --out "$O/s1.h5"
  cmp -s "$O/s1.before.csv" "$O/s1.csv" && ok "unchanged rerun: same ids (-n $np)" ||
    bad "unchanged rerun: $(moved "$O/s1.before.csv" "$O/s1.csv") users changed segment (-n $np)"
  grep -q '"stayed_share": 1,' "$O/s1.json" && grep -q '"new_segments": \[\], "retired_segments": \[\]' "$O/s1.json" &&
    ok "unchanged rerun: 100% stayed, no new or retired segment (-n $np)" ||
    bad "unchanged rerun: $(grep -A3 transitions "$O/s1.json")"
  grep -q '100.0% of them kept their segment' "$O/s1.md" && ok "report: transition section (-n $np)" ||
    bad "report: no transition section"

  # 10% new users: every id kept.
  step "refresh with 10% new users (-n $np)" $np cluster --projection "$D/h2.h5" --k 6 \
    --previous "$O/s1.h5" --out "$O/s2.h5"
  grep -q 'ids follow .* 4000 users in both runs.* 400 new, 0 departed users; new segments none, retired none' "$WORK/out" &&
    ok "summary line (-n $np)" || bad "summary: $(grep 'ids follow' "$WORK/out")"
  mo=$(most_overlap "$O/s1.csv" "$O/s2.csv" | awk '$1 != $2' | wc -l)
  [[ $mo -eq 0 && $(most_overlap "$O/s1.csv" "$O/s2.csv" | wc -l) -eq 6 ]] &&
    ok "each new segment is the old one it shares most users with (-n $np)" ||
    bad "segment ids moved: $(most_overlap "$O/s1.csv" "$O/s2.csv" | tr '\n' ';')"
  [[ -n $(planted "$D/t1.csv" "$O/s1.csv") ]] &&
    [[ "$(planted "$D/t1.csv" "$O/s1.csv")" == "$(planted "$D/t2.csv" "$O/s2.csv")" ]] &&
    [[ $(planted "$D/t1.csv" "$O/s1.csv" | awk '{print $2}' | sort -u | wc -l) -eq 6 ]] &&
    ok "each id holds the same planted segment before and after (-n $np)" ||
    bad "planted: $(planted "$D/t1.csv" "$O/s1.csv" | tr '\n' ';') vs $(planted "$D/t2.csv" "$O/s2.csv" | tr '\n' ';')"
  m=$(moved "$O/s1.csv" "$O/s2.csv")
  # Users near a boundary may move: the projection is refit on the refreshed log.
  [[ $m -le 80 ]] && ok "$m of 4000 users changed segment (-n $np)" || bad "$m of 4000 users changed segment"

  # A previous file relabelled by a permutation: the new ids follow it.
  /usr/bin/python3 - "$O/s1.h5" "$O/perm.h5" <<'PY' || bad "could not write the permuted file (h5py)"
import shutil, sys, h5py, numpy as np
src, dst = sys.argv[1:]
shutil.copy(src, dst)
perm = np.array([3, 5, 0, 1, 4, 2])
with h5py.File(dst, "r+") as f:
    f["/labels"][...] = perm[f["/labels"][...]]
    c = f["/centroids"][...]; s = f["/sizes"][...]
    c2 = np.empty_like(c); s2 = np.empty_like(s)
    c2[perm] = c; s2[perm] = s
    f["/centroids"][...] = c2; f["/sizes"][...] = s2
PY
  step "permuted previous file (-n $np)" $np cluster --projection "$D/h1.h5" --k 6 \
    --previous "$O/perm.h5" --out "$O/s3.h5"
  awk -F, 'BEGIN { split("3 5 0 1 4 2", p, " ") } FNR == 1 { f++; next } f == 1 { a[$1] = $2; next }
    { n++; if ($2 != p[a[$1] + 1]) bad++ } END { exit bad > 0 || n != 4000 }' "$O/s1.csv" "$O/s3.csv" &&
    ok "ids follow the permutation (-n $np)" || bad "ids do not follow the permutation (-n $np)"

  # Bad previous files: one line naming the file, nothing written.
  expect_fail "--previous missing" $np 3 "--previous '.*nope.h5': no such file" \
    cluster --projection "$D/h1.h5" --k 6 --previous "$D/nope.h5" --out "$WORK/o/s.h5"
  expect_fail "--previous in other dims" $np 3 "--previous '.*s1.h5': its centroids have 16 dims, the projection 8" \
    cluster --projection "$D/h1_8.h5" --k 6 --previous "$O/s1.h5" --out "$WORK/o/s.h5"
  expect_fail "--previous not a segments file" $np 3 "--previous: '.*ds1.h5' is a segrec-dataset file, expected segrec-segments" \
    cluster --projection "$D/h1.h5" --k 6 --previous "$D/ds1.h5" --out "$WORK/o/s.h5"
  expect_fail "--previous and a centroid file" $np 2 "for --init: a centroid file cannot be combined with --previous" \
    cluster --projection "$D/h1.h5" --k 6 --init "$O/s1.h5" --previous "$O/s1.h5" --out "$WORK/o/s.h5"
done
for f in s1.csv s2.csv s3.csv s2.json s2.md; do  # the reports name their previous file
  # (the report JSON's timings_s line is wall time)
  cmp -s <(sed 's#/np1/#/npN/#g; /"timings_s"/d' "$WORK/np1/$f") <(sed 's#/np3/#/npN/#g; /"timings_s"/d' "$WORK/np3/$f") &&
    ok "$f identical at 1 and 3 ranks" || bad "$f differs at 1 and 3 ranks"
done

# segrec run: the second run on refreshed events starts from OUT/segments.h5 by itself.
R="$WORK/run"
for np in 1 3; do
  rm -rf "$R"
  step "run (-n $np)" $np run --events "$D/ev1.csv" --k 6 --dims 16 --until cluster --out "$R"
  ! grep -q -- '--previous' "$WORK/out" && ok "first run: no previous (-n $np)" || bad "first run used --previous"
  cp "$R/segments.csv" "$WORK/run1.csv"
  step "run, unchanged (-n $np)" $np run --events "$D/ev1.csv" --k 6 --dims 16 --until cluster --out "$R"
  grep -q '== cluster: up to date, skipped' "$WORK/out" && ok "unchanged run: cluster skipped (-n $np)" ||
    bad "unchanged run: $(grep '^== \|previous' "$WORK/out" | tr '\n' ';')"
  step "run, refreshed events (-n $np)" $np run --events "$D/ev2.csv" --k 6 --dims 16 --until cluster --out "$R"
  grep -q -- "--previous $R/segments.h5: segment ids follow the earlier run" "$WORK/out" &&
    ok "refreshed run: --previous given by itself (-n $np)" || bad "refreshed run: $(grep -A1 '== cluster' "$WORK/out")"
  [[ $(most_overlap "$WORK/run1.csv" "$R/segments.csv" | awk '$1 != $2' | wc -l) -eq 0 ]] &&
    ok "refreshed run: every id kept (-n $np)" ||
    bad "refreshed run: $(most_overlap "$WORK/run1.csv" "$R/segments.csv" | tr '\n' ';')"
  step "run --force (-n $np)" $np run --events "$D/ev2.csv" --k 6 --dims 16 --until cluster --out "$R" --force
  cp "$R/segments.csv" "$WORK/run2.csv"
  step "run --force again (-n $np)" $np run --events "$D/ev2.csv" --k 6 --dims 16 --until cluster --out "$R" --force
  cmp -s "$WORK/run2.csv" "$R/segments.csv" && ok "forced rerun: same ids (-n $np)" || bad "forced rerun moved users"
done
finish
