#!/usr/bin/python3
"""Whole-process `segrec cluster` against scikit-learn KMeans(n_init=1) fit alone.

For each case N x D x K[:ITERS] one float32 matrix (standard normal, seed 0; make_data.py)
is written as a projection.h5; then, on the same 2 cores:
  segrec cluster --k K with DEFAULT options (k-means++, --n-init 3, tol 1e-4, ...), as
  mpirun -n 2 x 1 thread and -n 1 x 2 threads; wall time of the whole process (MPI start,
  read, init, Lloyd, quality figures, segments.h5/csv, report), the best layout kept;
  scikit-learn KMeans(K, n_init=1, random_state=0) .fit(X) alone (2 threads, fair BLAS),
  timed around fit only (no reading, no writing).
With :ITERS both sides get --max-iter / max_iter ITERS (and otherwise default options).
Prints the time ratio (scikit-learn fit / segrec whole process; the goal is >= 2), the
inertia ratio (segrec / scikit-learn; goal <= 1.01) and segrec's time breakdown
(the report JSON's timings_s: read, init, lloyd, quality, other, write, report).
Usage: whole.py --segrec build/segrec [--cases 1000000x32x16,300000x64x256:10]
       [--repeats 2] [--work DIR]
"""
import argparse, json, os, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
FAIRBLAS = os.path.abspath(os.path.join(HERE, "../../../shared/anchors"))

SKLEARN = r"""
import sys; sys.path.insert(0, sys.argv[1])
import _fairblas  # noqa: F401  (must come first)
import json, time, h5py, numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(2)
from sklearn.cluster import KMeans
X = np.ascontiguousarray(h5py.File(sys.argv[2], "r")["H"][...], dtype=np.float32)
kw = {} if int(sys.argv[4]) <= 0 else {"max_iter": int(sys.argv[4])}
km = KMeans(n_clusters=int(sys.argv[3]), n_init=1, random_state=0, **kw)
t = time.perf_counter(); km.fit(X); dt = time.perf_counter() - t
print(json.dumps({"fit_s": dt, "inertia": float(km.inertia_), "n_iter": int(km.n_iter_)}))
"""


def run(cmd, env=None):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}")
    return r.stdout


def segrec_run(a, data, k, iters, ranks, threads):
    out = os.path.join(data, f"seg_np{ranks}_t{threads}.h5")
    mpi = ["mpirun", "-n", str(ranks), "--oversubscribe", "--allow-run-as-root",
           "--bind-to", "core" if threads == 1 else "none"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    extra = ["--max-iter", str(iters)] if iters > 0 else []
    t = time.perf_counter()
    run(mpi + [a.segrec, "cluster", "--projection", os.path.join(data, "projection.h5"),
               "--k", str(k), "--threads", str(threads), "--out", out, "-q"] + extra, env)
    wall = time.perf_counter() - t
    with open(out[:-3] + ".json") as f:
        rep = json.load(f)
    return {"wall_s": wall, "inertia": rep["inertia"], "timings_s": rep["timings_s"],
            "layout": f"-n {ranks} x {threads} thr"}


def sklearn_run(a, data, k, iters):
    script = os.path.join(data, "sklearn_peer.py")  # a file: _fairblas re-executes its script
    with open(script, "w") as f:
        f.write(SKLEARN)
    out = run([sys.executable, script, a.fairblas, os.path.join(data, "projection.h5"), str(k),
               str(iters)])
    return json.loads(out[out.index("{"):])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segrec", required=True)
    ap.add_argument("--cases", default="1000000x32x16,300000x64x256:10")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each side keeps its best")
    ap.add_argument("--work")
    ap.add_argument("--fairblas", default=FAIRBLAS, help="folder of _fairblas.py")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="segrec_bench_kmeans_whole_")
    rows = []
    for case in a.cases.split(","):
        size, _, it = case.partition(":")
        n, d, k = (int(x) for x in size.split("x"))
        iters = int(it) if it else 0
        data = os.path.join(work, f"n{n}_d{d}")
        if not os.path.exists(os.path.join(data, "projection.h5")):
            run([sys.executable, os.path.join(HERE, "make_data.py"), "--n", str(n), "--d", str(d),
                 "--k", str(k), "--seed", "0", "--out", data])
        seg, sk = [], []
        for _ in range(a.repeats):  # take turns; the machine is shared
            seg += [segrec_run(a, data, k, iters, 2, 1), segrec_run(a, data, k, iters, 1, 2)]
            sk.append(sklearn_run(a, data, k, iters))
        s = min(seg, key=lambda r: r["wall_s"])
        p = min(sk, key=lambda r: r["fit_s"])
        res = {"n": n, "d": d, "k": k, "max_iter": iters or 300, "segrec": s, "sklearn": p,
               "runs": {"segrec": seg, "sklearn": sk},
               "time_ratio": p["fit_s"] / s["wall_s"], "inertia_ratio": s["inertia"] / p["inertia"]}
        rows.append(res)
        t = s["timings_s"]
        print(f"\n== n={n} h={d} k={k}, max-iter {res['max_iter']}, 2 cores, best of {a.repeats}")
        print(f"  segrec cluster (whole process, {s['layout']}) {s['wall_s']:8.2f} s  "
              f"inertia {s['inertia']:.7g}")
        print(f"  scikit-learn KMeans(n_init=1).fit        {p['fit_s']:8.2f} s  "
              f"inertia {p['inertia']:.7g}  ({p['n_iter']} iterations)")
        print(f"  time ratio (sklearn / segrec) {res['time_ratio']:.2f}x (goal >= 2); inertia "
              f"ratio (segrec / sklearn) {res['inertia_ratio']:.4f} (goal <= 1.01)")
        print("  segrec breakdown: " + ", ".join(f"{k_} {v:.2f} s" for k_, v in t.items())
              + f"; MPI start and exit {s['wall_s'] - sum(t.values()):.2f} s")
    with open(os.path.join(work, "whole_results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(f"\nraw results: {os.path.join(work, 'whole_results.json')}")


if __name__ == "__main__":
    main()
