"""EASE in numpy (Steck 2019), the peer of `segrec train --model-kind ease`.

Reads a split written by /work/shared/anchors/topn_quality.py (train.csv, foldin.csv,
test.csv), fits B on the training users with one lambda, as the reference EASE does:
  G = X^T X (X binary, sparse), P = inv(G + lambda I), B = -P / diag(P), diag(B) = 0
and scores the fold-in users (history excluded, top 100) with topn_quality.py's metrics.
Prints one JSON line: fit seconds (best of --repeat; Gram + inverse + B), NDCG@100, ...
  ease_peer.py SPLITDIR LAMBDA [--repeat R] [--dtype float64|float32]
"""
import os, sys, csv, json, time, argparse

sys.path.insert(0, os.environ.get("ANCHORS", "/work/shared/anchors"))
import _fairblas  # noqa: F401  (OpenBLAS at its best kernel; re-executes once if needed)
import numpy as np
import scipy.sparse as sp
from topn_quality import metrics, read_events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split")
    ap.add_argument("l2", type=float)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", default="float64")
    a = ap.parse_args()
    tr = read_events(os.path.join(a.split, "train.csv"))
    fi = read_events(os.path.join(a.split, "foldin.csv"))
    te = read_events(os.path.join(a.split, "test.csv"))
    items = sorted({i for s in tr.values() for i in s})
    ix = {i: j for j, i in enumerate(items)}
    rows, cols = [], []
    for r, u in enumerate(sorted(tr)):
        for i in tr[u]:
            rows.append(r)
            cols.append(ix[i])
    dt = np.dtype(a.dtype)
    X = sp.csr_matrix((np.ones(len(rows), dtype=dt), (rows, cols)), shape=(len(tr), len(items)))
    n = len(items)
    best = None
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        c0 = time.process_time()
        G = (X.T @ X).toarray()
        G[np.diag_indices(n)] += a.l2
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))
        np.fill_diagonal(B, 0.0)
        t = time.perf_counter() - t0
        cpu = time.process_time() - c0
        if best is None or t < best[0]:
            best = (t, cpu)
    recs = {}
    for u, s in fi.items():
        x = np.zeros(n, dtype=dt)
        for i in s:
            if i in ix:
                x[ix[i]] = 1
        sc = x @ B
        sc[x > 0] = -np.inf
        recs[u] = [items[j] for j in np.argsort(-sc, kind="stable")[:100]]
    m = metrics(recs, te)
    print(json.dumps({"items": n, "train_users": len(tr), "lambda": a.l2, "dtype": a.dtype,
                      "fit_s": round(best[0], 4), "fit_cpu_s": round(best[1], 4),
                      "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
                      "ndcg@100": m["ndcg@100"], "recall@20": m["recall@20"]}))


if __name__ == "__main__":
    main()
