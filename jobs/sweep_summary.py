#!/usr/bin/env python3
"""Gathers a k sweep (jobs/sweep-k.sbatch): SWEEP_DIR/k<K>/segments.h5 for each K given.

Writes SWEEP_DIR/summary.tsv (one row per k: inertia, silhouette, Davies-Bouldin,
Calinski-Harabasz, Lloyd iterations, converged) and SWEEP_DIR/summary.png (inertia and
silhouette against k). Exits 1 when a k's segments.h5 is missing or of another format.
"""
import math
import os
import sys

import h5py


def main(argv):
    if len(argv) < 3:
        print("usage: sweep_summary.py SWEEP_DIR K...", file=sys.stderr)
        return 2
    sweep, ks = argv[1], sorted(int(k) for k in argv[2:])
    rows = []
    for k in ks:
        path = os.path.join(sweep, f"k{k}", "segments.h5")
        try:
            with h5py.File(path, "r") as f:
                a = f.attrs
                fmt = a.get("format", b"")
                fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
                if fmt and fmt != "segrec-segments":
                    raise ValueError(f"format '{fmt}', want segrec-segments")
                rows.append((k, float(a["inertia"]), float(a["silhouette"]),
                             float(a["davies_bouldin"]), float(a["calinski_harabasz"]),
                             int(a["n_iter"]), int(a["converged"])))
        except (OSError, KeyError, ValueError) as e:
            print(f"sweep_summary: {path}: {e}", file=sys.stderr)
            return 1
    tsv = os.path.join(sweep, "summary.tsv")
    with open(tsv + ".tmp", "w") as out:
        out.write("k\tinertia\tsilhouette\tdavies_bouldin\tcalinski_harabasz\tn_iter\tconverged\n")
        for r in rows:
            out.write("%d\t%.9g\t%.6f\t%.6f\t%.4f\t%d\t%d\n" % r)
    os.replace(tsv + ".tmp", tsv)
    print(open(tsv).read(), end="")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("sweep_summary: no matplotlib, no plot (python3-matplotlib)", file=sys.stderr)
        return 0
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r[0] for r in rows]
    ax.plot(xs, [r[1] for r in rows], "o-", color="tab:blue")
    ax.set_xlabel("k")
    ax.set_ylabel("inertia", color="tab:blue")
    ax2 = ax.twinx()
    sil = [r[2] for r in rows]
    if any(not math.isnan(s) for s in sil):
        ax2.plot(xs, sil, "s--", color="tab:red")
    ax2.set_ylabel("silhouette", color="tab:red")
    ax.set_title("K-means sweep")
    fig.tight_layout()
    png = os.path.join(sweep, "summary.png")
    fig.savefig(png + ".tmp.png", dpi=100)
    os.replace(png + ".tmp.png", png)
    print(f"wrote {tsv} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
