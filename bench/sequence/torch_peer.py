#!/usr/bin/python3
"""PyTorch sequence recommenders (CPU): SASRec-style and GRU4Rec-style peers.

Temporal leave-last-out on an event log: each user's items in time order (ties in log order,
repeated items kept once, at their first occurrence); the last is the test target, the one
before it the validation target, the rest is training history; users with fewer than 3
distinct items only train. Every position of a training sequence predicts the next item
(softmax over all items). Evaluation ranks every item (no sampled negatives), excluding the
user's earlier items, and prints HR@10, NDCG@10 and MRR on the validation and test targets,
and the training throughput in target positions per second.

Usage: torch_peer.py EVENTS.csv [--model sasrec|gru] [--max-len 50] [--dim 64] [--blocks 2]
       [--epochs 200] [--patience 10] [--batch 128] [--lr 1e-3] [--threads 2] [--seed 1] [--min-rating 0]
EVENTS.csv: header naming user_id, item_id and timestamp columns (comma or tab separated),
or MovieLens u.data (user, item, rating, timestamp; tab separated, no header).
"""
import _fairblas  # noqa: F401
import argparse, json, time, sys
import numpy as np
import pandas as pd
import torch

ap = argparse.ArgumentParser()
ap.add_argument("events")
ap.add_argument("--model", default="sasrec", choices=["sasrec", "gru"])
ap.add_argument("--max-len", type=int, default=50)
ap.add_argument("--dim", type=int, default=64)
ap.add_argument("--blocks", type=int, default=2)
ap.add_argument("--heads", type=int, default=1)
ap.add_argument("--dropout", type=float, default=0.2)
ap.add_argument("--epochs", type=int, default=200)
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--lr", type=float, default=1e-3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--min-rating", type=float, default=0)
ap.add_argument("--patience", type=int, default=10)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
np.random.seed(a.seed)


def read_log(path):
    if path.endswith("u.data"):
        df = pd.read_csv(path, sep="\t", names=["user_id", "item_id", "rating", "timestamp"])
        if a.min_rating > 0:
            df = df[df.rating >= a.min_rating]
        return df
    sep = "\t" if open(path).readline().count("\t") else ","
    return pd.read_csv(path, sep=sep, dtype={"user_id": str, "item_id": str})


df = read_log(a.events)
df["order"] = np.arange(len(df))
df = df.sort_values(["user_id", "timestamp", "order"], kind="stable")
df = df.drop_duplicates(["user_id", "item_id"], keep="first")
items = np.sort(df.item_id.unique())
item_index = {x: i + 1 for i, x in enumerate(items)}  # 0 = padding
n_items = len(items)
seqs = [np.array([item_index[x] for x in g.item_id]) for _, g in df.groupby("user_id", sort=True)]
train, val, test = [], [], []
for s in seqs:
    if len(s) >= 3:
        train.append(s[:-2]); val.append((s[:-2], s[-2])); test.append((s[:-1], s[-1]))
    else:
        train.append(s)
L = a.max_len


def windows(seq_list):
    """Training windows of length L+1 (inputs L, targets shifted by one), left-padded."""
    out = []
    for s in seq_list:
        if len(s) < 2:
            continue
        for end in range(len(s), 1, -L):
            w = s[max(0, end - L - 1):end]
            out.append(np.pad(w, (L + 1 - len(w), 0)))
    return torch.tensor(np.stack(out), dtype=torch.long)


W = windows(train)
n_targets = int((W[:, 1:] > 0).logical_and(W[:, :-1] > 0).sum())


