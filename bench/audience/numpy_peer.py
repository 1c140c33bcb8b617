#!/usr/bin/python3
"""The peer of `segrec audience`: the same network in numpy/scipy on one process.

usage: numpy_peer.py MODEL.h5 DATASET.h5 ITEMS(comma-separated) TOP OUT.csv
Reads model.h5 (history input only) and dataset.h5 with h5py, scores every user on the
requested items (sparse history x W0, hidden layers, then the selected output columns),
leaves out users who hold the item and keeps the TOP best per item (ties: smaller user
index). Prints "peer load seconds S", "peer score seconds S" and writes the audience CSV
(item_id,rank,user_id,score) for comparison.
"""
import os
import sys

sys.path.insert(0, os.environ.get("SEGREC_ANCHORS", "/work/shared/anchors"))
import _fairblas  # noqa: F401  (re-executes with the fastest OpenBLAS kernels)

import time

import h5py
import numpy as np
import scipy.sparse as sp


def main():
    model_path, data_path, items_arg, top, out = sys.argv[1:6]
    top = int(top)
    t0 = time.perf_counter()
    with h5py.File(model_path, "r") as f:
        a = f["mlp"].attrs
        text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        if text(a["input"]) != "history":
            sys.exit("the peer reads history-input models only")
        act, hw = text(a["activation"]), text(a["history_weight"])
        L = len([k for k in f["mlp"].keys() if k.startswith("W")])
        W = [f["mlp"][f"W{l}"][:] for l in range(L)]
        b = [f["mlp"][f"b{l}"][:] for l in range(L)]
        item_ids = [s.decode() for s in f["items/ids"][:]]
    with h5py.File(data_path, "r") as f:
        g = f["interactions"]
        indptr, indices, weights = g["indptr"][:], g["indices"][:], g["weights"][:]
        user_ids = f["users/ids"][:]
    n = len(indptr) - 1
    t1 = time.perf_counter()

    index = {s: i for i, s in enumerate(item_ids)}
    names = items_arg.split(",")
    sel = np.array([index[s] for s in names])
    vals = np.log1p(np.maximum(weights, 0)) if hw == "log" else np.ones_like(weights)
    X = sp.csr_matrix((vals.astype(np.float32), indices, indptr), shape=(n, len(item_ids)))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-30), 0).astype(np.float32)) @ X
    H = X @ W[0] + b[0]
    for l in range(1, L):
        H = np.maximum(H, 0) if act == "relu" else np.tanh(H)
        Wl, bl = (W[l][:, sel], b[l][sel]) if l == L - 1 else (W[l], b[l])
        H = H @ Wl + bl
    if L == 1:
        H = H[:, sel]
    Z = np.asarray(H, dtype=np.float32)  # n x len(sel)
    owned = X[:, sel].toarray() != 0
    Z[owned] = -np.inf
    best = []
    for c in range(len(sel)):
        z = Z[:, c]
        k = min(top, int(np.isfinite(z).sum()))
        cand = np.argpartition(-z, k - 1)[:k] if k < n else np.arange(n)
        cand = cand[np.lexsort((cand, -z[cand]))][:k]
        best.append(cand)
    t2 = time.perf_counter()
    print(f"peer load seconds {t1 - t0:.3f}")
    print(f"peer score seconds {t2 - t1:.3f}")
    with open(out, "w") as o:
        o.write("item_id,rank,user_id,score\n")
        for c, cand in enumerate(best):
            for r, u in enumerate(cand):
                o.write(f"{names[c]},{r + 1},{user_ids[u].decode()},{Z[u, c]:.6g}\n")


if __name__ == "__main__":
    main()
