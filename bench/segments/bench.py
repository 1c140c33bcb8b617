#!/usr/bin/env python3
"""Segments that mean something: recovery of planted structure, segrec against scikit-learn.

For each structure (taste, behaviour, both) and each generator (segrec generate, and the
independent plant.py), one log; on it, in the same run and on the same cores:
  segrec default chain: ingest -> profile -> project --dims 32 -> cluster --k FROM:TO (view and
                        k chosen by segrec), and the same chain with k given;
  scikit-learn chain:   tf-idf of the user x item counts -> TruncatedSVD(32) -> row
                        normalisation -> KMeans(k, n_init=3), k given.
  segrec with --algorithm gmm (K-means, then a tied Gaussian mixture by EM), k chosen by the
                        gap rule and k given, and the k BIC would choose;
  scikit-learn GaussianMixture(tied) on the same viewed projection segrec clustered, from
                        KMeans(k, n_init=3) means, k given (ARI and seconds; segrec's figure
                        is its EM time, the `em` part of its timings).
Prints the adjusted Rand index against the planted segments, the view and k segrec chose, and
the k each rule of the sweep would have chosen (/sweep/pick_* of segments.h5). Optionally the
same rules on MovieLens 100K (no planted truth: the picks only).
"""
import argparse, csv, os, subprocess, sys, time
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../../shared/anchors"))
try:
    import _fairblas  # noqa: F401  (OPENBLAS_CORETYPE for a fair peer)
except ImportError:
    pass
import h5py
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import normalize

RULES = ["gap", "silhouette", "db", "ch", "elbow"]
VARIANTS = (("sweep", []), ("given", []), ("gmm_sweep", ["--algorithm", "gmm"]),
            ("gmm_given", ["--algorithm", "gmm"]))


def sh(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def run_segrec(args, *cmd):
    sh([args.mpirun, "-n", str(args.np), "--oversubscribe", "--allow-run-as-root", "--bind-to",
        "none", args.segrec] + [str(c) for c in cmd])


def read_labels(path):
    with open(path) as f:
        r = csv.reader(f)
        next(r)
        return {u: int(s) for u, s in r}


def ari(truth, labels):
    users = [u for u in labels if u in truth]
    return adjusted_rand_score([truth[u] for u in users], [labels[u] for u in users])


def sklearn_chain(events, k, seed):
    users, items, rows, cols = {}, {}, [], []
    with open(events) as f:
        r = csv.reader(f)
        head = next(r)
        iu, ii = head.index("user_id"), head.index("item_id")
        for row in r:
            rows.append(users.setdefault(row[iu], len(users)))
            cols.append(items.setdefault(row[ii], len(items)))
    X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users), len(items)))
    t0 = time.time()
    H = TruncatedSVD(32, random_state=seed).fit_transform(TfidfTransformer().fit_transform(X))
    lab = KMeans(k, n_init=3, random_state=seed).fit_predict(normalize(H))
    ids = sorted(users, key=users.get)
    return dict(zip(ids, lab)), time.time() - t0


def segrec_chain(args, d, events, k_sweep, k=None, extra_profile=()):
    run_segrec(args, "ingest", "--events", events, "--out", f"{d}/dataset.h5")
    run_segrec(args, "profile", "--data", f"{d}/dataset.h5", "--out", f"{d}/profiles.h5", *extra_profile)
    run_segrec(args, "project", "--profiles", f"{d}/profiles.h5", "--dims", 32, "--out", f"{d}/projection.h5")
    out = {}
    for tag, extra in VARIANTS:
        kk = k_sweep if tag.endswith("sweep") else k
        if kk is None:
            continue
        t0 = time.time()
        res = subprocess.run([args.mpirun, "-n", str(args.np), "--oversubscribe", "--allow-run-as-root",
                              "--bind-to", "none", args.segrec, "cluster", "--projection",
                              f"{d}/projection.h5", "--k", str(kk), "--out", f"{d}/seg_{tag}.h5",
                              "--segments-csv", f"{d}/seg_{tag}.csv", *extra],
                             check=True, capture_output=True, text=True)
        em = [l for l in res.stdout.splitlines() if l.startswith("timings:")]
        em = float(em[0].split(" em ")[1].split()[0]) if em and " em " in em[0] else float("nan")
        with h5py.File(f"{d}/seg_{tag}.h5") as f:
            a = f.attrs
            sw = f["/sweep"].attrs if "/sweep" in f else {}
            out[tag] = dict(labels=read_labels(f"{d}/seg_{tag}.csv"), k=int(a["k"]),
                            view=a["view"].decode() if isinstance(a["view"], bytes) else a["view"],
                            shape=(a["shape"].decode() if isinstance(a["shape"], bytes)
                                   else a["shape"]) if "shape" in a else "spherical",
                            seconds=time.time() - t0, em_seconds=em,
                            weights=(float(a["interest_weight"]), float(a["value_weight"]),
                                     int(a["normalise_interest"]), int(a["interest_dims"])),
                            picks={r: int(sw[f"pick_{r}"]) for r in RULES + ["bic"]
                                   if f"pick_{r}" in sw})
    return out


