#!/usr/bin/env python3
"""fedbuff_tests.py - FedBuff over the wire: a coordinator and four
fedc-client processes on loopback with mutual TLS, one of them slow
(FEDC_TEST_TRAIN_DELAY_S, a test hook of fedc-client).

  - the fast sites are never held back: steps are committed from their
    updates alone while the slow site trains, and the slow site's update
    still counts later, weighted by its staleness;
  - a kill -9 of the coordinator mid-job: every step committed before it
    is intact (same checkpoint bytes) and the job finishes;
  - the committed steps are what the simulator's engine computes for the
    same arrival order: each step replayed here from the clients' kept
    updates, in the order the store recorded them, with the engine's
    arithmetic (delta against the base version in float32, staleness
    weight 1/sqrt(1 + tau), FedAvg's 2^-32 fixed point, x + server_lr
    (avg - x)), bit for bit.
"""
import math
from fractions import Fraction
import os
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite, read_safetensors  # noqa: E402

BUFFER_K = 3
STEPS = 12
SLOW_S = 1.0
FAST_S = 0.2
F32 = struct.Struct("<f")


def f32(x):
    return F32.unpack(F32.pack(x))[0]


def f32_bits(f):
    return struct.unpack("<i", F32.pack(f))[0]


def f32_from_bits(i):
    return F32.unpack(struct.pack("<i", i))[0]


def f32_add(a, b):
    """a + b in float32 arithmetic (one rounding): the double sum is exact
    unless its rounding error e is not zero; then the exact value is
    rounded to float32 by comparing the neighbours of the candidate."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    if e == 0.0:
        return f32(s)
    exact = Fraction(a) + Fraction(b)
    c = f32(s)
    best = None
    for cand in (f32_from_bits(f32_bits(c) - 1), c, f32_from_bits(f32_bits(c) + 1)):
        dist = abs(Fraction(cand) - exact)
        if best is None or dist < best[0] or (dist == best[0] and f32_bits(cand) % 2 == 0):
            best = (dist, cand)
    return best[1]


def vec(blob):
    """The flat model vector of a container (model tensors only)."""
    t, meta = read_safetensors(blob)
    names = sorted((n for n in t if n.startswith("layers.")),
                   key=lambda s: (int(s.split(".")[1]), s.endswith("bias")))
    out = []
    for n in names:
        out.extend(t[n][1])
    return out, meta


def replay_step(x, updates, version):
    """One FedBuff step as the engine computes it: updates = [(w, base)]
    in arrival order, x the model of `version`, bases' models in models."""
    acc = [0] * len(x)
    for w, xb, base in updates:
        tau = version - base
        weight = 1.0 / math.sqrt(1.0 + tau)
        for i in range(len(x)):
            d = f32_add(w[i], -xb[i])
            y = f32_add(d, x[i]) if weight == 1.0 else f32(x[i] + weight * d)
            acc[i] += round(y * 4294967296.0)
    scale = math.ldexp(1.0, -32) / len(updates)
    return [f32(a * scale) for a in acc]  # server_lr 1: x = avg


def test_fedbuff_slow_site_and_kill9():
    extra = f"[strategy]\nname = fedbuff\nbuffer_k = {BUFFER_K}\n"
    job = Job("fedbuff", 4, sizes=[400, 400, 400, 400], rounds=STEPS, extra=extra,
              min_clients=1, round_timeout_s=30)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k, env={"FEDC_TEST_TRAIN_DELAY_S": str(FAST_S)})
                   for k in (1, 2, 3)]
        clients.append(job.start_client(4, env={"FEDC_TEST_TRAIN_DELAY_S": str(SLOW_S)}))
        ids = job.client_ids()
        slow = ids[job.fingerprint(4)]
        job.wait_for(lambda: job.committed() >= 3, 60, "step 3")
        # the fast sites stepped without the slow one
        for r in (1, 2):
            assert slow not in [u[0] for u in job.updates_of(r)], f"step {r} waited for the slow site"
        job.wait_for(lambda: job.committed() >= 5, 60, "step 5")
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        before = {r: sha for r, (_, sha) in job.checkpoints().items()}
        assert 5 <= max(before) < STEPS, f"{max(before)} steps committed before the kill"
        job.start_coordinator()
        for k, p in enumerate(clients, 1):
            rc = p.wait(timeout=120)
            assert rc == 0, f"client {k} exited with {rc}"
        ckpt = job.checkpoints()
        assert max(ckpt) == STEPS, sorted(ckpt)
        for r, sha in before.items():
            assert ckpt[r][1] == sha, f"step {r} changed across the restart"
        steps_with_slow = [r for r in range(1, STEPS + 1) if slow in [u[0] for u in job.updates_of(r)]]
        assert steps_with_slow, "the slow site's updates never counted"
        # the replay: every step from the kept updates, in arrival order
        kept = {}
        for k in (1, 2, 3, 4):
            d = os.path.join(job.dir, f"updates-{k}")
            for name in os.listdir(d):
                with open(os.path.join(d, name), "rb") as f:
                    w, meta = vec(f.read())
                kept[(ids[job.fingerprint(k)], meta["sha256"])] = (w, int(meta["round"]) - 1)
        models = {r: vec(blob)[0] for r, (blob, _) in ckpt.items()}
        stale = 0
        with job.db() as con:
            for s in range(1, STEPS + 1):
                rows = list(con.execute("SELECT client_id, sha256 FROM updates WHERE round = ? "
                                        "ORDER BY received_at", (s,)))
                assert len(rows) == BUFFER_K, (s, rows)
                ups = []
                for cid, sha in rows:
                    w, base = kept[(cid, sha)]
                    ups.append((w, models[base], base))
                    stale += base < s - 1
                got = replay_step(models[s - 1], ups, s - 1)
                assert got == models[s], f"step {s} is not the engine's FedBuff step"
        assert stale > 0, "no stale update was replayed"
        print(f"       {STEPS} steps replayed bit for bit; {stale} stale updates; "
              f"the slow site counted in steps {steps_with_slow}")
    finally:
        job.close(keep=bool(os.environ.get("FEDC_KEEP")))


if __name__ == "__main__":
    suite = Suite("fedbuff_tests")
    only = sys.argv[1:]
    for fn in (test_fedbuff_slow_site_and_kill9,):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
