#!/usr/bin/python3
"""The peer of `segrec project`: scikit-learn TruncatedSVD(algorithm='randomized') on the
same [sparse | dense] profile matrix that segrec reads from profiles.h5.

usage: sklearn_peer.py PROFILES.h5 DIMS N_ITER [--repeat R] [--check PROJECTION.h5]
Prints "sklearn fit_transform seconds S" (best of R runs) and, with --check, the leading
singular values next to segrec's (TruncatedSVD does not centre, so they differ slightly).
"""
import os
import sys

sys.path.insert(0, os.environ.get("SEGREC_ANCHORS", "/work/shared/anchors"))
import _fairblas  # noqa: F401  (re-executes with the fastest OpenBLAS kernels)

import time

import h5py
import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from threadpoolctl import threadpool_info


def load(path):
    with h5py.File(path, "r") as f:
        n, ni = int(f.attrs["n_users"]), int(f.attrs["n_items"])
        S = sp.csr_matrix((f["sparse/values"][:], f["sparse/indices"][:], f["sparse/indptr"][:]),
                          shape=(n, ni))
        F = sp.csr_matrix(f["dense/values"][:])
    return sp.hstack([S, F], format="csr", dtype=np.float32)


def main():
    path, dims, n_iter = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    X = load(path)
    blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}"
                     for i in threadpool_info())
    print(f"sklearn matrix {X.shape[0]} x {X.shape[1]}, nnz {X.nnz}, {X.dtype}; blas: {blas}")
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    best = float("inf")
    for _ in range(repeat):
        svd = TruncatedSVD(n_components=dims, algorithm="randomized", n_iter=n_iter,
                           random_state=0)
        t = time.perf_counter()
        svd.fit_transform(X)
        best = min(best, time.perf_counter() - t)
    print(f"sklearn fit_transform seconds {best:.3f}")
    if "--check" in sys.argv:
        with h5py.File(sys.argv[sys.argv.index("--check") + 1], "r") as f:
            s = f["singular_values"][:]
        # TruncatedSVD does not centre: compare with segrec's centred values loosely.
        print("segrec singular values (centred):  ", np.array2string(s[:5], precision=4))
        print("sklearn singular values (uncentred):", np.array2string(svd.singular_values_[:5], precision=4))


if __name__ == "__main__":
    main()
