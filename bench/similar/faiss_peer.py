#!/usr/bin/python3
"""The peer of `segrec similar`: faiss IndexFlatIP / IndexFlatL2 (exact) on the same /H,
every user searched against every user, k + 1 results with the user itself dropped.

usage: faiss_peer.py PROJECTION.h5 K METRIC(ip|l2) THREADS [--check SEGREC.csv] [--repeat R]
Prints "search seconds S" and "search CPU seconds C" (all threads; best of R) and, with --check, the recall of segrec's
neighbours against faiss's (ids "u<row>" as written by make_vectors.py).
"""
import os
import sys

sys.path.insert(0, os.environ.get("SEGREC_ANCHORS", "/work/shared/anchors"))
import _fairblas  # noqa: F401  (re-executes with the fastest OpenBLAS kernels)

import time

import faiss
import h5py
import numpy as np


def main():
    path, k, metric, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    faiss.omp_set_num_threads(threads)
    with h5py.File(path, "r") as f:
        X = np.ascontiguousarray(f["/H"][:], dtype=np.float32)
    n, d = X.shape
    best = best_cpu = float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        index = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
        index.add(X)
        D, I = index.search(X, k + 1)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    print(f"faiss {faiss.__version__} {type(index).__name__} {n} x {d}, k {k} + 1, "
          f"{threads} threads: search seconds {best:.3f}, search CPU seconds {best_cpu:.2f}")
    # Drop the user itself (or, where it is not in the list, the last neighbour).
    rows = np.arange(n)[:, None]
    self_at = I == rows
    drop = np.where(self_at.any(axis=1), self_at.argmax(axis=1), k)
    keep = np.ones_like(I, dtype=bool)
    keep[np.arange(n), drop] = False
    N = I[keep].reshape(n, k)
    if "--check" in sys.argv:
        got = np.full((n, k), -1, dtype=np.int64)
        with open(sys.argv[sys.argv.index("--check") + 1]) as f:
            next(f)
            for line in f:
                u, r, v, _ = line.split(",")
                got[int(u[1:]), int(r) - 1] = int(v[1:])
        hits = sum(len(np.intersect1d(got[i], N[i])) for i in range(n))
        same = int((got == N).all(axis=1).sum())
        print(f"recall of segrec against faiss: {hits / (n * k):.6f} "
              f"({same} of {n} users with the same list in the same order)")


if __name__ == "__main__":
    main()
