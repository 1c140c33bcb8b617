#!/usr/bin/python3
"""Random user vectors in projection.h5 format (what `segrec similar` reads).

usage: make_vectors.py OUT.h5 USERS DIMS [SEED]
/H: f32 USERS x DIMS, a mixture of 256 Gaussian clusters (centres N(0, 1), spread 0.5), so
that neighbours are meaningful; /users/ids: "u<row>" fixed-length strings.
"""
import sys

import h5py
import numpy as np


def main():
    out, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(int(sys.argv[4]) if len(sys.argv) > 4 else 7)
    centres = rng.standard_normal((256, d), dtype=np.float32)
    X = centres[rng.integers(0, 256, n)] + 0.5 * rng.standard_normal((n, d), dtype=np.float32)
    with h5py.File(out, "w") as f:
        f.attrs["format"] = np.bytes_("segrec-projection")
        f.attrs["format_version"] = np.int64(1)
        f.create_dataset("/H", data=X.astype(np.float32))
        f.create_dataset("/users/ids", data=np.array([b"u%d" % i for i in range(n)], dtype="S12"))


if __name__ == "__main__":
    main()
