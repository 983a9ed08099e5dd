#!/usr/bin/python3
"""scaffold_external_tests.py - an external trainer in a SCAFFOLD job
(docs/trainers.md#scaffold-jobs), with real processes on loopback.

  - a softmax job on Fashion-MNIST, 3 rounds: sites 1 and 2 on the built-in
    trainer, site 3 on the numpy trainer (tests/integration/trainers/
    numpy_trainer.py, which applies FEDC_CORRECTION_IN with
    fedc.apply_correction and reports its steps) reading site 1's shard.
    Full-batch steps make the order of the rows irrelevant, so site 3's
    update of every round must equal site 1's (the built-in trainer's, same
    data and correction) up to float32 rounding, and a numpy reference of
    the corrected steps from the model and correction it was given; the
    correction it was given is c - c_i, c the server variate of the last
    committed round and c_i the site's variate recomputed from its earlier
    models, updates and reported steps (and kept in its state_dir); every
    round commits with the three sites.
  - a trainer that reports no step count in a SCAFFOLD round fails that
    round (logged, reported to the coordinator), and the job goes on.

Runs under /usr/bin/python3 (numpy); skipped when that has no numpy.
"""
import gzip
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Job, Skip, Suite, read_safetensors  # noqa: E402

PY = "/usr/bin/python3"
TRAINER = os.path.join(ROOT, "tests/integration/trainers/numpy_trainer.py")
SIZE = 300
EPOCHS = 3
LR = 0.05

try:
    import numpy as np
except ImportError:  # reported as a skip by each case
    np = None


def extra(samples):
    return f"[strategy]\nname = scaffold\nvariate_samples = {samples}\n"


def full_batch(job):
    """Every site's batch is its whole shard: one step an epoch, the row
    order irrelevant."""
    with open(job.coord_ini) as f:
        text = f.read()
    with open(job.coord_ini, "w") as f:
        f.write(text.replace("batch_size = 32\n", f"batch_size = {SIZE}\n"))


def start(job, k, external=None, args=""):
    """Client k with a [client] state_dir; external: the data folder of the
    numpy trainer's shard (else the built-in trainer on its own)."""
    path = job.client_ini(k)
    with open(path, "a") as f:
        f.write(f"state_dir = {os.path.join(job.dir, f'state-{k}')}\n")
        if external:
            cmd = f"PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {external} {args}".strip()
            f.write(f"[trainer]\ncommand = {cmd}\ntimeout_s = 60\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", path], stdout=log,
                         stderr=log)
    job.procs.append(p)
    return p


def log_of(job, k):
    with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
        return f.read()


def close(job):
    for p in job.procs:
        if p.poll() is None:
            p.terminate()
    for p in job.procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    job.close()


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def tensors(blob, prefix=""):
    """name -> float64 array of the tensors named prefix + name."""
    t, _ = read_safetensors(blob)
    return {n[len(prefix):]: np.array(a, dtype=np.float64).reshape(s)
            for n, (s, a) in t.items() if n.startswith(prefix) and
            (prefix or not n.startswith(("variate.", "prev.")))}


def load(path, prefix=""):
    with open(path, "rb") as f:
        return tensors(f.read(), prefix)


def reference(x, corr, data, steps):
    """The corrected full-batch steps in float64, from model x."""
    W, b = x["layers.0.weight"].copy(), x["layers.0.bias"].copy()
    for _ in range(steps):
        z = data[0] @ W.T + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(data[1])), data[1]] -= 1.0
        W -= LR * ((p.T @ data[0]) / len(data[1]) + corr["layers.0.weight"])
        b -= LR * (p.sum(axis=0) / len(data[1]) + corr["layers.0.bias"])
    return {"layers.0.weight": W, "layers.0.bias": b}


