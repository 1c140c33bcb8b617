#!/usr/bin/env python3
"""Projected memory and time per rank of item-parallel training (--grad-sync items) at many
items: the training stage's own estimate (src/personalisation/train/memory.cpp, history input,
one hidden layer, Adam, checkpoints on) and a step time scaled from a measured one.

  bench/scale/items_projection.py --items 1000000 --hidden 1000 --ranks 2 8 32 64 \
      --measured-items 96044 --measured-ranks 2 --measured-step-s 10.0

Time: the work per step that grows with the items (the output layer's columns and the history
rows of W0 of this rank, their Adam update) scales with items / ranks; the rest (the batch's
hidden rows exchanged, the softmax sums) does not grow with the items and is left out, so the
projection is a lower bound where ranks hold few items.
"""
import argparse

GIB = 1024**3


def need(items, hidden, ranks, batch, users_per_rank=0, nnz_per_user=0):
    P = items * hidden + hidden + hidden * items + items
    items_mode = ranks > 1
    owned = P / ranks if items_mode else P
    rows = batch if items_mode else batch / ranks + 1
    cols = items / ranks + 1 if items_mode else items
    parts = {
        "training data": users_per_rank * 48 + users_per_rank * nnz_per_user * 8,
        "parameters x3": 3 * P * 4,
        "gradient": P * 4,
        "Adam moments": 2 * owned * 4,
        "checkpoint gather": 2 * P * 4,
        "output block": 2 * rows * cols * 4,
        "activations": 3 * rows * hidden * 4,
    }
    return P, parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--hidden", type=int, nargs="+", default=[1000, 256])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2, 8, 32, 64])
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--measured-items", type=int, default=0)
    ap.add_argument("--measured-ranks", type=int, default=2)
    ap.add_argument("--measured-hidden", type=int, default=1000)
    ap.add_argument("--measured-step-s", type=float, default=0)
    a = ap.parse_args()
    print("| items | hidden | ranks | parameters | memory/rank GiB | of which replicated (weights x3, gradient, checkpoint gather) GiB | moments + output block GiB | step s/rank (scaled) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for h in a.hidden:
        for r in a.ranks:
            P, parts = need(a.items, h, r, a.batch)
            total = sum(parts.values())
            repl = parts["parameters x3"] + parts["gradient"] + parts["checkpoint gather"]
            split = parts["Adam moments"] + parts["output block"]
            t = ""
            if a.measured_step_s > 0 and a.measured_items > 0:
                scale = (a.items / r * h) / (a.measured_items / a.measured_ranks * a.measured_hidden)
                t = f"{a.measured_step_s * scale:.1f}"
            print(f"| {a.items:,} | {h} | {r} | {P / 1e9:.2f} G | {total / GIB:.1f} | {repl / GIB:.1f} | {split / GIB:.2f} | {t} |")


if __name__ == "__main__":
    main()
