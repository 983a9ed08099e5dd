#!/usr/bin/env python3
"""poll_tests.py - regression tests for the coordinator's pending requests
and its commit order (docs/coordinator-states.md):

1. 16 pending long-polls, then clients added past 16 (enroll = open joins:
   the coordinator's client array grows and moves), then the 16 polls'
   connections dropped. A pending poll used to keep a pointer into that
   array, and the abort wrote through it after the move (a use-after-free).
   The daemon must keep serving, stop with exit 0, and, in a sanitizer
   build (make SANITIZE=address,undefined; FEDC_BUILD=build/san), report
   nothing.
2. A commit that fails before its durable write (FEDC_FAIL_COMMIT_AFTER:
   an injected out-of-memory) must not end the daemon: the round is
   retried, the job finishes, and every committed model is bit-identical to
   that of an undisturbed run.
3. The same under differential privacy: the aborted prepare had drawn the
   round's noise, stepped the accountant and adapted the clip norm; the
   abort puts them back, so the models and the store's privacy ledger
   (epsilon, delta and clip norm per round) equal the undisturbed run's,
   bit for bit. Both runs' stores get the same secret DP seed (planted
   before the coordinator first starts; it is otherwise drawn at random
   per store).
"""
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite, read_safetensors  # noqa: E402

SANITIZER = re.compile(r"Sanitizer|runtime error:")


def stop(p, timeout=20):
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout=timeout)