def maxdiff(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_external_site_applies_the_correction():
    if np is None:
        raise Skip(f"{sys.executable} has no numpy (apt-get install python3-numpy)")
    rounds = 3
    job = Job("scaffold-ext", 3, sizes=[SIZE] * 3, rounds=rounds, epochs=EPOCHS,
              extra=extra(3 * SIZE))
    full_batch(job)
    keep = os.path.join(job.dir, "keep")
    os.makedirs(keep)
    shard = os.path.join(job.dir, "data", "client-1")
    try:
        job.allow_all()
        job.start_coordinator()
        procs = [start(job, 1), start(job, 2), start(job, 3, shard, f"--keep {keep}")]
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=150) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == rounds
        st = job.status()
        assert all(r["clients"] == 3 for r in st["rounds"]), st["rounds"]
        data = (read_idx(os.path.join(shard, "train-images.idx")).reshape(-1, 784) / 255.0,
                read_idx(os.path.join(shard, "train-labels.idx")).astype(np.int64))
        ckpt = job.checkpoints()
        first = load(os.path.join(keep, "round-1-model.safetensors"))
        zero = {k: np.zeros_like(v) for k, v in first.items()}
        ci = dict(zero)  # site 3's c_i, recomputed
        worst_builtin = worst_ref = 0.0
        for r in range(1, rounds + 1):
            x = load(os.path.join(keep, f"round-{r}-model.safetensors"))
            corr = load(os.path.join(keep, f"round-{r}-correction.safetensors"))
            y = load(os.path.join(keep, f"round-{r}.safetensors"))
            with open(os.path.join(keep, f"round-{r}-metrics.json")) as f:
                steps = json.load(f)["steps"]
            assert steps == EPOCHS, f"round {r}: the trainer reported {steps} steps"
            # the correction handed over: c of round r - 1, less c_i
            c = tensors(ckpt[r - 1][0], "variate.") if r > 1 else zero
            assert set(corr) == set(x) and all(corr[k].shape == x[k].shape for k in x)
            want = {k: c[k] - ci[k] for k in c}
            scale = max(float(np.abs(v).max()) for v in want.values())
            assert maxdiff(corr, want) <= 1e-4 * scale + 1e-7, \
                f"round {r}: the correction is not c - c_i ({maxdiff(corr, want):.3g})"
            if r > 1:
                assert scale > 1e-3, f"round {r}: the correction is {scale:.3g}, no test"
            # the update: the numpy reference of the corrected steps ...
            ref = reference(x, corr, data, steps)
            worst_ref = max(worst_ref, maxdiff(y, ref))
            assert maxdiff(y, ref) < 1e-5, f"round {r}: {maxdiff(y, ref):.3g} from the reference"
            if r > 1:  # ... which the correction moves well beyond that
                plain = reference(x, zero, data, steps)
                assert maxdiff(plain, ref) > 1e-3, f"round {r}: {maxdiff(plain, ref):.3g}"
            # ... and the built-in trainer's on the same shard and correction
            builtin = load(os.path.join(job.dir, "updates-1", f"round-{r}.safetensors"))
            worst_builtin = max(worst_builtin, maxdiff(y, builtin))
            assert maxdiff(y, builtin) < 1e-4, \
                f"round {r}: {maxdiff(y, builtin):.3g} from the built-in trainer's update"
            # c_i+ = c_i - c + (x - y) / (K lr), as the client computes it
            ci = {k: ci[k] - c[k] + (x[k] - y[k]) / (steps * LR) for k in ci}
        files = os.listdir(os.path.join(job.dir, "state-3"))
        assert len(files) == 1 and files[0].startswith("scaffold-"), files
        kept = load(os.path.join(job.dir, "state-3", files[0]))
        scale = max(float(np.abs(v).max()) for v in ci.values())
        assert maxdiff(kept, ci) <= 1e-4 * scale, f"c_i kept: {maxdiff(kept, ci):.3g} off"
        assert 'msg="update accepted"' in log_of(job, 3)
        print(f"       site 3 vs the numpy reference {worst_ref:.2e}, vs the built-in "
              f"trainer {worst_builtin:.2e} (max abs. difference over {rounds} rounds)")
    finally:
        close(job)


def test_missing_steps_fail_the_round():
    if np is None:
        raise Skip(f"{sys.executable} has no numpy (apt-get install python3-numpy)")
    job = Job("scaffold-nosteps", 3, sizes=[200] * 3, rounds=3, min_clients=2,
              round_timeout_s=60, extra=extra(600))
    try:
        job.allow_all()
        job.start_coordinator()
        shard = os.path.join(job.dir, "data", "client-3")
        procs = [start(job, 1), start(job, 2), start(job, 3, shard, "--fail nosteps@2")]
        for k, p in enumerate(procs, 1):
            assert p.wait(timeout=150) == 0, f"client {k} did not finish with exit 0"
        assert job.committed() == 3
        ids = job.client_ids()
        k_of = {ids[job.fingerprint(k)]: k for k in (1, 2, 3)}
        for r, want in ((1, {1, 2, 3}), (2, {1, 2}), (3, {1, 2, 3})):
            sent = {k_of[cid] for cid, _, _ in job.updates_of(r)}
            assert sent == want, f"round {r}: updates from {sorted(sent)}"
        lines = [ln for ln in log_of(job, 3).splitlines() if "trainer failed" in ln]
        assert len(lines) == 1 and "round=2" in lines[0] and "steps is missing" in lines[0], lines
        c = [c for c in job.status()["clients"] if c["fingerprint"] == job.fingerprint(3)][0]
        assert c["trainer_failures"] == 1 and c["last_failure_round"] == 2, c
    finally:
        close(job)


if __name__ == "__main__":
    suite = Suite("scaffold_external_tests")
    only = sys.argv[1:]
    for fn in (test_external_site_applies_the_correction, test_missing_steps_fail_the_round):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
