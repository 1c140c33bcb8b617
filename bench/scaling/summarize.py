#!/usr/bin/python3
"""Tables from bench/scaling/run.sh results (JSON lines): allreduce ping with an
alpha-beta fit, then weak and strong scaling per stage step.
usage: summarize.py results.jsonl"""
import json
import sys

import numpy as np

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]

print("## Allreduce between test hosts (TCP), time of the slowest rank, median")
print("| ranks | bytes | median us | min us | bytes sent/call (Comm::stats) |")
print("|---:|---:|---:|---:|---:|")
for r in rows:
    if r["bench"] == "allreduce":
        print(f"| {r['ranks']} | {r['bytes']} | {r['median_s']*1e6:.1f} | {r['min_s']*1e6:.1f} | "
              f"{r['bytes_sent_per_call']} |")
for p in sorted({r["ranks"] for r in rows if r["bench"] == "allreduce"}):
    pts = [(r["bytes"], r["median_s"]) for r in rows if r["bench"] == "allreduce" and r["ranks"] == p]
    x = np.array([b for b, _ in pts], float)
    y = np.array([t for _, t in pts], float)
    # Ring/Rabenseifner allreduce: t = 2 log2(P) alpha + 2 (P-1)/P * n * beta; fit
    # t = a + b n by least squares weighted by 1/t (relative error).
    A = np.stack([np.ones_like(x), x], 1) / y[:, None]
    a, b = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
    alpha = a / (2 * np.log2(p)) if p > 1 else a
    beta = b / (2 * (p - 1) / p) if p > 1 else b
    print(f"\nfit P={p}: t(n) = {a*1e6:.1f} us + n / {1/b/1e6:.0f} MB/s  ->  "
          f"alpha = {alpha*1e6:.1f} us per message, link bandwidth 1/beta = {1/beta/1e9:.2f} GB/s")

for kind in ("weak", "strong"):
    sel = [r for r in rows if r["bench"] == kind]
    if not sel:
        continue
    print(f"\n## {kind} scaling")
    print("| where | ranks | users | users/rank | PCA s/pass | PCA bytes/X^T pass | "
          "K-means s/iter | K-means bytes/iter | train s/epoch | train bytes/step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in sel:
        print(f"| {r['where']} | {r['ranks']} | {r['users']} | {r['users_per_rank']} | "
              f"{r['pca_s_per_pass']:.4f} | {r['pca_bytes_per_xt_pass']} | "
              f"{r['kmeans_s_per_iter']:.4f} | {r['kmeans_bytes_per_iter']} | "
              f"{r['train_epoch_s']:.3f} | {r['train_bytes_per_step']} |")
