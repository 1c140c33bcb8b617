#!/usr/bin/python3
"""Writes the DBSCAN benchmark input: a projection.h5 as `segrec project` writes it
(/H = n x d float32, /users/ids), holding B spherical Gaussian blobs (unit variance,
centres uniform in [-C, C]^d) and a share of uniform noise in the box [-C-3, C+3]^d,
shuffled; the planted truth (blob index, -1 noise) goes to truth.npy.
Usage: make_data.py --n N --d D --blobs B --noise 0.1 --box C --seed S --out DIR
"""
import argparse, os
import numpy as np
import h5py

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=100000); ap.add_argument("--d", type=int, default=16)
ap.add_argument("--blobs", type=int, default=10); ap.add_argument("--noise", type=float, default=0.1)
ap.add_argument("--box", type=float, default=10.0); ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", required=True)
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
g = np.random.default_rng(a.seed)
n_noise = int(round(a.n * a.noise))
n_blob = a.n - n_noise
centres = g.uniform(-a.box, a.box, (a.blobs, a.d))
truth = np.concatenate([np.arange(n_blob) % a.blobs, -np.ones(n_noise, dtype=np.int64)])
X = np.empty((a.n, a.d), dtype=np.float64)
X[:n_blob] = centres[truth[:n_blob]] + g.standard_normal((n_blob, a.d))
X[n_blob:] = g.uniform(-a.box - 3, a.box + 3, (n_noise, a.d))
perm = g.permutation(a.n)
X, truth = X[perm].astype(np.float32), truth[perm]
with h5py.File(os.path.join(a.out, "projection.h5"), "w") as f:
    f.attrs["format"] = np.bytes_("segrec-projection")
    f.attrs["format_version"] = np.int64(1)
    f.attrs["method"] = np.bytes_("random")
    f.attrs["dims"] = np.int64(a.d)
    f.create_dataset("H", data=X)
    width = len(str(a.n))
    f.create_dataset("users/ids", data=np.array([f"u{i:0{width}d}".encode() for i in range(a.n)],
                                                dtype=f"S{width + 1}"))
np.save(os.path.join(a.out, "truth.npy"), truth)
