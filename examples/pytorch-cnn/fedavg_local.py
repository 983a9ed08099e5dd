#!/usr/bin/python3
"""fedavg_local.py - the same federation in one process, without fedc: the
CNN, 4 iid shards of Fashion-MNIST, each round every site trains from the
global model with train.py's loop and the models are averaged (equal
shards: a plain mean). A reference for the accuracy run.py should reach,
since fedc's averaging is exact (README.md, "Figures").

    fedavg_local.py [--rounds 10] [--epochs 2] [--lr 0.02]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn import Net, load_set, threads  # noqa: E402
from train import train  # noqa: E402

FMNIST = os.environ.get("FEDC_FMNIST", "/usr/share/datasets/fashion-mnist")

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=10)
ap.add_argument("--epochs", type=int, default=2)
ap.add_argument("--lr", type=float, default=0.02)
ap.add_argument("--sites", type=int, default=4)
a = ap.parse_args()
threads()
x, y = load_set(f"{FMNIST}/train-images-idx3-ubyte.gz", f"{FMNIST}/train-labels-idx1-ubyte.gz")
xt, yt = load_set(f"{FMNIST}/t10k-images-idx3-ubyte.gz", f"{FMNIST}/t10k-labels-idx1-ubyte.gz")
perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
size = len(y) // a.sites
shards = [perm[i * size:(i + 1) * size] for i in range(a.sites)]
torch.manual_seed(1)
g = Net()
hp = {"epochs": a.epochs, "batch_size": 32, "lr": a.lr, "momentum": 0.9}
print("round  test_acc  secs")
for r in range(1, a.rounds + 1):
    t0 = time.time()
    states = []
    for k, s in enumerate(shards):
        n = Net()
        n.load_state_dict(g.state_dict())
        train(n, x[s], y[s], hp, 1000 * r + k)
        states.append(n.state_dict())
    g.load_state_dict({k: sum(sd[k] for sd in states) / len(states) for k in states[0]})
    g.eval()
    with torch.no_grad():
        acc = float((g(xt).argmax(1) == yt).float().mean())
    print(f"{r:5d}  {acc:8.4f}  {time.time() - t0:5.1f}", flush=True)
