#!/usr/bin/python3
"""Independent check of segrec's quality figures: top-100 recommendations from a model.h5
(no segment heads or embedding) for the users of a fold-in CSV, written as the
recommendations CSV that topn_quality.py scores. Forward pass in numpy (float64).
Usage: recs_from_model.py MODEL.h5 FOLDIN.csv OUT.csv
"""
import csv, sys
import h5py
import numpy as np

model, foldin, out = sys.argv[1:4]
with h5py.File(model, "r") as f:
    items = [s.decode() if isinstance(s, bytes) else s for s in f["/items/ids"][:]]
    g = f["/mlp"]
    n_layers = int(g.attrs["n_layers"])
    act = g.attrs["activation"]
    act = act.decode() if isinstance(act, bytes) else act
    hw = g.attrs["history_weight"]
    hw = hw.decode() if isinstance(hw, bytes) else hw
    if int(g.attrs["dense_in"]) or int(g.attrs["embed_dim"]) or "heads" in g:
        sys.exit("recs_from_model.py: only history-input models without segments")
    W = [np.asarray(g[f"W{l}"], np.float64) for l in range(n_layers)]
    b = [np.asarray(g[f"b{l}"], np.float64) for l in range(n_layers)]
ix = {i: j for j, i in enumerate(items)}
hist = {}
for row in csv.DictReader(open(foldin)):
    if row["item_id"] in ix:
        v = float(row.get("value") or 1.0)
        hist.setdefault(row["user_id"], {})[ix[row["item_id"]]] = v
with open(out, "w") as o:
    o.write("user_id,rank,item_id\n")
    for u, h in hist.items():
        x = np.zeros(len(items))
        for j, v in h.items():
            x[j] = 1.0 if hw == "binary" else np.log1p(max(v, 0.0))
        x /= max(np.linalg.norm(x), 1e-300)
        a = x
        for l in range(n_layers):
            a = a @ W[l] + b[l]
            if l + 1 < n_layers:
                a = np.tanh(a) if act == "tanh" else np.maximum(a, 0)
        a[list(h)] = -np.inf
        for r, j in enumerate(np.argsort(-a, kind="stable")[:100]):
            o.write(f"{u},{r + 1},{items[j]}\n")
