#!/usr/bin/env python3
"""scaffold_tests.py - SCAFFOLD over the wire: a coordinator and three
fedc-client processes on loopback with mutual TLS.

  - an uninterrupted job, then the same job with a kill -9 of the
    coordinator after round 2 and a kill -9 and restart of one client (with
    its [client] state_dir): both end on exactly the same model and server
    control variate (the committed checkpoint, bit for bit);
  - the server variate is sent with the model ("variate." tensors), moves
    from zero, and is stored with each round; each client keeps its own in
    its state_dir;
  - an update whose variate delta is missing or not finite is refused with
    its own error before it touches the round.
"""
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Suite, read_safetensors  # noqa: E402
from coordinator_tests import encode  # noqa: E402

EXTRA = "[strategy]\nname = scaffold\nvariate_samples = 3000\n"


def start_client(job, k, state):
    """A client with [client] state_dir = state (the harness's config plus
    that key: [client] is the file's last section)."""
    ini = job.client_ini(k)
    with open(ini, "a") as f:
        f.write(f"state_dir = {state}\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini],
                         stdout=log, stderr=log)
    job.procs.append(p)
    return p


def final(job):
    ckpt = job.checkpoints()
    return read_safetensors(ckpt[max(ckpt)][0])[0]


def new_job(name):
    return Job(name, 3, sizes=[1000, 1000, 1000], rounds=4, extra=EXTRA, model="mlp",
               hidden="32", epochs=1)


def test_scaffold_restarts_end_on_the_same_model():
    job = new_job("scaffold")
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [start_client(job, k, os.path.join(job.dir, f"state-a-{k}")) for k in (1, 2, 3)]
        for p in clients:
            assert p.wait(timeout=120) == 0
        clean = final(job)
        names = set(clean)
        assert any(n.startswith("variate.") for n in names), names
        c = [x for n, (_, a) in clean.items() if n.startswith("variate.") for x in a]
        assert any(x != 0.0 for x in c), "the server variate never moved"
        for k in (1, 2, 3):
            state = os.path.join(job.dir, f"state-a-{k}")
            files = os.listdir(state)
            assert len(files) == 1 and files[0].startswith("scaffold-"), files
        with job.db() as con:
            assert con.execute("SELECT COUNT(*) FROM opt_state").fetchone()[0] == 4
        job.coordinator.send_signal(signal.SIGTERM)
        assert job.coordinator.wait(timeout=10) == 0
        # the same sites on a new store and new state folders: a crash of
        # the coordinator after round 2, and client 1 killed and restarted
        job.store = os.path.join(job.dir, "second.db")
        job.write_coordinator_config()
        job.allow_all()
        job.start_coordinator()
        states = {k: os.path.join(job.dir, f"state-b-{k}") for k in (1, 2, 3)}
        clients = {k: start_client(job, k, states[k]) for k in (1, 2, 3)}
        job.wait_for(lambda: job.committed() >= 1, 120, "round 1")
        clients[1].send_signal(signal.SIGKILL)
        clients[1].wait()
        clients[1] = start_client(job, 1, states[1])
        job.wait_for(lambda: job.committed() >= 2, 120, "round 2")
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        with job.db() as con:
            done = con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        assert 2 <= done < 4, f"{done} rounds committed before the kill"
        job.start_coordinator()
        for p in clients.values():
            assert p.wait(timeout=120) == 0
        crashed = final(job)
        assert set(crashed) == names
        for n in sorted(names):
            assert crashed[n] == clean[n], f"{n} differs after the restarts"
    finally:
        job.close()


def test_scaffold_update_checks():
    job = new_job("scaffold-bad")
    try:
        job.allow_all()
        job.start_coordinator()
        # two clients train; the third slot is taken by hand-made updates
        for k in (2, 3):
            start_client(job, k, os.path.join(job.dir, f"state-{k}"))
        # client 1 joins and polls by hand, so that round 1 opens with it
        status, body = job.request("POST", "/v1/join", b"{}")
        assert status == 200, body
        jobj = json.loads(body)["job"]
        assert jobj["strategy"] == {"name": "scaffold"}, jobj
        job.wait_for(lambda: (job.request("GET", "/v1/task?wait=1")[1] or b"").find(b"train") >= 0,
                     60, "a task for client 1")
        status, model = job.request("GET", "/v1/model/1")
        assert status == 200
        tensors, _ = read_safetensors(model)
        assert any(n.startswith("variate.") for n in tensors)
        plain = [(n, s, a.tobytes()) for n, (s, a) in tensors.items() if not n.startswith("variate.")]
        meta = {"round": "1", "num_samples": "100", "train_loss": "0.5"}
        status, resp = job.request("POST", "/v1/update", encode(plain, meta))
        assert status == 400 and json.loads(resp)["error"] == "bad_shape", (status, resp)
        nan = b"\x00\x00\xc0\x7f"
        bad = plain + [("variate_delta." + n, s, nan * (len(raw) // 4)) for n, s, raw in plain]
        status, resp = job.request("POST", "/v1/update", encode(bad, meta))
        assert status == 400 and json.loads(resp)["error"] == "non_finite", (status, resp)
        assert job.status()["reported"] <= 2
        good = plain + [("variate_delta." + n, s, b"\x00" * len(raw)) for n, s, raw in plain]
        status, resp = job.request("POST", "/v1/update", encode(good, meta))
        assert status == 200 and json.loads(resp)["accepted"] is True, (status, resp)
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("scaffold_tests")
    only = sys.argv[1:]
    for fn in (test_scaffold_restarts_end_on_the_same_model, test_scaffold_update_checks):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
