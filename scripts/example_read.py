#!/usr/bin/python3
"""Reading segrec outputs from Python (h5py + pandas): the example of docs/python.md.

usage: example_read.py DIR

Reads DIR/segments.h5, DIR/model.h5 and DIR/recommendations.csv when present and prints
what they hold. Exit status: 0 read (absent files are reported and skipped), 1 a needed
Python module is missing, 2 bad usage, 3 a file is present but malformed.
"""
import os
import sys

import h5py
import numpy as np
import pandas as pd


def text(values):
    """HDF5 fixed-length strings (bytes) -> list of str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_segments(path):
    """One row per user: user_id, segment; plus the centroids and the file attributes."""
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] in (b"segrec-segments", "segrec-segments")
        users = pd.DataFrame({"user_id": text(f["users/ids"][:]),
                              "segment": f["labels"][:].astype(np.int32)})
        centroids = f["centroids"][:]  # k x h, projection space
        attrs = {k: f.attrs[k] for k in ("k", "inertia", "silhouette", "davies_bouldin")}
    return users, centroids, attrs


def read_model(path):
    """Training curves as a DataFrame (one row per epoch) and the layer shapes."""
    with h5py.File(path, "r") as f:
        curves = pd.DataFrame({name: f["curves"][name][:] for name in f["curves"]})
        curves.index = pd.RangeIndex(1, len(curves) + 1, name="epoch")
        layers = sorted((k for k in f["mlp"] if k.startswith("W")), key=lambda k: int(k[1:]))
        shapes = [f["mlp"][k].shape for k in layers]
        items = text(f["items/ids"][:])
    return curves, shapes, items


def read_recommendations(path):
    """recommendations.csv: user_id,rank,item_id,score,segment,source (one row per pick)."""
    recs = pd.read_csv(path, dtype={"user_id": str, "item_id": str})
    expected = ["user_id", "rank", "item_id", "score", "segment", "source"]
    if list(recs.columns) != expected:
        raise ValueError(f"{path}: columns {list(recs.columns)}, expected {expected}")
    return recs


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print(__doc__, file=sys.stderr)
        return 2
    d = argv[1]
    try:
        users = None
        if os.path.exists(f"{d}/segments.h5"):
            users, centroids, attrs = read_segments(f"{d}/segments.h5")
            print(f"segments.h5: {len(users)} users in {attrs['k']} segments, "
                  f"centroids {centroids.shape[0]} x {centroids.shape[1]}")
            print("users per segment:")
            print(users["segment"].value_counts().sort_index().to_string())
        else:
            print("segments.h5: absent")
        if os.path.exists(f"{d}/model.h5"):
            curves, shapes, items = read_model(f"{d}/model.h5")
            print(f"model.h5: {len(items)} items, layers {shapes}, {len(curves)} epochs")
            print(curves[["train_loss", "val_ndcg"]].tail(3).to_string())
        else:
            print("model.h5: absent")
        if os.path.exists(f"{d}/recommendations.csv"):
            recs = read_recommendations(f"{d}/recommendations.csv")
            print(f"recommendations.csv: {len(recs)} rows for {recs['user_id'].nunique()} users")
            print(recs.groupby("source").size().to_string())
            if users is not None:  # segment of each recommended user, from segments.h5
                joined = recs.merge(users, on="user_id", suffixes=("", "_h5"))
                print(f"segment column agrees with segments.h5: "
                      f"{bool((joined['segment'] == joined['segment_h5']).all())}")
            print(recs[recs["rank"] == 1].head(5).to_string(index=False))
        else:
            print("recommendations.csv: absent")
    except (OSError, KeyError, ValueError, AssertionError) as e:
        print(f"example_read: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
