#!/usr/bin/env bash
# segrec similar: the same CSV at -n 1..4 for every metric, --query-users answers as the full run,
# --pseudonymize looks raw ids up, and bad inputs give one error line and leave no file.
source "$(dirname "$0")/lib.sh"

KEY=0123456789abcdef0123
seg 1 generate --users 500 --items 120 --seed 5 --events "$WORK/ev.csv" &&
  seg 1 ingest --events "$WORK/ev.csv" --out "$WORK/d.h5" &&
  seg 1 profile --data "$WORK/d.h5" --out "$WORK/p.h5" &&
  seg 1 project --profiles "$WORK/p.h5" --dims 8 --out "$WORK/proj.h5" &&
  seg 1 ingest --events "$WORK/ev.csv" --pseudonymize "$KEY" --out "$WORK/dk.h5" &&
  seg 1 profile --data "$WORK/dk.h5" --out "$WORK/pk.h5" &&
  seg 1 project --profiles "$WORK/pk.h5" --dims 8 --out "$WORK/projk.h5" ||
  { bad "pipeline: $(cat "$WORK/err")"; finish; exit; }
P="$WORK/proj.h5"
seg 1 similar --projection "$P" --top 5 --out "$WORK/s_ip_1.csv" || bad "similar: $(cat "$WORK/err")"
USERS=$(($(wc -l <"$WORK/s_ip_1.csv") / 5))
grep -q "of $USERS users among $USERS" "$WORK/out" && ok "summary: $(cat "$WORK/out")" ||
  bad "summary: $(cat "$WORK/out")"
head -1 "$WORK/s_ip_1.csv" | grep -qx 'user_id,rank,neighbour_id,score' && ok "header" || bad "header"
awk -F, 'NR > 1 && $1 == $3' "$WORK/s_ip_1.csv" | grep -q . && bad "a user is its own neighbour" ||
  ok "self excluded"

# ip at 1..4 ranks; l2 and cosine at 1 and 3 (uneven blocks).
for metric in ip l2 cosine; do
  nps="2 3 4"
  [[ $metric != ip ]] && nps="1 3"
  for np in $nps; do
    seg "$np" similar --projection "$P" --top 5 --metric "$metric" --tile-rows 17 --tile-cols 40 \
      --out "$WORK/s_${metric}_$np.csv" || bad "similar $metric -n $np: $(cat "$WORK/err")"
  done
  for np in $nps; do
    [[ $np == 1 ]] && continue
    cmp -s "$WORK/s_${metric}_1.csv" "$WORK/s_${metric}_$np.csv" && ok "$metric identical at -n $np" ||
      bad "$metric differs at -n $np: $(diff "$WORK/s_${metric}_1.csv" "$WORK/s_${metric}_$np.csv" | head -4)"
  done
done
# l2 scores ascend, ip and cosine scores descend, within each user.
awk -F, 'NR > 2 && $1 == u && $4 + 0 < s + 0 { bad = 1 } { u = $1; s = $4 } END { exit bad }' \
  "$WORK/s_l2_1.csv" && ok "l2 distances ascend" || bad "l2 distances do not ascend"
awk -F, 'NR > 2 && $1 == u && $4 + 0 > s + 0 { bad = 1 } { u = $1; s = $4 } END { exit bad }' \
  "$WORK/s_cosine_1.csv" && ok "cosine scores descend" || bad "cosine scores do not descend"

# --query-users: the same lines as the full run, from a list and from a file.
U1=$(sed -n 2p "$WORK/s_ip_1.csv" | cut -d, -f1)
U2=$(sed -n '$p' "$WORK/s_ip_1.csv" | cut -d, -f1)
seg 3 similar --projection "$P" --top 5 --query-users "$U2,$U1,$U1" --out "$WORK/sub.csv" &&
  diff <(grep -E "^($U1|$U2)," "$WORK/s_ip_1.csv") <(tail -n +2 "$WORK/sub.csv") >/dev/null &&
  ok "--query-users list (-n 3)" || bad "--query-users list: $(cat "$WORK/err")"
printf '# lookalikes of\n%s\n\n%s\n' "$U1" "$U2" >"$WORK/users.txt"
seg 2 similar --projection "$P" --top 5 --query-users "$WORK/users.txt" --out "$WORK/subf.csv" &&
  cmp -s "$WORK/sub.csv" "$WORK/subf.csv" && ok "--query-users file (-n 2)" || bad "--query-users file: $(cat "$WORK/err")"

# --pseudonymize: raw ids in, pseudonyms out.
RAW=$(sed -n 2p "$WORK/ev.csv" | cut -d, -f1)
seg 2 similar --projection "$WORK/projk.h5" --top 3 --query-users "$RAW" --pseudonymize "$KEY" \
  --out "$WORK/pk.csv" && [[ $(tail -n +2 "$WORK/pk.csv" | grep -cE '^[0-9a-f]{32},[1-3],[0-9a-f]{32},') -eq 3 ]] &&
  ok "--pseudonymize looks up a raw id" || bad "--pseudonymize: $(cat "$WORK/err") $(cat "$WORK/pk.csv")"

# Bad inputs: one error line, no file left.
O="$WORK/o/s.csv"
printf '%s\nnobody-here\n' "$U1" >"$WORK/badusers.txt"
expect_fail "top 0" 2 2 "--top: must be >= 1" similar --projection "$P" --top 0 --out "$O"
expect_fail "top = users" 3 2 "below the number of users \\($USERS" similar --projection "$P" \
  --top "$USERS" --out "$O"
expect_fail "unknown user" 2 2 "--query-users: no user 'nobody-here'" similar --projection "$P" \
  --query-users "$U1,nobody-here" --out "$O"
expect_fail "unknown user in a file" 3 2 "badusers.txt' line 2: no user 'nobody-here'" similar \
  --projection "$P" --query-users "$WORK/badusers.txt" --out "$O"
expect_fail "raw id without the key" 2 2 "no user '$RAW'" similar --projection "$WORK/projk.h5" \
  --query-users "$RAW" --out "$O"
expect_fail "metric" 2 2 "--metric: must be ip, l2 or cosine" similar --projection "$P" \
  --metric dot --out "$O"
expect_fail "missing projection" 2 3 "nosuch.h5" similar --projection "$WORK/nosuch.h5" --out "$O"
expect_fail "a dataset as projection" 2 3 "d.h5" similar --projection "$WORK/d.h5" --out "$O"
# A pipeline INI (generate's `users` and `items` counts) drives similar without tripping it.
printf 'users = 3000\nitems = 400\n' >"$WORK/pipe.ini"
seg 2 similar --config "$WORK/pipe.ini" --projection "$P" --top 3 --out "$WORK/ini.csv" &&
  ok "a pipeline INI is taken" || bad "pipeline INI: $(cat "$WORK/err")"
finish
