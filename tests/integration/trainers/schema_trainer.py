#!/usr/bin/python3
"""schema_trainer.py - an external trainer for a job with a schema
(tests/integration/external_stats_tests.py): it reads its CSV by the job's
schema and standardizes it with the federation's statistics through the
fedc package (fedc.read_table, fedc.standardize), then trains logistic
regression with the job's hyper-parameters.

    schema_trainer.py --csv FILE [--keep DIR]

--keep: write the standardized inputs of each round there (round-R.npy).
"""
import argparse
import os

import numpy as np

import fedc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--keep", default="")
    a = ap.parse_args()
    t = fedc.task()
    x, y = fedc.read_table(a.csv, t)
    z = fedc.standardize(x, t)
    if a.keep:
        np.save(os.path.join(a.keep, f"round-{t.round}.npy"), z)
    w = fedc.load_model()
    W = w["layers.0.weight"].astype(np.float64).reshape(-1)
    b = float(w["layers.0.bias"][0])
    hp = t.hparams
    lr, bs = float(hp.get("lr", 0.1)), int(hp.get("batch_size", 16))
    rng = np.random.default_rng(t.seed)
    loss_sum = 0.0
    for _ in range(int(hp.get("epochs", 1))):
        order = rng.permutation(len(y))
        for s in range(0, len(y), bs):
            i = order[s:s + bs]
            p = 1.0 / (1.0 + np.exp(-(z[i] @ W + b)))
            loss_sum += float(-(y[i] * np.log(p + 1e-12) + (1 - y[i]) * np.log(1 - p + 1e-12)).sum())
            g = p - y[i]
            W -= lr * (z[i].T @ g) / len(i)
            b -= lr * g.mean()
    w["layers.0.weight"] = W.reshape(1, -1).astype(np.float32)
    w["layers.0.bias"] = np.array([b], dtype=np.float32)
    fedc.save_update(w, num_samples=len(y), train_loss=loss_sum / len(y) / int(hp.get("epochs", 1)))


if __name__ == "__main__":
    main()
