#!/usr/bin/python3
"""torch_trainer.py - bank D's own trainer for the fraud-consortium tutorial
(docs/tutorials/fraud-consortium.md), run by fedc-client as its external
trainer ([trainer] command and evaluate; docs/trainers.md).

The bank trains the federation's model (a logreg job: one nn.Linear; an mlp
job: nn.Linear layers with ReLU between) with its own PyTorch code on its own
CSV. It reads the rows as the job's schema says (columns by name, one-hot
categories in the schema's order), standardizes them with the federation's
statistics from the job object (job.stats mean and std: the same transform
every other bank applies), weights each row's loss as [train] class_weight
says (balanced: n / (K n_c) from the federation's label counts), and trains
[train] epochs of minibatch SGD with the job's lr and momentum. A share of
its rows (--holdout, drawn with the job's seed) never trains: the evaluate
action scores them and writes the predictions, from which fedc-client makes
the bank's federated-evaluation report.

    torch_trainer.py --data bank-d.csv [--holdout 0.2]
"""
import argparse
import csv
import json

import numpy as np
import torch

import fedc


def read_rows(path, schema):
    """The CSV as the schema's inputs (float64) and labels."""
    cats = schema.get("categorical", {})
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    col = {h.strip(): i for i, h in enumerate(rows[0])}
    x, y = [], []
    for r in rows[1:]:
        if not r:
            continue
        v = []
        for name in schema["features"]:
            s = r[col[name]].strip()
            v += [float(s == c) for c in cats[name]] if name in cats else [float(s)]
        x.append(v)
        y.append(float(r[col[schema["label"]]]))
    return np.array(x), np.array(y)


class Net(torch.nn.Module):
    """layers.0 .. layers.L-1, the names fedc gives a dense model's tensors."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.relu(x)
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--holdout", type=float, default=0.2)
    a = ap.parse_args()
    t = fedc.task()
    job = t.job
    if t.model.get("type") not in ("logreg", "mlp") or "stats" not in job:
        raise SystemExit("torch_trainer: needs a logreg or mlp job with a schema and its statistics")
    x, y = read_rows(a.data, job["schema"])
    st = job["stats"]
    mean, std = np.array(st["mean"]), np.array(st["std"])
    x = (x - mean) / np.where(std > 0, std, 1.0)
    # the held-out rows: the same every round (the job's seed)
    order = np.random.default_rng(int(job.get("seed", 1))).permutation(len(y))
    cut = int(len(y) * a.holdout)
    hold, train = order[:cut], order[cut:]

    w = fedc.load_model()
    sizes = [w["layers.0.weight"].shape[1]] + \
        [w[f"layers.{i}.weight"].shape[0] for i in range(len(w) // 2)]
    net = Net(sizes)
    fedc.load_state_dict(net)
    multi = t.model["type"] == "mlp"

    if t.action == "evaluate":
        with torch.no_grad():
            out = net(torch.tensor(x[hold], dtype=torch.float32))
            scores = torch.softmax(out, 1) if multi else torch.sigmoid(out[:, 0])
        fedc.save_predictions(scores.numpy(), y[hold].astype(np.int64))
        return

    hp = t.hparams
    counts = np.array(st["label_counts"], dtype=np.float64)
    cw = str(hp.get("class_weight", "none"))
    if cw == "balanced":
        cls_w = counts.sum() / (len(counts) * np.maximum(counts, 1))
    elif cw == "none":
        cls_w = np.ones(len(counts))
    else:
        cls_w = np.array([float(v) for v in cw.split(",")])
    if not multi:
        cls_w[1] *= float(hp.get("pos_weight", 1.0))
    torch.manual_seed(t.seed % (1 << 63))
    opt = torch.optim.SGD(net.parameters(), lr=float(hp["lr"]),
                          momentum=float(hp.get("momentum", 0.0)))
    xt = torch.tensor(x[train], dtype=torch.float32)
    yt = torch.tensor(y[train], dtype=torch.float32)
    rw = torch.tensor(cls_w[y[train].astype(np.int64)], dtype=torch.float32)
    bs = int(hp.get("batch_size", 32))
    total, seen = 0.0, 0
    for _ in range(int(hp.get("epochs", 1))):
        perm = torch.randperm(len(yt))
        for s in range(0, len(yt), bs):
            i = perm[s:s + bs]
            out = net(xt[i])
            if multi:
                loss = torch.nn.functional.cross_entropy(out, yt[i].long(), reduction="none")
            else:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    out[:, 0], yt[i], reduction="none")
            loss = (loss * rw[i]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(i)
            seen += len(i)
    print(json.dumps({"bank": "torch_trainer", "round": t.round, "rows": len(train),
                      "train_loss": round(total / max(seen, 1), 4)}), flush=True)
    fedc.save_update(net.state_dict(), num_samples=len(train), train_loss=total / max(seen, 1))


if __name__ == "__main__":
    main()
