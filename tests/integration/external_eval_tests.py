#!/usr/bin/python3
"""external_eval_tests.py - federated evaluation by external trainers:
three sites whose [trainer] command and [trainer] evaluate are the numpy
trainer (tests/integration/trainers/numpy_trainer.py, softmax regression on
a Fashion-MNIST shard), in a softmax job with [eval] every = 1. Each
evaluate command writes FEDC_PREDICTIONS_OUT (probabilities [N, 10]; labels
I64 at two sites, F32 at the third); fedc-client makes the evaluation
report from it with the library's code and posts it (POST /v1/eval). The
federation's metrics in /v1/status must match a recomputation in numpy of
the pooled predictions of the exported model on the three shards: n and
the confusion matrix exactly, accuracy, macro F1 and log loss within 1e-4.
The evaluate command runs once per model: ROUNDS + 1 times per site (the
committed model of round r is evaluated for the report and, as round
r + 1's start model, before training, by one run).
Needs numpy under /usr/bin/python3.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Job, Skip, Suite  # noqa: E402

PY = "/usr/bin/python3"
ROOT = harness.ROOT
TRAINER = os.path.join(ROOT, "tests/integration/trainers/numpy_trainer.py")
SIZES = [300, 400, 500]
ROUNDS = 3

try:
    import numpy as np
except ImportError:
    np = None


def start_site(job, k):
    path = job.client_ini(k)
    data = os.path.join(job.dir, "data", f"client-{k}")
    run = f"PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data}"
    # the evaluate command appends a line to evals-k.txt each time it runs
    count = f"echo $FEDC_ROUND >> {job.dir}/evals-{k}.txt; "
    with open(path, "a") as f:
        f.write(f"[trainer]\ncommand = {run}\ntimeout_s = 60\n"
                f"evaluate = {count}{run}{' --f32-labels' if k == 3 else ''}\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(harness.BIN, "fedc-client"), "--config", path],
                         stdout=log, stderr=log)
    job.procs.append(p)
    return p


def pooled(job, rnd):
    """The exported model of round rnd on the three shards: probabilities
    (float32, as the evaluator writes them) and labels."""
    out = os.path.join(job.dir, f"round-{rnd}.safetensors")
    r = job.coordinator_cmd("export", str(rnd), out)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        t, _ = harness.read_safetensors(f.read())
    W = np.array(t["layers.0.weight"][1], dtype=np.float32).reshape(10, 784)
    b = np.array(t["layers.0.bias"][1], dtype=np.float32)
    ps, ys = [], []
    for k in range(1, 4):
        d = os.path.join(job.dir, "data", f"client-{k}")
        x = harness_idx(os.path.join(d, "train-images.idx")).reshape(-1, 784) / 255.0
        y = harness_idx(os.path.join(d, "train-labels.idx")).astype(np.int64)
        z = x @ W.T.astype(np.float64) + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        ps.append(p.astype(np.float32))
        ys.append(y)
    return np.concatenate(ps), np.concatenate(ys)


def harness_idx(path):
    import struct
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def test_external_federated_evaluation():
    if np is None:
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = Job("exteval", 3, sizes=SIZES, rounds=ROUNDS, poll_s=1)
    try:
        with open(job.coord_ini, "a") as f:
            f.write("[eval]\nevery = 1\nfraction = 1\nselect = accuracy\nper_site = true\n"
                    "deadline_s = 30\n")
        job.allow_all()
        job.start_coordinator()
        procs = [start_site(job, k) for k in range(1, 4)]
        job.wait_for(lambda: (job.status() or {}).get("state") == "finished"
                     and len((job.status().get("eval") or {}).get("rounds", [])) == ROUNDS,
                     120, "the job and its evaluations")
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=60) == 0, f"client {k} did not finish with exit 0"
        st = job.status()
        ev = st["eval"]
        last = ev["last"]
        sites = ev.get("sites") or []
        assert len(sites) == 3, sites
        assert sorted(s["n"] for s in sites) == SIZES, sites
        p, y = pooled(job, last["round"])
        pred = p.argmax(axis=1)
        conf = np.zeros((10, 10), dtype=np.int64)
        np.add.at(conf, (y, pred), 1)
        acc = float((pred == y).mean())
        f1s = []
        for c in range(10):
            tp = conf[c, c]
            prec = tp / conf[:, c].sum() if conf[:, c].sum() else 0.0
            rec = tp / conf[c, :].sum() if conf[c, :].sum() else 0.0
            f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
        macro = float(np.mean([f for c, f in enumerate(f1s) if conf[c, :].sum()]))
        loss = float(-np.log(np.maximum(p[np.arange(len(y)), y].astype(np.float64), 1e-15)).mean())
        print(f"    round {last['round']}: n {last['n']}, accuracy fedc {last['accuracy']:.6f} "
              f"numpy {acc:.6f}, macro F1 {last['macro_f1']:.6f} / {macro:.6f}, "
              f"log loss {last['log_loss']:.6f} / {loss:.6f}", flush=True)
        assert last["n"] == len(y) == sum(SIZES), (last["n"], len(y))
        assert np.array_equal(np.array(last["confusion"]), conf), "confusion matrices differ"
        assert abs(last["accuracy"] - acc) <= 1e-4, (last["accuracy"], acc)
        assert abs(last["macro_f1"] - macro) <= 1e-4, (last["macro_f1"], macro)
        assert abs(last["log_loss"] - loss) <= 1e-4, (last["log_loss"], loss)
        for k in range(1, 4):
            with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
                text = f.read()
            assert text.count('msg="evaluation accepted"') == ROUNDS, f"site {k}: {text[-1500:]}"
            # ROUNDS evaluations before training (the start models of rounds 1..ROUNDS) and
            # ROUNDS federated ones (the committed models of rounds 1..ROUNDS): the committed
            # model of round r starts round r + 1, so ROUNDS + 1 models, one run each
            assert text.count('msg="global model evaluated"') == ROUNDS, f"site {k}: {text[-1500:]}"
            with open(os.path.join(job.dir, f"evals-{k}.txt")) as f:
                runs = f.read().split()
            assert len(runs) == ROUNDS + 1, f"site {k}: the evaluate command ran {len(runs)} " \
                f"times (rounds {runs}), not {ROUNDS + 1}"
            # and the one run gives both the same figures: the accuracy logged before
            # training round r + 1 is the site's reported accuracy of round r
            pre = {int(r): float(a) for r, a in
                   re.findall(r'msg="global model evaluated" round=(\d+) test_acc=([0-9.]+)', text)}
            rep = {int(r): float(a) for r, a in
                   re.findall(r'msg="site evaluation" round=(\d+) metrics=.*?"accuracy\\?":([0-9.e-]+)',
                              text)}
            for r in range(1, ROUNDS):
                assert r + 1 in pre and r in rep and abs(pre[r + 1] - rep[r]) <= 1e-4, \
                    f"site {k}: round {r + 1} before training {pre.get(r + 1)}, " \
                    f"round {r} reported {rep.get(r)}"
    finally:
        for p in job.procs:
            if p.poll() is None:
                p.terminate()
        job.close()


if __name__ == "__main__":
    s = Suite("external_eval")
    s.run(test_external_federated_evaluation)
    s.finish()
