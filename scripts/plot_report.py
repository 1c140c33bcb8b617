#!/usr/bin/python3
"""Pictures of a segrec run: PNG files made from the outputs in one directory.

usage: plot_report.py DIR [--out OUTDIR] [--eval FILE] [--seed N] [--sample N] [--dpi N]

Reads whatever of these DIR holds (docs/hdf5-schema.md) and skips a picture whose
inputs are absent:

  users_pca.png        users on the first two PCA components, coloured by segment
                       (projection.h5 + segments.h5; a seeded sample of --sample users)
  segment_sizes.png    users per segment (segments.h5)
  k_sweep.png          inertia (elbow), silhouette and Davies-Bouldin against k
                       (segments.h5 /sweep, from `segrec cluster --k FROM:TO`)
  training.png         training loss and validation NDCG per epoch (model.h5 /curves)
  baselines.png        metrics of the model against the baselines (an evaluation JSON:
                       --eval FILE, else DIR/evaluation.json, else the "evaluation"
                       section of DIR/report.json from `segrec run`)
  lift_heatmap.png     lift of the top items per segment (recomputed from dataset.h5 +
                       segments.h5, else taken from segments.json)

Exit status: 0 pictures written (some may be skipped, each with a reason on stderr);
1 matplotlib, numpy or h5py is missing; 2 bad usage (DIR is not a directory);
3 an input file exists but cannot be read; 4 the output directory cannot be written.

From Python: `import plot_report; written = plot_report.plot_report("run/")` returns the
paths written (raises PlotError on exit-3/4 conditions).
"""
import argparse
import json
import os
import sys

EXIT_OK, EXIT_MISSING_MODULE, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT = 0, 1, 2, 3, 4

try:
    import numpy as np
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker
    import matplotlib.pyplot as plt
except ImportError as _e:  # reported by main() with its exit code
    _IMPORT_ERROR = _e
else:
    _IMPORT_ERROR = None


class PlotError(Exception):
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def _note(msg):
    print(f"plot_report: {msg}", file=sys.stderr)


def _open(path):
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise PlotError(f"cannot read {path}: {e}", EXIT_INPUT)


def _save(fig, out_dir, name, dpi, written):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=dpi)
    except OSError as e:
        raise PlotError(f"cannot write {path}: {e}", EXIT_OUTPUT)
    finally:
        plt.close(fig)
    written.append(path)


def _labels(seg):
    return np.asarray(seg["labels"][:], dtype=np.int64)


def plot_pca(d, out, dpi, seed, sample, written):
    proj, segs = os.path.join(d, "projection.h5"), os.path.join(d, "segments.h5")
    if not (os.path.exists(proj) and os.path.exists(segs)):
        return _note("users_pca.png skipped: needs projection.h5 and segments.h5")
    with _open(proj) as p, _open(segs) as s:
        H = p["H"]
        if H.shape[1] < 2:
            return _note("users_pca.png skipped: the projection has fewer than 2 dimensions")
        labels = _labels(s)
        n = H.shape[0]
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(n, size=min(n, sample), replace=False))
        xy = H[idx, :2] if len(idx) < n else H[:, :2]
        evr = p["explained_variance_ratio"][:2] if "explained_variance_ratio" in p else None
        method = p.attrs.get("method", b"pca")
    method = method.decode() if isinstance(method, bytes) else str(method)
    lab = labels[idx]
    fig, ax = plt.subplots(figsize=(7, 6))
    sc = ax.scatter(xy[:, 0], xy[:, 1], c=lab, cmap="tab20", s=4, alpha=0.7, linewidths=0)
    k = int(labels.max()) + 1 if labels.size else 0
    if k <= 20:
        handles, _ = sc.legend_elements(num=None)
        ax.legend(handles, [str(v) for v in np.unique(lab)], title="segment", fontsize=7,
                  markerscale=0.8, loc="best", ncol=2)
    name = "PC" if method == "pca" else "component "
    for axis, i in ((ax.set_xlabel, 0), (ax.set_ylabel, 1)):
        extra = f" ({100 * evr[i]:.1f}% of variance)" if evr is not None and len(evr) > i else ""
        axis(f"{name}{i + 1}{extra}")
    ax.set_title(f"{len(idx)} of {n} users (seed {seed}), {k} segments")
    _save(fig, out, "users_pca.png", dpi, written)


