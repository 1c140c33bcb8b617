#!/usr/bin/python3
"""Writes a projection.h5 that `segrec cluster` reads, of Gaussian groups sharing one random
covariance, and truth.csv (user_id,segment): the check of how `--shape tied` chooses k on
groups whose within-group shape is the model's own (docs/clustering.md, "The silhouette's
collapses" and "Bimodal segments").
8 dims, N users (default 6,000) in K groups of unequal sizes (3% at least); centres at random
(`flat`, sd 3) or in K / 2 pairs (pair centres sd 6, each pair's groups 5 apart); noise
Gaussian, Student t (5 degrees, unit variance) or log-normal (standardised); all rows mapped
by one random matrix A (so the shared covariance is A A^T).
Usage: gaussian_groups.py OUT K SEED flat|pairs gauss|t|skew [--users N]
Then: mpirun -n 2 segrec cluster --projection OUT/projection.h5 --shape tied --k 2:16
"""
import argparse, os
import numpy as np
import h5py

ap = argparse.ArgumentParser()
ap.add_argument("out"); ap.add_argument("k", type=int); ap.add_argument("seed", type=int)
ap.add_argument("kind", choices=["flat", "pairs"]); ap.add_argument("tail", choices=["gauss", "t", "skew"])
ap.add_argument("--users", type=int, default=6000)
a = ap.parse_args()
n, d, K = a.users, 8, a.k
g = np.random.default_rng(a.seed)
A = g.standard_normal((d, d)) + 2 * np.eye(d)
if a.kind == "flat":
    C = g.standard_normal((K, d)) * 3.0
else:
    P = g.standard_normal((K // 2, d)) * 6.0
    off = g.standard_normal((K // 2, d))
    off *= 2.5 / np.linalg.norm(off, axis=1, keepdims=True)
    C = np.vstack([P + off, P - off])
w = g.dirichlet(np.full(K, 3.0))
w = 0.03 + (1 - 0.03 * K) * w
lab = g.choice(K, n, p=w / w.sum())
if a.tail == "gauss":
    Z = g.standard_normal((n, d))
elif a.tail == "t":
    Z = g.standard_t(5, (n, d)) / np.sqrt(5 / 3)
else:
    Z = np.exp(0.5 * g.standard_normal((n, d)))
    Z = (Z - Z.mean(0)) / Z.std(0)
X = ((Z + C[lab]) @ A.T).astype(np.float32)
os.makedirs(a.out, exist_ok=True)
width = len(str(n))
ids = [f"u{i:0{width}d}" for i in range(n)]
with h5py.File(os.path.join(a.out, "projection.h5"), "w") as f:
    f.attrs["format"] = np.bytes_("segrec-projection")
    f.attrs["format_version"] = np.int64(1)
    f.attrs["method"] = np.bytes_("random")
    f.attrs["dims"] = np.int64(d)
    f.create_dataset("H", data=X)
    f.create_dataset("users/ids", data=np.array([u.encode() for u in ids], dtype=f"S{width + 1}"))
with open(os.path.join(a.out, "truth.csv"), "w") as f:
    f.write("user_id,segment\n")
    f.writelines(f"{u},{l}\n" for u, l in zip(ids, lab))