def test_polls_survive_client_array_growth():
    n = 24
    # no round may open (it would answer the polls): a quorum nobody reaches
    job = Job("polls", n, sizes=[20] * n, rounds=1, clients_per_round=64, min_clients=64,
              enroll="open", poll_s=30)
    try:
        p = job.start_coordinator()
        polls = []
        for k in range(1, 17):
            st, body = job.request("POST", "/v1/join", json.dumps({"name": f"p{k}"}).encode(),
                                   cert=f"client-{k}")
            assert st == 200, (k, st, body)
            c = ssl.create_default_context(cafile=job.pki("ca.pem"))
            c.load_cert_chain(job.pki(f"client-{k}.pem"), job.pki(f"client-{k}.key"))
            s = c.wrap_socket(socket.create_connection(("127.0.0.1", job.port), timeout=10),
                              server_hostname="127.0.0.1")
            s.sendall(b"GET /v1/task?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            polls.append(s)
        time.sleep(0.5)  # every poll is pending now
        pending = job.status()
        assert pending is not None and len(pending["clients"]) == 16, pending
        # clients 17..24 enroll: the array grows past 16 and moves
        for k in range(17, n + 1):
            st, body = job.request("POST", "/v1/join", json.dumps({"name": f"p{k}"}).encode(),
                                   cert=f"client-{k}")
            assert st == 200, (k, st, body)
        for s in polls:  # the aborts
            s.close()
        time.sleep(0.5)
        st = job.status()
        assert st is not None and len(st["clients"]) == n, st
        # still serving polls after the aborts
        status, body = job.request("GET", "/v1/task?wait=0", cert="client-3")
        assert status == 200 and json.loads(body)["action"] == "wait", (status, body)
        rc = stop(p)
        log = open(os.path.join(job.dir, "coordinator.log"), errors="replace").read()
        assert rc == 0, f"exit {rc}: {log[-1500:]}"
        assert not SANITIZER.search(log), log[-3000:]
        print("       16 polls aborted after the client array grew to 24: clean")
    finally:
        job.close()


def run_job(job, name, env, dp_seed=None):
    """The 3-client, 3-round job on a fresh store (same certificates and
    data: the clients' training depends on them); the checkpoints' tensors
    by round (their sha256 covers the job id, new with each store) and the
    coordinator's log. The daemon must not exit while the clients run.
    dp_seed: the store's secret DP noise seed, planted before the
    coordinator starts."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(job.store + suffix):
            os.remove(job.store + suffix)
    log_path = os.path.join(job.dir, "coordinator.log")
    if os.path.exists(log_path):
        os.remove(log_path)
    job.allow_all()
    if dp_seed is not None:
        with sqlite3.connect(job.store) as con:  # the secrets table exists now
            con.execute("INSERT INTO secrets(name, value) VALUES('dp_seed', ?)", (dp_seed,))
    p = job.start_coordinator(env)
    clients = [job.start_client(k, keep=False) for k in (1, 2, 3)]
    end = time.time() + 90
    while any(c.poll() is None for c in clients):
        assert p.poll() is None, f"{name}: the coordinator exited {p.returncode}"
        assert time.time() < end, f"{name}: the job did not finish; logs in {job.dir}"
        time.sleep(0.05)
    for k, c in enumerate(clients, 1):
        assert c.returncode == 0, f"{name}: client {k} exited {c.returncode}"
    rc = stop(p)
    log = open(log_path, errors="replace").read()
    assert rc == 0, f"{name}: exit {rc}: {log[-1500:]}"
    assert not SANITIZER.search(log), log[-3000:]
    m = re.search(r"live_blocks=(-?\d+)", log)
    assert m is None or m.group(1) == "0", f"{name}: {m.group(0)} at exit"
    tensors = {}
    for r, (blob, _) in job.checkpoints().items():
        t, _ = read_safetensors(blob)
        tensors[r] = {k: (shape, a.tobytes()) for k, (shape, a) in t.items()}
    return tensors, log


def test_commit_failure_retried():
    job = Job("commit", 3, rounds=3, round_timeout_s=20, poll_s=1)
    try:
        ref, _ = run_job(job, "clean run", {})
        assert sorted(ref) == [0, 1, 2, 3], sorted(ref)
        # the first commit attempt (round 1), and the third (round 3's first)
        for spec in ("1", "3"):
            got, log = run_job(job, f"FEDC_FAIL_COMMIT_AFTER={spec}",
                               {"FEDC_FAIL_COMMIT_AFTER": spec})
            retries = log.count('msg="commit failed; retrying"')
            assert retries >= 1, f"FEDC_FAIL_COMMIT_AFTER={spec}: no retry in the log"
            assert "commit failed; stopping" not in log
            assert got == ref, f"FEDC_FAIL_COMMIT_AFTER={spec}: models differ from the clean run"
            print(f"       FEDC_FAIL_COMMIT_AFTER={spec}: {retries} retry, the daemon kept "
                  f"going, the same 3 models as the clean run", flush=True)
    finally:
        job.close()


def privacy_ledger(job):
    with job.db() as con:
        return list(con.execute("SELECT round, epsilon, delta, clip_norm FROM privacy "
                                "ORDER BY round"))


def test_commit_failure_retried_dp():
    extra = ("[privacy]\nnoise_multiplier = 0.2\nclip_norm = 0.5\nadaptive_clip = true\n"
             "clip_quantile = 0.5\nclip_lr = 0.2\n")
    job = Job("commit-dp", 3, rounds=3, round_timeout_s=20, poll_s=1, extra=extra)
    seed = 0x2545F4914F6CDD1D
    try:
        ref, _ = run_job(job, "clean DP run", {}, dp_seed=seed)
        assert sorted(ref) == [0, 1, 2, 3], sorted(ref)
        ref_ledger = privacy_ledger(job)
        eps = [e for (_, e, _, _) in ref_ledger]
        assert [r for (r, _, _, _) in ref_ledger] == [1, 2, 3], ref_ledger
        assert 0 < eps[0] < eps[1] < eps[2], ref_ledger
        for spec in ("1", "3"):
            got, log = run_job(job, f"DP, FEDC_FAIL_COMMIT_AFTER={spec}",
                               {"FEDC_FAIL_COMMIT_AFTER": spec}, dp_seed=seed)
            retries = log.count('msg="commit failed; retrying"')
            assert retries >= 1, f"DP, FEDC_FAIL_COMMIT_AFTER={spec}: no retry in the log"
            assert "commit failed; stopping" not in log
            assert got == ref, f"DP, FEDC_FAIL_COMMIT_AFTER={spec}: models differ from the clean run"
            ledger = privacy_ledger(job)
            assert ledger == ref_ledger, (f"DP, FEDC_FAIL_COMMIT_AFTER={spec}: privacy ledger "
                                          f"{ledger}, clean run {ref_ledger}")
            print(f"       DP, FEDC_FAIL_COMMIT_AFTER={spec}: {retries} retry, the daemon kept "
                  f"going, the same 3 models and privacy ledger (epsilon {eps[-1]:.4f}) as the "
                  f"clean run", flush=True)
    finally:
        job.close()


if __name__ == "__main__":
    s = Suite("poll_tests")
    for t in (test_polls_survive_client_array_growth, test_commit_failure_retried,
              test_commit_failure_retried_dp):
        s.run(t)
    sys.exit(s.finish())
