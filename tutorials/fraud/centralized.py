#!/usr/bin/python3
"""centralized.py - the yardstick of the fraud-consortium tutorial: the same
model (logistic regression on the same standardized inputs, merchant one-hot,
balanced class weights) fitted by scikit-learn on the four banks' rows
pooled, which no bank may do in practice, scored on test.csv like the
federated models.

    centralized.py DATADIR [--threshold 0.8]

Prints the figures of score.py. Exit 77 when scikit-learn is missing.
"""
import argparse
import csv
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import score  # noqa: E402

MERCHANTS = ["grocery", "fuel", "restaurant", "travel", "online", "electronics", "atm"]
NUMERIC = ["amount", "hour", "card_present", "distance_km", "tx_24h", "amount_ratio",
           "new_merchant"]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array([[float(r[c]) for c in NUMERIC] + [float(r["merchant"] == m) for m in MERCHANTS]
                  for r in rows])
    return x, np.array([int(r["is_fraud"]) for r in rows])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--threshold", type=float, default=0.8)
    a = ap.parse_args()
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("centralized.py: no scikit-learn (python3-sklearn): skipped")
        sys.exit(77)
    parts = [load(os.path.join(a.data, f"bank-{b}.csv")) for b in "abcd"]
    x = np.vstack([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    mean, std = x.mean(0), x.std(0)
    m = LogisticRegression(class_weight="balanced", max_iter=5000).fit((x - mean) / std, y)
    xt, yt = load(os.path.join(a.data, "test.csv"))
    p = m.predict_proba((xt - mean) / std)[:, 1]
    f = score.figures(p, yt.astype(float), a.threshold)
    print(f"PR AUC {f['pr_auc']:.3f}  ROC AUC {f['roc_auc']:.3f}  at {f['threshold']}: "
          f"precision {f['precision']:.3f} recall {f['recall']:.3f} "
          f"({f['caught']} of {f['frauds']} frauds, {f['alerts']} alerts)")


if __name__ == "__main__":
    main()
