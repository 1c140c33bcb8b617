"""GRU4Rec-style peer of `segrec train --model-kind sequence` in PyTorch (CPU).

Reads MovieLens u.data (user, item, rating, time), orders each user's events by (time, item)
like segrec ingest, and trains the same network on the same windows: item embedding (D) ->
GRU (D) -> scores over all items (separate output embedding + bias), full softmax
cross-entropy at every position of each user's last L + 1 events, Adam, batches of users.
Prints one line: events/s (predicted events per second of training steps) and the loss.
  torch_gru_peer.py U.DATA --max-len L --dim D --batch-size B --epochs E --lr LR --threads T
"""
import _fairblas  # noqa: F401  (sets OPENBLAS_CORETYPE, re-executes)
import argparse
import time
from collections import defaultdict

import numpy as np
import torch

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--max-len", type=int, default=50)
ap.add_argument("--dim", type=int, default=64)
ap.add_argument("--batch-size", type=int, default=128)
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)

ev = defaultdict(list)
items = {}
with open(a.data) as f:
    for line in f:
        u, i, _, t = line.split()
        ev[u].append((float(t), i))
for u in ev:
    for _, i in ev[u]:
        items.setdefault(i, len(items))
windows = []
for u in sorted(ev):
    # segrec's windows: at most L + 1 events from the last one back, sharing one event.
    full = [items[i] for _, i in sorted(ev[u])]
    for end in range(len(full), 1, -a.max_len):
        windows.append(full[max(0, end - a.max_len - 1):end])
n_items = len(items)
T = max(len(w) for w in windows) - 1
X = np.zeros((len(windows), T), dtype=np.int64)
Y = np.full((len(windows), T), -100, dtype=np.int64)
for k, w in enumerate(windows):
    X[k, : len(w) - 1] = w[:-1]
    Y[k, : len(w) - 1] = w[1:]
X, Y = torch.from_numpy(X), torch.from_numpy(Y)
targets = int((Y >= 0).sum())


class Gru4Rec(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(n_items, a.dim)
        self.gru = torch.nn.GRU(a.dim, a.dim, batch_first=True)
        self.out = torch.nn.Linear(a.dim, n_items)

    def forward(self, x):
        h, _ = self.gru(self.emb(x))
        return self.out(h)


net = Gru4Rec()
opt = torch.optim.Adam(net.parameters(), lr=a.lr)
loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="mean")
g = torch.Generator().manual_seed(a.seed)
seconds = 0.0
for epoch in range(a.epochs):
    perm = torch.randperm(len(windows), generator=g)
    total = 0.0
    for s in range(0, len(windows), a.batch_size):
        idx = perm[s : s + a.batch_size]
        t0 = time.perf_counter()
        x, y = X[idx], Y[idx]
        L = int((y >= 0).sum(1).max())  # pad to the batch's longest window, like segrec
        logits = net(x[:, :L])
        loss = loss_fn(logits.reshape(-1, n_items), y[:, :L].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        total += float(loss) * int((y >= 0).sum())
print(f"torch GRU4Rec: {targets * a.epochs / seconds:.0f} events/s "
      f"({a.epochs} epochs of {targets} events, {seconds:.2f} s in steps, "
      f"{a.threads} threads); last epoch loss {total / targets:.4f}")
