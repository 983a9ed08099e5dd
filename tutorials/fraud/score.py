#!/usr/bin/python3
"""score.py - a model's figures on the held-out transactions, for the
fraud-consortium tutorial: fedc-predict's predictions (its `score` column,
P(fraud)) against test.csv's is_fraud, numpy only.

    score.py predictions.csv test.csv [--threshold 0.8] [--json]

prints PR AUC (average precision: the mean, over the frauds, of the
precision among transactions scored at least as high), ROC AUC, and
precision, recall and alerts at the threshold.
"""
import argparse
import csv
import json

import numpy as np


def column(path, name):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return np.array([float(row[name]) for row in r])


def figures(s, y, threshold):
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    k = np.arange(1, len(y) + 1)
    last = np.r_[s[1:] != s[:-1], True]        # ties: precision at the end of each run
    prec = tp / k
    idx = np.flatnonzero(last)
    run_prec = np.repeat(prec[idx], np.diff(np.r_[-1, idx]))
    ap = float((run_prec * y).sum() / y.sum())
    ranks = np.empty(len(s))
    ranks[np.argsort(s, kind="stable")] = np.arange(1, len(s) + 1)
    for v in np.unique(s[~last | np.r_[False, ~last[:-1]]]):   # average ranks of ties
        m = s == v
        ranks[m] = ranks[m].mean()
    pos = y == 1
    auc = float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))
    alert = s >= threshold
    hit = int((alert & pos).sum())
    return {"pr_auc": ap, "roc_auc": auc, "threshold": threshold,
            "precision": hit / max(int(alert.sum()), 1), "recall": hit / int(pos.sum()),
            "alerts": int(alert.sum()), "caught": hit, "frauds": int(pos.sum())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("predictions")
    ap.add_argument("test")
    ap.add_argument("--threshold", type=float, default=0.8)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    f = figures(column(a.predictions, "score"), column(a.test, "is_fraud"), a.threshold)
    if a.json:
        print(json.dumps(f))
    else:
        print(f"PR AUC {f['pr_auc']:.3f}  ROC AUC {f['roc_auc']:.3f}  at {f['threshold']}: "
              f"precision {f['precision']:.3f} recall {f['recall']:.3f} "
              f"({f['caught']} of {f['frauds']} frauds, {f['alerts']} alerts)")


if __name__ == "__main__":
    main()
