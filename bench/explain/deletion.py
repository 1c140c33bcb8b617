"""Deletion test of `segrec recommend --explain` (see run.sh).

  deletion.py make TRAIN FOLDIN EXPLAIN.csv REDUCED.tsv
      For each user's top-1 item: three reduced histories (user ids USER~named, ~random,
      ~cooc) in u.data format: without the items the explanation names (up to 3), without as
      many random history items, without as many items of the co-occurrence heuristic.
  deletion.py score FOLDIN EXPLAIN.csv REDUCED.csv
      The top-1 item's rank in each reduced list, among the items outside the full history
      (rank 1 = it stays first), and the comparison: strictly by rank, and by rank with
      ties broken by the item's margin (its score minus the best other candidate's; a
      lower margin = it fell further).
Files in u.data format: user TAB item TAB rating TAB timestamp.
"""
import csv, random, re, statistics as st, sys
from collections import defaultdict

NAMED = 3


def histories(path):
    h = defaultdict(list)
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 2 and f[1] not in h[f[0]]:
            h[f[0]].append(f[1])
    return h


def top1(explain):
    """user -> (item, named items) for the rank-1 rows of the explained CSV."""
    out = {}
    for row in csv.DictReader(open(explain)):
        if row["rank"] != "1" or row["source"] != "model":
            continue
        reason = row["reason"]
        named = re.findall(r"without (\S+) it would be", reason)
        also = re.search(r"also raised by ([^;]*)", reason)
        if also:
            named += re.findall(r"(\S+) \(-?[0-9.e+-]+\)", also.group(1))
        out[row["user_id"]] = (row["item_id"], named[:NAMED])
    return out


def make(train, foldin, explain, reduced):
    users_of = defaultdict(set)
    for u, items in histories(train).items():
        for i in items:
            users_of[i].add(u)
    hist = histories(foldin)
    rows = open(foldin).read().splitlines()
    by_user = defaultdict(list)
    for line in rows:
        by_user[line.split("\t")[0]].append(line)
    with open(reduced, "w") as out:
        for u, (item, named) in sorted(top1(explain).items()):
            n = len(named)
            rnd = random.Random(f"{u}:{item}").sample(hist[u], n)
            # Co-occurrence heuristic: history items most often held with the item in training.
            together = users_of.get(item, set())
            cooc = sorted(hist[u], key=lambda h: (-len(users_of.get(h, set()) & together), h))[:n]
            for kind, drop in (("named", named), ("random", rnd), ("cooc", cooc)):
                for line in by_user[u]:
                    f = line.split("\t")
                    if f[1] not in drop:
                        out.write("\t".join([f"{u}~{kind}"] + f[1:]) + "\n")


def score(foldin, explain, reduced):
    hist = histories(foldin)
    first = top1(explain)
    lists = defaultdict(list)
    for row in csv.DictReader(open(reduced)):
        lists[row["user_id"]].append((row["item_id"], float(row["score"])))
    ranks = {k: [] for k in ("named", "random", "cooc")}
    margins = {k: [] for k in ranks}
    users = []
    for u, (item, named) in sorted(first.items()):
        if not named:
            continue
        full = set(hist[u])
        for k in ranks:
            cand = [(i, z) for i, z in lists[f"{u}~{k}"] if i not in full]
            ids = [i for i, _ in cand]
            at = ids.index(item)
            ranks[k].append(at + 1)
            margins[k].append(cand[at][1] - max(z for i, z in cand if i != item))
        users.append(u)
    n = len(users)
    nr, rr, cr = ranks["named"], ranks["random"], ranks["cooc"]
    print(f"deletion test: {n} held-out users ({len(first) - n} with no item named left out), "
          f"top-1 item, {NAMED} history items removed")
    print(f"{'removed':>24s} {'mean rank':>10s} {'median':>7s} {'mean margin':>12s}")
    for k, label in (("named", "named by --explain"), ("random", "random"),
                     ("cooc", "co-occurrence heuristic")):
        print(f"{label:>24s} {st.mean(ranks[k]):10.1f} {st.median(ranks[k]):7.1f} "
              f"{st.mean(margins[k]):12.3f}")
    further = sum(a > b for a, b in zip(nr, rr))
    ties = sum(a == b for a, b in zip(nr, rr))
    nm, rm = margins["named"], margins["random"]
    further_m = sum((a, -x) > (b, -y) for a, b, x, y in zip(nr, rr, nm, rm))
    beat_cooc = sum(a > b for a, b in zip(nr, cr))
    print(f"named moves it further than random for {further}/{n} users "
          f"({100 * further / n:.1f}%; ties {ties})")
    print(f"with rank ties broken by the margin: further than random for {further_m}/{n} users "
          f"({100 * further_m / n:.1f}%)")
    print(f"named moves it further than the heuristic for {beat_cooc}/{n} users; "
          f"mean rank {st.mean(nr):.1f} vs {st.mean(cr):.1f}")
    beyond = st.mean(nr) > st.mean(cr)
    print("targets: >= 90% beyond random by rank:", "met" if further >= 0.9 * n else "NOT met",
          "| by rank, then margin:", "met" if further_m >= 0.9 * n else "NOT met",
          "| beyond the heuristic on average:", "met" if beyond else "NOT met")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"make": make, "score": score}[cmd](*args)
