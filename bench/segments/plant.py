#!/usr/bin/env python3
"""Independent planted-log generator: users differ in taste, in behaviour/value, or both.

plant.py --users N --segments K --structure taste|behaviour|both --out DIR [--seed S]
Writes DIR/events.csv (user_id,item_id,event,timestamp,value,price), DIR/truth.csv,
DIR/items.csv (item_id,category,name,price).
"""
import argparse, os
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--users", type=int, default=20000)
ap.add_argument("--items", type=int, default=3000)
ap.add_argument("--categories", type=int, default=24)
ap.add_argument("--segments", type=int, default=8)
ap.add_argument("--structure", default="both")
ap.add_argument("--events", type=float, default=30)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--out", required=True)
a = ap.parse_args()
rng = np.random.default_rng(a.seed)
os.makedirs(a.out, exist_ok=True)
C, I, K = a.categories, a.items, a.segments
cat_of = np.arange(I) % C
cat_base = np.exp(rng.uniform(np.log(3), np.log(300), C))
price = np.round(cat_base[cat_of] * np.exp(rng.normal(0, 0.4, I)), 2)
pop = 1.0 / (1 + rng.permutation(I)) ** 0.0  # flat within category, ranked below
rank_in_cat = np.zeros(I)
for c in range(C):
    idx = np.where(cat_of == c)[0]
    rank_in_cat[idx] = rng.permutation(len(idx)) + 1
pop = rank_in_cat ** -1.0
glob_cat = rng.dirichlet(np.ones(C) * 2)
# Segment taste: 3 preferred categories each.
seg_cats = [rng.choice(C, 3, replace=False) for _ in range(K)]
# Segment behaviour: a distinct code on a grid of (activity, funnel, price, recency) levels.
codes = rng.permutation(3 * 2 * 2 * 2)[:K] if K <= 24 else rng.integers(0, 24, K)
def levels(code):
    act = [0.4, 1.0, 2.6][code % 3]; code //= 3
    fun = [0.5, 2.2][code % 2]; code //= 2
    pr = [-1.0, 1.0][code % 2]; code //= 2
    rec = [0.45, 1.0][code % 2]
    return act, fun, pr, rec
seg_beh = [levels(int(c)) for c in codes]
days, t0 = 120.0, 1_700_000_000
rows, truth = [], []
logp = np.log(price)
zp = (logp - logp.mean()) / logp.std()
for u in range(a.users):
    s = int(rng.integers(K))
    truth.append(s)
    taste = a.structure in ("taste", "both")
    beh = a.structure in ("behaviour", "both")
    if beh:
        act, fun, pr, rec = seg_beh[s]
        act *= np.exp(rng.normal(0, 0.3)); fun *= np.exp(rng.normal(0, 0.2))
        pr += rng.normal(0, 0.25); rec = min(1.0, rec * np.exp(rng.normal(0, 0.1)))
    else:
        act = np.exp(rng.normal(0, 0.7)); fun = np.exp(rng.uniform(np.log(0.5), np.log(2.2)))
        pr = rng.uniform(-1, 1); rec = rng.uniform(0.45, 1.0)
    if taste:
        w = np.full(C, 0.15 / C); w[seg_cats[s]] += 0.85 / 3
    else:
        w = glob_cat
    n_views = max(1, int(rng.poisson(a.events * act)))
    cats = rng.choice(C, n_views, p=w / w.sum())
    end = days * rec
    ts = np.sort(rng.uniform(0, end, n_views)) * 86400 + t0
    for c, t in zip(cats, ts):
        idx = np.where(cat_of == c)[0]
        pw = pop[idx] * np.exp(pr * zp[idx])
        i = int(idx[rng.choice(len(idx), p=pw / pw.sum())])
        rows.append((u, i, "view", int(t), int(rng.integers(5, 300))))
        if rng.random() < 0.1 * fun:
            rows.append((u, i, "cart", int(t) + 30, 1))
            if rng.random() < min(0.95, 0.3 * fun):
                rows.append((u, i, "purchase", int(t) + 60, int(rng.integers(1, 4))))
with open(os.path.join(a.out, "events.csv"), "w") as f:
    f.write("user_id,item_id,event,timestamp,value,price\n")
    for u, i, e, t, v in rows:
        f.write(f"u{u:07d},i{i:06d},{e},{t},{v},{price[i]:.2f}\n")
with open(os.path.join(a.out, "truth.csv"), "w") as f:
    f.write("user_id,segment\n")
    for u, s in enumerate(truth):
        f.write(f"u{u:07d},{s}\n")
with open(os.path.join(a.out, "items.csv"), "w") as f:
    f.write("item_id,category,name,price\n")
    for i in range(I):
        f.write(f"i{i:06d},c{cat_of[i]:02d},Item {i},{price[i]:.2f}\n")
print(len(rows), "events")