def plot_sizes(d, out, dpi, written):
    segs = os.path.join(d, "segments.h5")
    if not os.path.exists(segs):
        return _note("segment_sizes.png skipped: needs segments.h5")
    with _open(segs) as s:
        sizes = np.asarray(s["sizes"][:])
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(sizes) + 2), 4))
    ax.bar(np.arange(len(sizes)), sizes, color="tab:blue")
    ax.set_xlabel("segment")
    ax.set_ylabel("users")
    ax.set_title(f"segment sizes (k = {len(sizes)}, {int(sizes.sum())} users)")
    if len(sizes) <= 40:
        ax.set_xticks(np.arange(len(sizes)))
    _save(fig, out, "segment_sizes.png", dpi, written)


def plot_sweep(d, out, dpi, written):
    segs = os.path.join(d, "segments.h5")
    if not os.path.exists(segs):
        return _note("k_sweep.png skipped: needs segments.h5")
    with _open(segs) as s:
        if "sweep" not in s:
            return _note("k_sweep.png skipped: segments.h5 holds no sweep (cluster --k FROM:TO)")
        sw = {name: np.asarray(s["sweep"][name][:]) for name in s["sweep"]}
        picked = int(s.attrs.get("k", -1))
        pick = s["sweep"].attrs.get("pick", b"")
    pick = pick.decode() if isinstance(pick, bytes) else str(pick)
    k = sw["k"]
    panels = [("inertia", "inertia (elbow)"), ("silhouette", "silhouette (higher is better)"),
              ("davies_bouldin", "Davies-Bouldin (lower is better)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (name, title) in zip(axes, panels):
        y = sw.get(name)
        if y is None or not np.isfinite(y).any():
            ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.plot(k, y, "o-")
        ax.axvline(picked, color="tab:red", ls="--", lw=1, label=f"picked k = {picked}")
        ax.set_xlabel("k")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"k sweep (pick by {pick})" if pick else "k sweep")
    _save(fig, out, "k_sweep.png", dpi, written)


def plot_training(d, out, dpi, written):
    model = os.path.join(d, "model.h5")
    if not os.path.exists(model):
        return _note("training.png skipped: needs model.h5")
    with _open(model) as m:
        if "curves" not in m:
            return _note("training.png skipped: model.h5 has no /curves")
        loss = np.asarray(m["curves/train_loss"][:])
        ndcg = np.asarray(m["curves/val_ndcg"][:]) if "curves/val_ndcg" in m else None
        best = int(m["validation"].attrs.get("best_epoch", -1)) if "validation" in m else -1
        k = int(m["validation"].attrs.get("k", 0)) if "validation" in m else 0
    epochs = np.arange(1, len(loss) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(epochs, loss, "o-", color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("training loss (per user)", color="tab:blue")
    if ndcg is not None and np.isfinite(ndcg).any():
        ax2 = ax.twinx()
        ax2.plot(epochs, ndcg, "s-", color="tab:orange", label="validation")
        ax2.set_ylabel(f"validation NDCG@{k}" if k else "validation NDCG", color="tab:orange")
        if best > 0:
            ax2.axvline(best, color="tab:red", ls="--", lw=1)
            ax2.annotate(f"kept epoch {best}", (best, np.nanmax(ndcg)), fontsize=8, ha="right",
                         xytext=(-4, -12), textcoords="offset points")
    ax.set_title("training curves")
    _save(fig, out, "training.png", dpi, written)


def _numeric_metrics(obj):
    """{metric: value} of the numeric leaves of one contender's entry (nested dicts flattened)."""
    out = {}
    if isinstance(obj, dict):
        for key, v in obj.items():
            if isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                out[str(key)] = float(v)
            elif isinstance(v, dict):
                for k2, v2 in _numeric_metrics(v).items():
                    out[f"{key}.{k2}"] = v2
    return out


def parse_evaluation(doc):
    """Contenders and their metrics from an evaluation JSON: {name: {metric: value}}.

    Accepts {"methods"|"results"|"models"|"baselines"|"contenders": {...} or [...]}, a list
    of objects named by "name"/"method"/"model", or an object of objects."""
    for key in ("methods", "results", "models", "contenders", "baselines"):
        if isinstance(doc, dict) and key in doc and isinstance(doc[key], (dict, list)):
            inner = parse_evaluation(doc[key])
            if key == "baselines" and isinstance(doc.get("model"), dict):
                inner = {"model": _numeric_metrics(doc["model"]), **inner}
            if inner:
                return inner
    out = {}
    if isinstance(doc, list):
        for i, e in enumerate(doc):
            if isinstance(e, dict):
                name = next((str(e[k]) for k in ("name", "method", "model", "source") if k in e),
                            f"#{i}")
                m = _numeric_metrics(e)
                if m:
                    out[name] = m
    elif isinstance(doc, dict):
        for name, v in doc.items():
            m = _numeric_metrics(v) if isinstance(v, dict) else {}
            if m:
                out[str(name)] = m
    return out


def plot_baselines(d, out, dpi, eval_path, written):
    candidates = [eval_path] if eval_path else [os.path.join(d, n) for n in
                                                ("evaluation.json", "report.json", "eval.json")]
    path = next((p for p in candidates if p and os.path.exists(p)), None)
    if path is None:
        return _note("baselines.png skipped: no evaluation JSON (segrec evaluate --json; --eval)")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise PlotError(f"cannot read {path}: {e}", EXIT_INPUT)
    if isinstance(doc, dict) and isinstance(doc.get("evaluation"), (dict, list)):
        doc = doc["evaluation"]  # report.json of `segrec run`: its evaluation section
    elif os.path.basename(path) == "report.json":
        return _note(f"baselines.png skipped: {path} has no evaluation section")
    table = parse_evaluation(doc)
    if not table:
        return _note(f"baselines.png skipped: no per-method metrics found in {path}")
    methods = list(table)
    # Metrics every contender has, in first-seen order; counts and timings left out.
    metrics = [m for m in table[methods[0]] if all(m in table[x] for x in methods)
               and not any(w in m.lower() for w in ("users", "seconds", "time", "count", "n_"))]
    if not metrics:
        return _note(f"baselines.png skipped: the methods in {path} share no metric")
    metrics = metrics[:12]
    x = np.arange(len(metrics))
    w = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(metrics) + 2), 4.5))
    for i, name in enumerate(methods):
        ax.bar(x + (i - (len(methods) - 1) / 2) * w, [table[name][m] for m in metrics], w,
               label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(metrics, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("value")
    ax.legend(fontsize=8)
    ax.set_title(f"model against baselines ({os.path.basename(path)})")
    _save(fig, out, "baselines.png", dpi, written)


def _lift_from_h5(d, top, min_users):
    """(segment ids, item ids, lift matrix) recomputed from dataset.h5 and segments.h5."""
    with _open(os.path.join(d, "dataset.h5")) as ds, _open(os.path.join(d, "segments.h5")) as s:
        labels = _labels(s)
        indptr = np.asarray(ds["interactions/indptr"][:], dtype=np.int64)
        indices = np.asarray(ds["interactions/indices"][:], dtype=np.int64)
        items = [v.decode() if isinstance(v, bytes) else str(v) for v in ds["items/ids"][:]]
    n_users, n_items, k = len(labels), len(items), int(labels.max()) + 1
    if len(indptr) != n_users + 1:
        raise PlotError("dataset.h5 and segments.h5 hold different user counts", EXIT_INPUT)
    row_seg = np.repeat(labels, np.diff(indptr))
    counts = np.zeros((k, n_items), dtype=np.int64)  # users of segment s with item i
    np.add.at(counts, (row_seg, indices), 1)
    size = np.bincount(labels, minlength=k).astype(float)
    glob = counts.sum(axis=0) / max(n_users, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = (counts / size[:, None]) / glob[None, :]
    segs = [j for j in range(k) if size[j] > 0]
    cols = []
    for j in segs:  # columns: each segment's top items among those it has enough users of
        row = np.where(np.isfinite(lift[j]) & (counts[j] >= min_users), lift[j], -np.inf)
        for i in np.argsort(-row, kind="stable")[:top]:
            if np.isfinite(row[i]) and i not in cols:
                cols.append(int(i))
    return segs, [items[i] for i in cols], lift[np.ix_(segs, cols)] if cols else None


def _lift_from_json(d):
    with open(os.path.join(d, "segments.json"), encoding="utf-8") as f:
        doc = json.load(f)
    segs, cols, cells = [], [], {}
    for s in doc.get("segments", []):
        if not s.get("items"):
            continue
        segs.append(s["id"])
        for it in s["items"]:
            if it["item_id"] not in cols:
                cols.append(it["item_id"])
            cells[(s["id"], it["item_id"])] = it.get("lift")
    if not cols:
        return segs, cols, None
    mat = np.array([[cells.get((s, c)) if cells.get((s, c)) is not None else np.nan
                     for c in cols] for s in segs], dtype=float)
    return segs, cols, mat


def plot_lift(d, out, dpi, written, top=3, min_users=5, max_items=40):
    if all(os.path.exists(os.path.join(d, f)) for f in ("dataset.h5", "segments.h5")):
        segs, cols, mat = _lift_from_h5(d, top, min_users)
        source = "dataset.h5 + segments.h5"
    elif os.path.exists(os.path.join(d, "segments.json")):
        try:
            segs, cols, mat = _lift_from_json(d)
        except (OSError, ValueError, KeyError) as e:
            raise PlotError(f"cannot read {d}/segments.json: {e}", EXIT_INPUT)
        source = "segments.json"
    else:
        return _note("lift_heatmap.png skipped: needs dataset.h5 + segments.h5 or segments.json")
    if mat is None or not np.isfinite(mat).any():
        return _note("lift_heatmap.png skipped: no item reaches the minimum users per segment")
    cols, mat = cols[:max_items], mat[:, :max_items]
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(cols) + 3), max(3.5, 0.3 * len(segs) + 2)))
    im = ax.imshow(np.log2(np.clip(mat, 1e-3, None)), aspect="auto", cmap="RdBu_r",
                   vmin=-3, vmax=3, interpolation="nearest")
    ax.set_xticks(np.arange(len(cols)))
    ax.set_xticklabels([str(c)[:16] for c in cols], rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(segs)))
    ax.set_yticklabels([str(s) for s in segs], fontsize=7)
    ax.set_xlabel(f"item (top {top} by lift per segment; blue: rare or absent in the segment)"
                  if source.startswith("dataset") else "item (listed in the segment report)")
    ax.set_ylabel("segment")
    fig.colorbar(im, ax=ax, label="log2 lift (segment rate / overall rate)")
    ax.set_title(f"item lift by segment ({source})")
    _save(fig, out, "lift_heatmap.png", dpi, written)


