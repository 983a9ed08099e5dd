#!/usr/bin/python3
"""numpy_trainer.py - an external trainer for the integration tests
(tests/integration/trainer_tests.py), written with the fedc Python package.

Dense jobs (softmax): minibatch SGD of softmax regression on the site's
IDX shard, with the job's hyper-parameters. Tensor jobs: every float
tensor moves by a step that depends on the round and the site, integer
tensors count the rounds, so that the test can recompute the average.

    numpy_trainer.py --data DIR [--fail MODE@ROUND] [--samples N] [--keep DIR] [--f32-labels]

SCAFFOLD jobs: each minibatch gradient gets the round's correction
(fedc.apply_correction) and the update reports its step count.

--fail makes the trainer misbehave in one round: exit (status 3), hang
(sleeps past any deadline), nan (a NaN in the update), shape (a tensor of
the wrong shape), nosamples (no num_samples anywhere), nosteps (no step
count, in a SCAFFOLD round). --keep copies the update of each round there,
and in a SCAFFOLD job its model, correction and metrics too.
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np

import fedc


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def train_softmax(w, x, y, hp, seed, corr=None):
    """Minibatch SGD; corr: SCAFFOLD's correction, added to each
    minibatch gradient. The mean loss and the number of steps."""
    W = w["layers.0.weight"].astype(np.float64)
    b = w["layers.0.bias"].astype(np.float64)
    lr, bs = float(hp.get("lr", 0.05)), int(hp.get("batch_size", 32))
    rng = np.random.default_rng(seed)
    loss_sum, seen, steps = 0.0, 0, 0
    for _ in range(int(hp.get("epochs", 1))):
        order = rng.permutation(len(y))
        for s in range(0, len(y), bs):
            idx = order[s:s + bs]
            xb, yb = x[idx], y[idx]
            z = xb @ W.T + b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            loss_sum += float(-np.log(p[np.arange(len(yb)), yb] + 1e-12).sum())
            seen += len(yb)
            p[np.arange(len(yb)), yb] -= 1.0
            g = {"layers.0.weight": (p.T @ xb) / len(yb), "layers.0.bias": p.sum(axis=0) / len(yb)}
            g = fedc.apply_correction(g, corr)
            W -= lr * g["layers.0.weight"]
            b -= lr * g["layers.0.bias"]
            steps += 1
    w["layers.0.weight"] = W.astype(np.float32)
    w["layers.0.bias"] = b.astype(np.float32)
    return loss_sum / max(seen, 1), steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="")
    ap.add_argument("--fail", default="")
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--f32-labels", action="store_true",
                    help="evaluate: write the labels as F32 (else I64)")
    ap.add_argument("--keep", default="", help="a folder for a copy of each update written")
    ap.add_argument("--fail-once", default="",
                    help="a marker file: fail only while it does not exist (then make it)")
    a = ap.parse_args()
    t = fedc.task()
    mode, _, at = a.fail.partition("@")
    failing = mode and int(at or 0) == t.round
    if failing and a.fail_once:
        if os.path.exists(a.fail_once):
            failing = False
        else:
            open(a.fail_once, "w").close()
    if failing and mode == "exit":
        print(f"numpy_trainer: failing round {t.round} on purpose", file=sys.stderr)
        sys.exit(3)
    if failing and mode == "hang":
        time.sleep(3600)
    w = fedc.load_model()
    if t.action == "evaluate":
        # the global model on the site's own rows: predictions and a loss
        x = read_idx(os.path.join(a.data, "train-images.idx")).reshape(-1, 784) / 255.0
        y = read_idx(os.path.join(a.data, "train-labels.idx")).astype(np.int64)
        z = x @ w["layers.0.weight"].T.astype(np.float64) + w["layers.0.bias"]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
        fedc.save_predictions(p, y.astype(np.float32) if a.f32_labels else y,
                              metrics={"test_loss": loss})
        return
    if t.model.get("type") == "tensors" or not a.data:
        # a tensor job: a step every site and round makes differently
        n = a.samples or 100
        step = 0.01 * (t.round + 1) * (1 + n % 7)
        for k, v in w.items():
            if np.issubdtype(v.dtype, np.floating):
                w[k] = (v.astype(np.float32) + step * np.cos(np.arange(v.size) + n).reshape(v.shape)
                        ).astype(v.dtype)
            else:
                w[k] = v + t.round
        loss = 1.0 / (t.round + 1)
    else:
        x = read_idx(os.path.join(a.data, "train-images.idx")).reshape(-1, 784) / 255.0
        y = read_idx(os.path.join(a.data, "train-labels.idx")).astype(np.int64)
        n = len(y)
        corr = t.correction()
        if a.keep and corr is not None:
            import shutil
            shutil.copy(t.model_in, os.path.join(a.keep, f"round-{t.round}-model.safetensors"))
            shutil.copy(t.correction_in,
                        os.path.join(a.keep, f"round-{t.round}-correction.safetensors"))
        loss, steps = train_softmax(w, x, y, t.hparams, t.seed, corr)
    if failing and mode == "nan":
        first = next(iter(w))
        w[first] = w[first].copy()
        w[first].flat[3] = np.nan
    if failing and mode == "shape":
        first = next(iter(w))
        w[first] = np.zeros((2, 2), dtype=np.float32)
    if failing and mode == "nosamples":
        fedc.st.save(t.update_out, w)
        return
    if failing and mode == "nosteps":
        fedc.save_update(w, num_samples=n, train_loss=loss, path=t.update_out)
        return
    scaffold = t.correction_in is not None
    fedc.save_update(w, num_samples=n, train_loss=loss, steps=steps if scaffold else None)
    if a.keep:
        import shutil
        shutil.copy(t.update_out, os.path.join(a.keep, f"round-{t.round}.safetensors"))
        if scaffold:
            shutil.copy(t.metrics_out, os.path.join(a.keep, f"round-{t.round}-metrics.json"))


if __name__ == "__main__":
    main()
