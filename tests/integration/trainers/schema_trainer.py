#!/usr/bin/python3
"""schema_trainer.py - an external trainer for a logreg job with a schema
(tests/integration/external_eval_tests.py), numpy only: it reads the site's
CSV by the job's schema (numeric features, columns by name), standardizes
with the federation's statistics from the job object, holds out the first
--holdout share of the rows, trains one epoch of minibatch SGD on the rest
(train) or writes its predictions of the held-out rows (evaluate).

    schema_trainer.py --data FILE.csv [--holdout 0.2]
"""
import argparse
import csv

import numpy as np

import fedc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--holdout", type=float, default=0.2)
    a = ap.parse_args()
    t = fedc.task()
    schema, st = t.job["schema"], t.job["stats"]
    with open(a.data, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in schema["features"]] for r in rows])
    y = np.array([float(r[schema["label"]]) for r in rows])
    std = np.array(st["std"])
    x = (x - np.array(st["mean"])) / np.where(std > 0, std, 1.0)
    cut = int(len(y) * a.holdout)
    w = fedc.load_model()
    W, b = w["layers.0.weight"].astype(np.float64), w["layers.0.bias"].astype(np.float64)
    if t.action == "evaluate":
        p = 1.0 / (1.0 + np.exp(-(x[:cut] @ W[0] + b[0])))
        fedc.save_predictions(p.astype(np.float32), y[:cut].astype(np.int64))
        return
    hp = t.hparams
    lr, bs = float(hp["lr"]), int(hp["batch_size"])
    xs, ys = x[cut:], y[cut:]
    loss = 0.0
    for s in range(0, len(ys), bs):
        xb, yb = xs[s:s + bs], ys[s:s + bs]
        p = 1.0 / (1.0 + np.exp(-(xb @ W[0] + b[0])))
        loss += float(-(yb * np.log(p + 1e-12) + (1 - yb) * np.log(1 - p + 1e-12)).sum())
        W[0] -= lr * (p - yb) @ xb / len(yb)
        b[0] -= lr * float((p - yb).mean())
    fedc.save_update({"layers.0.weight": W, "layers.0.bias": b}, num_samples=len(ys),
                     train_loss=loss / len(ys))


if __name__ == "__main__":
    main()