def sklearn_gmm(d, view, k, seed):
    """scikit-learn's tied GaussianMixture on the projection as segrec's view shows it."""
    wi, wv, norm, ni = view
    with h5py.File(f"{d}/projection.h5") as f:
        H = f["/H"][:].astype(np.float64)
        ids = [x.decode() if isinstance(x, bytes) else x for x in f["/users/ids"][:]]
    if norm:
        n = np.linalg.norm(H[:, :ni], axis=1, keepdims=True)
        H[:, :ni] /= np.where(n > 0, n, 1)
    H[:, :ni] *= wi
    H[:, ni:] *= wv
    H = H[:, H.var(0) > 0]
    t0 = time.time()
    km = KMeans(k, n_init=3, random_state=seed).fit(H)
    g = GaussianMixture(k, covariance_type="tied", means_init=km.cluster_centers_,
                        reg_covar=1e-6 * H.var(0).mean(), tol=1e-4, max_iter=200).fit(H)
    lab = g.predict(H)
    return dict(zip(ids, lab)), time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--segrec", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--ks", default="4,8,16")
    ap.add_argument("--sweep", default="2:20")
    ap.add_argument("--work", default="/tmp/segrec-bench-segments")
    ap.add_argument("--movielens", default="")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    print("| generator | structure | planted k | segrec view, shape | segrec k | segrec ARI (k chosen) "
          "| segrec ARI (k given) | scikit-learn ARI (k given) | k by gap / silhouette / db / ch / elbow "
          "| gmm: k (gap), ARI | gmm ARI (k given) | k by BIC | scikit-learn GMM ARI (k given) "
          "| EM s: segrec / scikit-learn (KMeans + GMM) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for gen in ("segrec", "plant.py"):
        for structure in ("taste", "behaviour", "both"):
            for k in map(int, args.ks.split(",")):
                d = f"{args.work}/{gen}_{structure}_{k}"
                os.makedirs(d, exist_ok=True)
                ev, truth = f"{d}/events.csv", f"{d}/truth.csv"
                if gen == "segrec":
                    run_segrec(args, "generate", "--users", args.users, "--segments", k,
                               "--structure", structure, "--seed", args.seed, "--events", ev,
                               "--truth", truth, "--items-out", f"{d}/items.csv")
                else:
                    sh(["/usr/bin/python3", os.path.join(os.path.dirname(__file__), "plant.py"),
                        "--users", str(args.users), "--segments", str(k), "--structure", structure,
                        "--seed", str(args.seed), "--out", d])
                t = read_labels(truth)
                s = segrec_chain(args, d, ev, args.sweep, k)
                sk, _ = sklearn_chain(ev, k, args.seed)
                p = s["sweep"]["picks"]
                gs, gg = s["gmm_sweep"], s["gmm_given"]
                skg, skg_s = sklearn_gmm(d, gg["weights"], k, args.seed)
                print(f"| {gen} | {structure} | {k} | {s['sweep']['view']}, {s['sweep']['shape']} "
                      f"| {s['sweep']['k']} "
                      f"| {ari(t, s['sweep']['labels']):.3f} | {ari(t, s['given']['labels']):.3f} "
                      f"| {ari(t, sk):.3f} | {' / '.join(str(p[r]) for r in RULES)} "
                      f"| {gs['k']}, {ari(t, gs['labels']):.3f} | {ari(t, gg['labels']):.3f} "
                      f"| {gs['picks'].get('bic', '-')} | {ari(t, skg):.3f} "
                      f"| {gg['em_seconds']:.2f} / {skg_s:.2f} |", flush=True)
    if args.movielens and os.path.exists(os.path.join(args.movielens, "u.data")):
        d = f"{args.work}/ml-100k"
        os.makedirs(d, exist_ok=True)
        run_segrec(args, "ingest", "--format", "movielens", "--events",
                   os.path.join(args.movielens, "u.data"), "--out", f"{d}/dataset.h5")
        run_segrec(args, "profile", "--data", f"{d}/dataset.h5", "--out", f"{d}/profiles.h5")
        run_segrec(args, "project", "--profiles", f"{d}/profiles.h5", "--dims", 32,
                   "--out", f"{d}/projection.h5")
        for view in ("auto", "interest", "value"):
            run_segrec(args, "cluster", "--projection", f"{d}/projection.h5", "--k", args.sweep,
                       "--view", view, "--out", f"{d}/seg_{view}.h5", "--segments-csv", f"{d}/seg_{view}.csv")
            with h5py.File(f"{d}/seg_{view}.h5") as f:
                a = f.attrs
                picks = {r: int(f["/sweep"].attrs[f"pick_{r}"]) for r in RULES}
                v = a["view"].decode() if isinstance(a["view"], bytes) else a["view"]
                print(f"\nml-100k --view {view}: view {v}, gap interest {a['gap_interest']:.3f} value "
                      f"{a['gap_value']:.3f}; k by " + ", ".join(f"{r} {picks[r]}" for r in RULES))


if __name__ == "__main__":
    main()