def plot_report(d, out=None, eval_path=None, seed=42, sample=20000, dpi=100):
    """Writes every picture whose inputs are in `d`; returns the paths written."""
    if _IMPORT_ERROR is not None:
        raise PlotError(f"needs numpy, h5py and matplotlib: {_IMPORT_ERROR}", EXIT_MISSING_MODULE)
    if not os.path.isdir(d):
        raise PlotError(f"{d} is not a directory", EXIT_USAGE)
    out = out or os.path.join(d, "plots")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise PlotError(f"cannot create {out}: {e}", EXIT_OUTPUT)
    written = []
    plot_pca(d, out, dpi, seed, sample, written)
    plot_sizes(d, out, dpi, written)
    plot_sweep(d, out, dpi, written)
    plot_training(d, out, dpi, written)
    plot_baselines(d, out, dpi, eval_path, written)
    plot_lift(d, out, dpi, written)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="PNG pictures of a segrec run (see the module docstring for the list).")
    ap.add_argument("dir", help="directory with the run's outputs (dataset.h5, segments.h5, ...)")
    ap.add_argument("--out", help="where the PNGs go (default: DIR/plots)")
    ap.add_argument("--eval", dest="eval_path",
                    help="evaluation JSON (default: DIR/evaluation.json or DIR/report.json)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the user sample (default 42)")
    ap.add_argument("--sample", type=int, default=20000,
                    help="users drawn for the PCA scatter (default 20000)")
    ap.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    try:
        a = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else EXIT_OK
    if a.sample < 1 or a.dpi < 10:
        _note("--sample must be >= 1 and --dpi >= 10")
        return EXIT_USAGE
    try:
        written = plot_report(a.dir, a.out, a.eval_path, a.seed, a.sample, a.dpi)
    except PlotError as e:
        _note(str(e))
        return e.code
    for p in written:
        print(p)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
