#!/usr/bin/python3
"""pytorch_fedavg.py - a plain PyTorch FedAvg loop, the baseline fedc-sim is
measured against (bench/run.sh runs both side by side).

The setting is fedc-sim's default job: Fashion-MNIST, 100 clients with an iid
partition (a seeded shuffle of the 60,000 training rows, 600 rows each), 10
clients drawn per round, each training 1 epoch of minibatch SGD (batch 32,
shuffled) from the global model; the server averages the clients' state_dicts
weighted by their sample counts and evaluates the new global model on the
10,000 test images after every round.

It is written the way a competent PyTorch user would write it, not tuned
against fedc: the data is decoded once into float32 tensors in [0, 1] and
minibatches are taken by tensor indexing (no DataLoader worker processes),
one local model and one optimizer are reused for every client, and the
weighted average is accumulated client by client. Parallelism is PyTorch's
own intra-op threading (torch.set_num_threads).

Needs only Debian's python3-torch (torch 1.13) under /usr/bin/python3: no
numpy, no torchvision, no network.

  /usr/bin/python3 bench/pytorch_fedavg.py --model mlp --rounds 20 --json

With --json it prints one line per round and a final line, in the same shape
as `fedc-sim --json`:
  {"round":12,"test_acc":0.8312,"test_loss":0.4900,"train_loss":0.5100,
   "clients":10,"samples":6000,"secs":0.0040}
  {"final":true,"rounds":100,"test_acc":...,"test_loss":...,"secs":...,
   "sec_per_round":...,"setup_secs":...,"peak_rss_mb":...,"model":"softmax",
   "threads":2,"impl":"pytorch","torch":"1.13.0"}
"""
import argparse
import gzip
import os
import resource
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"


def load_idx_images(path):
    """IDX3 ubyte images -> float32 tensor [n, rows*cols] scaled to [0, 1]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise ValueError("%s: not an IDX3 ubyte file (magic 0x%08x)" % (path, magic))
    d = rows * cols
    if len(raw) != 16 + n * d:
        raise ValueError("%s: truncated (%d bytes for %d images)" % (path, len(raw), n))
    # bytearray: frombuffer wants a writable buffer
    px = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8)
    return px.view(n, d).to(torch.float32).div_(255.0)


def load_idx_labels(path):
    """IDX1 ubyte labels -> int64 tensor [n]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise ValueError("%s: not an IDX1 ubyte file (magic 0x%08x)" % (path, magic))
    if len(raw) != 8 + n:
        raise ValueError("%s: truncated" % path)
    return torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8).to(torch.int64)


def build_model(kind, d_in, hidden, n_classes):
    if kind == "softmax":
        return nn.Linear(d_in, n_classes)
    layers, prev = [], d_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_classes))
    return nn.Sequential(*layers)


def iid_partition(n_rows, n_clients, gen):
    """Seeded shuffle of the row indices, cut into equal contiguous slices."""
    perm = torch.randperm(n_rows, generator=gen)
    per = n_rows // n_clients
    return [perm[i * per:(i + 1) * per] for i in range(n_clients)]


def train_local(model, opt, x, y, rows, epochs, batch, gen):
    """Local SGD on one client's rows; returns (loss summed over samples, seen)."""
    model.train()
    loss_sum = torch.zeros(())
    seen = 0
    for _ in range(epochs):
        order = rows[torch.randperm(rows.numel(), generator=gen)]
        for b in range(0, order.numel(), batch):
            idx = order[b:b + batch]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * idx.numel()
            seen += idx.numel()
    return float(loss_sum), seen


