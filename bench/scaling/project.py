#!/usr/bin/python3
"""Projection of segrec's per-step times to 10^6..10^8 users on 1..64 nodes, from the
measurements of bench/scaling/run.sh (docs/scaling.md explains the model).

  alpha, beta     fitted to the allreduce ping between test hosts (TCP): latency per
                  message; the bandwidth term is replaced by the target network's
  compute         fitted to the 1-rank runs: K-means seconds per (user x centroid x dim),
                  training seconds per (sample x parameter), memory per user
Assumptions (printed with the table): CORES cores per node used as threads of one rank
(K-means assignment is threaded; training is assumed to reach the same per-core rate),
intra-node reduction free, 100 Gb/s links, Rabenseifner allreduce
t = 2 ceil(log2 N) alpha + 2 (N-1)/N n beta.
usage: project.py results.jsonl [--cores 32] [--gbps 100] [--alpha-us A]"""
import argparse
import json
import math

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("--cores", type=int, default=32)
ap.add_argument("--gbps", type=float, default=100.0)
ap.add_argument("--alpha-us", type=float, default=None, help="override the fitted latency")
ap.add_argument("--k", type=int, default=64)
ap.add_argument("--h", type=int, default=64)
ap.add_argument("--items", type=int, default=20000)
ap.add_argument("--hidden", type=int, default=600)
ap.add_argument("--batch-per-node", type=int, default=500)
a = ap.parse_args()
rows = [json.loads(l) for l in open(a.results) if l.strip()]

# --- alpha from the ping (2 ranks: t = 2 alpha + n beta_tcp; fastest repetition, as the
# machine is shared and the median carries other jobs' scheduling delays) -----------------
ping = [(r["bytes"], r["min_s"]) for r in rows if r["bench"] == "allreduce" and r["ranks"] == 2]
x = np.array([b for b, _ in ping], float)
y = np.array([t for _, t in ping], float)
A = np.stack([np.ones_like(x), x], 1) / y[:, None]
c0, c1 = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
alpha_fit = c0 / 2
alpha = a.alpha_us * 1e-6 if a.alpha_us is not None else alpha_fit
beta = 8 / (a.gbps * 1e9)

def allreduce(n_bytes, nodes):
    if nodes == 1:
        return 0.0
    return 2 * math.ceil(math.log2(nodes)) * alpha + 2 * (nodes - 1) / nodes * n_bytes * beta

# --- compute constants from the single-rank runs ----------------------------------------
one = [r for r in rows if r["bench"] in ("weak", "strong") and r["ranks"] == 1]
c_km = np.median([r["kmeans_s_per_iter"] / (r["users"] * r["kmeans_k"] * r["kmeans_h"]) for r in one])
c_tr = np.median([r["train_epoch_s"] / (r["train_users"] * r["train_params"]) for r in one])
# memory: peak over the stages against users on the rank (1-rank runs), linear fit
mu = np.array([r["users"] for r in one], float)
mm = np.array([max(v for v in r["peak_mib"].values() if v) for r in one], float)
m_slope, m0 = np.polyfit(mu, mm, 1) if len(set(mu)) > 1 else (mm[0] / mu[0], 0.0)

k, h = a.k, a.h
km_bytes = 8 * (k * h + k + 2)
params = 2 * a.items * a.hidden + a.hidden + a.items
tr_bytes = 4 * (params + 2)
print(f"fitted: alpha = {alpha_fit*1e6:.1f} us (TCP between namespace hosts)"
      + (f", projected with alpha = {alpha*1e6:.1f} us" if a.alpha_us is not None else "")
      + f"; K-means {c_km*1e12:.1f} ps per user x centroid x dim "
      f"({2/c_km/1e9:.1f} GFLOP/s per core); training {c_tr*1e9:.2f} ns per sample x parameter; "
      f"memory {m0:.0f} MiB + {m_slope*1024:.2f} KiB per user")
print(f"assumed: {a.cores} cores per node, {a.gbps:g} Gb/s (beta = {beta*1e12:.0f} ps/B), "
      f"K-means k = {k}, h = {h} ({km_bytes} B allreduce per iteration); model "
      f"{a.items} items, hidden {a.hidden} ({params/1e6:.1f} M parameters, {tr_bytes/2**20:.0f} MiB "
      f"gradient allreduce per step), {a.batch_per_node} samples per node per step")
print()
print("| users | nodes | K-means s/iter | K-means eff. | train step s (comm share) | train s/epoch | "
      "train eff. (fp32) | train eff. (fp16 + overlap) | train eff. (global batch fixed) | "
      "memory/rank GiB |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for users in (10**6, 10**7, 10**8):
    km1 = c_km * users * k * h / a.cores
    for nodes in (1, 2, 4, 8, 16, 32, 64):
        km_c = km1 / nodes
        km_t = km_c + allreduce(km_bytes, nodes)
        km_eff = km1 / (nodes * km_t)
        # Weak scaling of the batch: batch_per_node samples per node per step.
        step_c = c_tr * a.batch_per_node * params / a.cores
        step_comm = allreduce(tr_bytes, nodes)
        step_t = step_c + step_comm
        steps = math.ceil(0.9 * users / (a.batch_per_node * nodes))
        tr_eff = step_c / step_t
        # fp16 gradients halve the bytes; overlapping with the backward pass (2/3 of
        # the compute) hides communication up to that much.
        hidden = max(0.0, allreduce(tr_bytes / 2, nodes) - step_c * 2 / 3)
        tr_eff16 = step_c / (step_c + hidden)
        # The same model with the global batch fixed at batch_per_node (the default 500):
        # per-node compute shrinks with the nodes, the gradient allreduce does not.
        fixed_c = step_c / nodes
        fixed_eff = fixed_c / (fixed_c + step_comm) if nodes > 1 else 1.0
        mem = (m0 + m_slope * users / nodes) / 1024 + 5 * 4 * params / 2**30
        print(f"| {users:.0e} | {nodes} | {km_t:.4g} | {100*km_eff:.0f}% | {step_t:.3g} "
              f"({100*step_comm/step_t:.0f}%) | {steps*step_t:.4g} | {100*tr_eff:.0f}% | "
              f"{100*tr_eff16:.0f}% | {100*fixed_eff:.0f}% | {mem:.1f} |")