class SASRec(torch.nn.Module):
    def __init__(s):
        super().__init__()
        d = a.dim
        s.emb = torch.nn.Embedding(n_items + 1, d, padding_idx=0)
        s.pos = torch.nn.Embedding(L, d)
        layer = torch.nn.TransformerEncoderLayer(d, a.heads, d, a.dropout, batch_first=True,
                                                 norm_first=True)
        s.enc = torch.nn.TransformerEncoder(layer, a.blocks, enable_nested_tensor=False)
        s.norm = torch.nn.LayerNorm(d)
        s.drop = torch.nn.Dropout(a.dropout)
        s.register_buffer("mask", torch.triu(torch.full((L, L), float("-inf")), 1))

    def forward(s, x):  # x: B x L item indices -> B x L x d
        # Left padding: the causal mask alone keeps real positions off the padding's outputs
        # (a key-padding mask would leave the padding rows with nothing to attend to: NaN).
        keep = (x > 0).unsqueeze(-1)
        h = s.drop((s.emb(x) * a.dim ** 0.5 + s.pos.weight[None]) * keep)
        return s.norm(s.enc(h, mask=s.mask)) * keep


class GRU4Rec(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = torch.nn.Embedding(n_items + 1, a.dim, padding_idx=0)
        s.gru = torch.nn.GRU(a.dim, a.dim, batch_first=True)
        s.drop = torch.nn.Dropout(a.dropout)

    def forward(s, x):
        return s.gru(s.drop(s.emb(x)))[0]


model = SASRec() if a.model == "sasrec" else GRU4Rec()
# Small embeddings: with the output tied to them, N(0, 1) would start at huge logits.
torch.nn.init.normal_(model.emb.weight, std=a.dim ** -0.5)
opt = torch.optim.Adam(model.parameters(), a.lr)


def logits(h):  # h: ... x d -> ... x (n_items + 1), tied output embedding
    return h @ model.emb.weight.T


def evaluate(pairs):
    model.eval()
    hr = nd = mrr = 0.0
    with torch.no_grad():
        for i in range(0, len(pairs), 512):
            chunk = pairs[i:i + 512]
            x = torch.tensor(np.stack([np.pad(h[-L:], (L - len(h[-L:]), 0)) for h, _ in chunk]))
            z = logits(model(x)[:, -1])
            z[:, 0] = -np.inf
            for r, (h, _) in enumerate(chunk):
                z[r, torch.tensor(h)] = -np.inf
            t = torch.tensor([y for _, y in chunk])
            rank = (z > z[torch.arange(len(chunk)), t][:, None]).sum(1).numpy()  # 0-based
            hr += (rank < 10).sum()
            nd += (1 / np.log2(rank + 2) * (rank < 10)).sum()
            mrr += (1 / (rank + 1)).sum()
    n = len(pairs)
    return {"hr10": hr / n, "ndcg10": nd / n, "mrr": mrr / n}


best, best_state, bad, train_s, history = -1, None, 0, 0.0, []
for epoch in range(a.epochs):
    model.train()
    perm = torch.randperm(len(W))
    t0 = time.perf_counter()
    for i in range(0, len(W), a.batch):
        w = W[perm[i:i + a.batch]]
        x, y = w[:, :-1], w[:, 1:]
        keep = (x > 0) & (y > 0)
        z = logits(model(x)[keep])
        loss = torch.nn.functional.cross_entropy(z, y[keep])
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s += time.perf_counter() - t0
    if not torch.isfinite(loss):
        sys.exit(f"torch_peer: the loss is {float(loss)} in epoch {epoch + 1}")
    v = evaluate(val)
    history.append(v["ndcg10"])
    if v["ndcg10"] > best:
        best, bad = v["ndcg10"], 0
        best_state = {k: t.clone() for k, t in model.state_dict().items()}
    else:
        bad += 1
        if bad >= a.patience:
            break
    print(f"epoch {epoch + 1}: loss {float(loss):.4f} val ndcg@10 {v['ndcg10']:.4f}", file=sys.stderr)
model.load_state_dict(best_state)
epochs_run = len(history)
print(json.dumps({
    "peer": "torch-" + a.model, "torch": torch.__version__, "threads": a.threads,
    "users": len(seqs), "items": n_items, "eval_users": len(test), "max_len": L, "dim": a.dim,
    "epochs": epochs_run, "best_epoch": int(np.argmax(history)) + 1,
    "train_s": round(train_s, 2),
    "targets_per_s": round(n_targets * epochs_run / train_s),
    "val": {k: round(float(x), 4) for k, x in evaluate(val).items()},
    "test": {k: round(float(x), 4) for k, x in evaluate(test).items()},
}))