@torch.no_grad()
def evaluate(model, x, y, batch):
    model.eval()
    loss_sum, correct = 0.0, 0
    for b in range(0, x.shape[0], batch):
        logits = model(x[b:b + batch])
        yb = y[b:b + batch]
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=1) == yb).sum())
    return loss_sum / x.shape[0], correct / x.shape[0]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description="Plain PyTorch FedAvg on Fashion-MNIST "
                                 "(the baseline for fedc-sim).")
    ap.add_argument("--model", choices=["softmax", "mlp"], default="softmax")
    ap.add_argument("--hidden", default="200,200",
                    help="hidden layer sizes of the mlp (default 200,200)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--eval-batch", type=int, default=1000,
                    help="evaluation batch (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--json", action="store_true",
                    help="one JSON line per round, then a final one")
    a = ap.parse_args()
    if a.rounds < 1 or a.threads < 1 or a.per_round < 1 or a.clients < a.per_round:
        ap.error("need rounds >= 1, threads >= 1, 1 <= per-round <= clients")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    t0 = time.perf_counter()
    p = lambda name: os.path.join(a.data, name)
    x_tr = load_idx_images(p("train-images-idx3-ubyte.gz"))
    y_tr = load_idx_labels(p("train-labels-idx1-ubyte.gz"))
    x_te = load_idx_images(p("t10k-images-idx3-ubyte.gz"))
    y_te = load_idx_labels(p("t10k-labels-idx1-ubyte.gz"))
    n_classes = int(y_tr.max()) + 1
    hidden = [int(h) for h in a.hidden.split(",") if h]

    gen = torch.Generator().manual_seed(a.seed)
    parts = iid_partition(x_tr.shape[0], a.clients, gen)

    global_model = build_model(a.model, x_tr.shape[1], hidden, n_classes)
    local_model = build_model(a.model, x_tr.shape[1], hidden, n_classes)
    opt = torch.optim.SGD(local_model.parameters(), lr=a.lr)
    setup = time.perf_counter() - t0

    t_rounds = time.perf_counter()
    acc = loss = float("nan")
    for rnd in range(1, a.rounds + 1):
        t_r = time.perf_counter()
        selected = torch.randperm(a.clients, generator=gen)[:a.per_round].tolist()
        global_sd = global_model.state_dict()
        agg = {k: torch.zeros_like(v) for k, v in global_sd.items()}
        total = sum(parts[c].numel() for c in selected)
        train_loss, train_seen = 0.0, 0
        for c in selected:
            local_model.load_state_dict(global_sd)
            ls, seen = train_local(local_model, opt, x_tr, y_tr, parts[c],
                                   a.epochs, a.batch, gen)
            train_loss += ls
            train_seen += seen
            weight = parts[c].numel() / total
            with torch.no_grad():
                for k, v in local_model.state_dict().items():
                    agg[k].add_(v, alpha=weight)
        global_model.load_state_dict(agg)
        loss, acc = evaluate(global_model, x_te, y_te, a.eval_batch)
        secs = time.perf_counter() - t_r
        tl = train_loss / train_seen if train_seen else 0.0
        if a.json:
            print('{"round":%d,"test_acc":%.4f,"test_loss":%.4f,"train_loss":%.4f,'
                  '"clients":%d,"samples":%d,"secs":%.4f}'
                  % (rnd, acc, loss, tl, len(selected), total, secs), flush=True)
        else:
            print("round %d/%d  test_acc %.4f  test_loss %.4f  train_loss %.4f  "
                  "%.4f s" % (rnd, a.rounds, acc, loss, tl, secs),
                  file=sys.stderr, flush=True)
    secs = time.perf_counter() - t_rounds
    if a.json:
        print('{"final":true,"rounds":%d,"test_acc":%.4f,"test_loss":%.4f,'
              '"secs":%.3f,"sec_per_round":%.5f,"setup_secs":%.3f,'
              '"peak_rss_mb":%.1f,"model":"%s","threads":%d,"impl":"pytorch",'
              '"torch":"%s"}'
              % (a.rounds, acc, loss, secs, secs / a.rounds, setup, peak_rss_mb(),
                 a.model, a.threads, torch.__version__), flush=True)
    else:
        print("final test accuracy %.4f after %d rounds; %.4f s/round; "
              "setup %.2fs; peak RSS %.0f MB"
              % (acc, a.rounds, secs / a.rounds, setup, peak_rss_mb()),
              file=sys.stderr)


if __name__ == "__main__":
    main()
