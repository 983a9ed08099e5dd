#!/usr/bin/python3
"""train.py - the site's trainer, run by fedc-client ([trainer] command) for
each round: the global model into the CNN, local SGD on the site's shard
with the job's hyper-parameters, the update and its metrics out
(docs/trainers.md). With action "evaluate" (run as [trainer] evaluate) it
scores the global model on --test and writes predictions instead.

    train.py --images train-images.idx --labels train-labels.idx
    train.py --images t10k-images-idx3-ubyte.gz --labels ... (evaluate)
"""
import argparse
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cnn import Net, load_set, threads  # noqa: E402

import fedc  # noqa: E402


def train(net, x, y, hp, seed):
    opt = torch.optim.SGD(net.parameters(), lr=float(hp.get("lr", 0.05)),
                          momentum=float(hp.get("momentum", 0.0)))
    bs = int(hp.get("batch_size", 32))
    g = torch.Generator().manual_seed(seed % (2**63))
    loss_fn = nn.CrossEntropyLoss()
    net.train()
    total, seen, right = 0.0, 0, 0
    for _ in range(int(hp.get("epochs", 1))):
        order = torch.randperm(len(y), generator=g)
        for s in range(0, len(y), bs):
            idx = order[s:s + bs]
            opt.zero_grad()
            out = net(x[idx])
            loss = loss_fn(out, y[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            seen += len(idx)
            right += int((out.argmax(1) == y[idx]).sum())
    return total / seen, right / seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--limit", type=int, default=0, help="use the first N rows only")
    a = ap.parse_args()
    threads()
    t = fedc.task()
    net = Net()
    fedc.load_state_dict(net, t.model_in)
    x, y = load_set(a.images, a.labels, a.limit)
    t0 = time.time()
    if t.action == "evaluate":
        net.eval()
        with torch.no_grad():
            scores = torch.softmax(net(x), 1)
        loss = float(nn.functional.nll_loss(torch.log(scores + 1e-12), y))
        fedc.save_predictions(scores, y, metrics={"test_loss": loss})
        return
    loss, acc = train(net, x, y, t.hparams, t.seed)
    fedc.save_update(net.state_dict(), num_samples=len(y), train_loss=loss,
                     metrics={"train_accuracy": acc, "secs": time.time() - t0})


if __name__ == "__main__":
    main()
