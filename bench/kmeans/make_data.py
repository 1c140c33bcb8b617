#!/usr/bin/python3
"""Writes the K-means benchmark inputs: a projection.h5 that `segrec cluster` reads
(/H = n x d standard normal float32, the same matrix kmeans_peers.py draws for --seed),
and the initial centroids (the first k rows) as .npy for the peers and .csv for segrec.
With --blobs B > 0 the rows are instead a mixture of B spherical Gaussians (unit variance,
centres standard normal times --spread, seed S + 1), i.e. data with cluster structure.
Usage: make_data.py --n N --d D --k K --seed S --out DIR [--blobs B --spread 3]
"""
import argparse, os
import numpy as np
import h5py

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, required=True); ap.add_argument("--d", type=int, default=64)
ap.add_argument("--k", type=int, required=True); ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", required=True)
ap.add_argument("--blobs", type=int, default=0); ap.add_argument("--spread", type=float, default=3.0)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
X = np.random.default_rng(a.seed).standard_normal((a.n, a.d)).astype(np.float32)
if a.blobs > 0:
    g = np.random.default_rng(a.seed + 1)
    centres = (g.standard_normal((a.blobs, a.d)) * a.spread).astype(np.float32)
    X += centres[g.integers(0, a.blobs, a.n)]
with h5py.File(os.path.join(a.out, "projection.h5"), "w") as f:
    f.attrs["format"] = np.bytes_("segrec-projection")
    f.attrs["format_version"] = np.int64(1)
    f.attrs["method"] = np.bytes_("random")
    f.attrs["dims"] = np.int64(a.d)
    f.create_dataset("H", data=X)
    width = len(str(a.n))
    f.create_dataset("users/ids", data=np.array([f"u{i:0{width}d}".encode() for i in range(a.n)],
                                                dtype=f"S{width + 1}"))
C0 = X[:a.k].copy()
np.save(os.path.join(a.out, "init.npy"), C0)
np.savetxt(os.path.join(a.out, "init.csv"), C0, fmt="%.9g", delimiter=",")
