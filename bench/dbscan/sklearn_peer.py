#!/usr/bin/python3
"""The peer of `segrec cluster --algorithm dbscan`: scikit-learn DBSCAN(eps, min_samples,
n_jobs) fit on the same /H that segrec reads from projection.h5.

usage: sklearn_peer.py PROJECTION.h5 EPS MIN_SAMPLES [--jobs 2] [--repeat R]
                       [--check SEGMENTS.h5] [--truth truth.npy]
Prints "sklearn fit seconds S" (best of R runs) and, with --check, whether segrec's labels
agree: ARI, identical core sets, identical noise sets, and the ARI of both to the truth.
"""
import os
import sys

sys.path.insert(0, os.environ.get("SEGREC_ANCHORS", "/work/shared/anchors"))
import _fairblas  # noqa: F401  (re-executes with the fastest OpenBLAS kernels)

import time

import h5py
import numpy as np
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    path, eps, ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    jobs, repeat = int(arg("--jobs", "2")), int(arg("--repeat", "1"))
    with h5py.File(path, "r") as f:
        X = f["H"][:]
    print(f"sklearn DBSCAN(eps={eps}, min_samples={ms}, n_jobs={jobs}) on {X.shape[0]} x "
          f"{X.shape[1]} {X.dtype}")
    best, cpu, model = float("inf"), float("inf"), None
    for _ in range(repeat):
        m = DBSCAN(eps=eps, min_samples=ms, n_jobs=jobs)
        t, c = time.perf_counter(), time.process_time()
        m.fit(X)
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
        model = m
    print(f"sklearn fit seconds {best:.3f}")
    print(f"sklearn fit cpu seconds {cpu:.3f} (all threads)")
    sk = model.labels_
    core = np.zeros(len(sk), dtype=bool)
    core[model.core_sample_indices_] = True
    print(f"sklearn: {sk.max() + 1} clusters, {core.sum()} core, {(sk == -1).sum()} noise")
    check = arg("--check", None)
    if check:
        with h5py.File(check, "r") as f:
            sg = f["labels"][:]
            sc = f["core"][:].astype(bool)
        same_core = bool(np.array_equal(core, sc))
        same_noise = bool(np.array_equal(sk == -1, sg == -1))
        # Border users two clusters can claim may differ (scikit-learn: first found).
        border_diff = int(((sk != sg) & ~core).sum())
        print(f"agreement: ARI {adjusted_rand_score(sk, sg):.6f}, identical core sets "
              f"{same_core}, identical noise sets {same_noise}, core users in the same clusters "
              f"ARI {adjusted_rand_score(sk[core], sg[core]):.6f}, border users labelled "
              f"differently {border_diff}")
        truth = arg("--truth", None)
        if truth:
            t = np.load(truth)
            print(f"against the planted truth: segrec ARI {adjusted_rand_score(t, sg):.4f}, "
                  f"sklearn ARI {adjusted_rand_score(t, sk):.4f}")


if __name__ == "__main__":
    main()
