#!/usr/bin/env python3
"""coordinator_tests.py - the coordinator and its clients as real processes
on 127.0.0.1, with real TLS, real certificates and a real sqlite file.

1. FedAvg over the wire: 5 clients with uneven data, 5 rounds; every
   committed model equals the sample-weighted average of the updates the
   clients kept copies of, within 1e-6.
2. kill -9 of the coordinator during round 3 and a restart on the same
   file: rounds 1 and 2 unchanged, the job finishes, the clients (never
   restarted) exit 0.
3. kill -9 of a client mid-round: the round commits at its deadline with
   the quorum; with fewer than min_clients it commits nothing.
4. no certificate, another CA, a revoked certificate: refused at the
   handshake or with 403, and nothing stored.
5. bad updates, each refused with a 4xx JSON error naming the problem,
   the coordinator still serving and its state unchanged; a resend is
   acknowledged and counted once.
"""
import json
import os
import signal
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite, flat, read_safetensors  # noqa: E402


def check_averages(job, rounds):
    """Every committed model against sum n_k w_k / sum n_k of the kept copies."""
    ids = job.client_ids()
    k_of = {ids[job.fingerprint(k)]: k for k in range(1, job.n + 1)}
    ckpt = job.checkpoints()
    worst = 0.0
    for r in range(1, rounds + 1):
        ups = job.updates_of(r)
        assert ups, f"round {r} has no updates in the store"
        total = sum(n for _, n, _ in ups)
        acc = None
        for cid, n, sha in ups:
            tensors, meta = read_safetensors(job.kept_update(k_of[cid], r))
            assert meta["sha256"] == sha, f"round {r} client {cid}: stored sha differs from the copy"
            assert int(meta["num_samples"]) == n
            w = flat(tensors)
            if acc is None:
                acc = [0.0] * len(w)
            for i, x in enumerate(w):
                acc[i] += n * x
        model = flat(read_safetensors(ckpt[r][0])[0])
        assert len(model) == len(acc)
        for i, x in enumerate(model):
            want = acc[i] / total
            err = abs(x - want) / max(1.0, abs(want))
            worst = max(worst, err)
    assert worst < 1e-6, f"largest error {worst:.3e}"
    return worst


def test_fedavg_over_the_wire():
    job = Job("avg", 5, sizes=[120, 300, 450, 800, 1500], rounds=5)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 6)]
        for p in clients:
            assert p.wait(timeout=90) == 0, "a client did not finish with exit 0"
        assert job.committed() == 5
        worst = check_averages(job, 5)
        print(f"       max relative error of 5 committed models: {worst:.2e}")
        st = job.status()
        assert st["state"] == "finished" and st["round"] == 6
        assert all(r["clients"] == 5 for r in st["rounds"])
        assert [r["samples"] for r in st["rounds"]] == [3170] * 5
    finally:
        job.close()


def test_coordinator_kill9_and_restart():
    # an MLP on 3000 rows a client: rounds long enough to be killed inside
    job = Job("crash", 3, sizes=[3000, 3000, 3000], rounds=6, round_timeout_s=30,
              model="mlp", hidden="200,200", epochs=2)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        # kill -9 while round 3 is open
        job.wait_for(lambda: (s := job.status()) and s["round"] == 3 and s["state"] == "open",
                     60, "round 3 to open")
        before = job.checkpoints()
        assert set(before) >= {0, 1, 2}
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        time.sleep(1.0)  # the clients meet a dead coordinator and back off
        job.start_coordinator()
        for p in clients:
            assert p.wait(timeout=90) == 0, "a client did not ride out the restart"
        after = job.checkpoints()
        for r in (0, 1, 2):
            assert after[r][1] == before[r][1], f"round {r} changed across the restart"
            assert after[r][0] == before[r][0]
        assert max(after) == 6 and job.committed() == 6
        with job.db() as con:
            rows = [r for (r,) in con.execute("SELECT round FROM rounds ORDER BY round")]
            assert rows == [1, 2, 3, 4, 5, 6]
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        job.close()


def test_client_dropout_quorum():
    # 3 clients, 2 needed: killing one mid-round, the round commits at the deadline
    job = Job("dropout", 3, rounds=12, min_clients=2, round_timeout_s=3)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        job.wait_for(lambda: job.committed() >= 1, 60, "round 1")
        clients[2].send_signal(signal.SIGKILL)  # client 3 is gone for good
        clients[2].wait()
        killed_at = job.committed()
        assert killed_at < 12, "the job finished before the client was killed"
        for p in clients[:2]:
            assert p.wait(timeout=120) == 0
        st = job.status()
        assert job.committed() == 12
        # after the kill every round ran with the 2 that are left
        assert all(r["clients"] == 2 for r in st["rounds"][killed_at + 1:]), st["rounds"]
    finally:
        job.close()
    # 2 clients, both needed: with one killed, no round commits a partial average
    job = Job("noquorum", 2, rounds=12, min_clients=2, round_timeout_s=2)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 3)]
        job.wait_for(lambda: job.committed() >= 1, 60, "round 1")
        clients[1].send_signal(signal.SIGKILL)
        clients[1].wait()
        n = job.committed()
        assert n < 12, "the job finished before the client was killed"
        time.sleep(5.0)  # two deadlines pass
        assert job.committed() == n, "a round committed without its quorum"
        assert "fedc_rounds_abandoned_total" in job.metrics()
        ab = [l for l in job.metrics().splitlines() if l.startswith("fedc_rounds_abandoned_total ")]
        assert int(ab[0].split()[1]) >= 1, ab
        with job.db() as con:
            assert con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == n
    finally:
        job.close()


def test_refused_clients():
    job = Job("auth", 3, rounds=3)
    other = Job("otherca", 1)
    try:
        # client-1 allowed, client-2 never enrolled, client-3 allowed then revoked
        assert job.coordinator_cmd("allow", job.pki("client-1.pem")).returncode == 0
        assert job.coordinator_cmd("allow", job.pki("client-3.pem")).returncode == 0
        assert job.coordinator_cmd("revoke", job.pki("client-3.pem")).returncode == 0
        job.start_coordinator()
        # no certificate: the handshake is refused
        try:
            job.request("POST", "/v1/join", b"{}", cert=None)
            raise AssertionError("a client without a certificate was served")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        # a certificate from another CA: refused at the handshake
        ctx = ssl.create_default_context(cafile=job.pki("ca.pem"))
        ctx.load_cert_chain(other.pki("client-1.pem"), other.pki("client-1.key"))
        import http.client
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", job.port, context=ctx, timeout=5)
            conn.request("POST", "/v1/join", b"{}")
            conn.getresponse().read()
            raise AssertionError("a certificate from another CA was served")
        except (ssl.SSLError, ConnectionError, OSError):
            pass
        # not enrolled, and revoked: 403 with a JSON error
        for cert in ("client-2", "client-3"):
            for method, path in (("POST", "/v1/join"), ("GET", "/v1/task?wait=0"), ("POST", "/v1/update")):
                status, body = job.request(method, path, b"{}" if method == "POST" else None, cert=cert)
                assert status == 403, (cert, path, status, body)
                assert json.loads(body)["error"] == "forbidden"
        # a real client with the revoked certificate exits 3
        p = job.start_client(3)
        assert p.wait(timeout=30) == 3
        with job.db() as con:
            assert con.execute("SELECT COUNT(*) FROM clients").fetchone()[0] == 2
            assert con.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0
            assert con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 0
        m = job.metrics()
        assert "fedc_tls_handshakes_failed_total" in m
    finally:
        job.close()
        other.close()


def encode(tensors, meta, dtype="F32", corrupt_sha=False):
    """A safetensors body; tensors: list of (name, shape, bytes)."""
    import hashlib
    header, off, data = {}, 0, b""
    for name, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    m = dict(meta)
    m["sha256"] = hashlib.sha256(data).hexdigest()
    if corrupt_sha:
        m["sha256"] = "0" * 64
    header["__metadata__"] = m
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def test_bad_updates():
    job = Job("bad", 2, rounds=2, min_clients=2, round_timeout_s=30, poll_s=1)
    try:
        job.allow_all()
        job.start_coordinator()
        for k in (1, 2):
            status, _ = job.request("POST", "/v1/join", b"{}", cert=f"client-{k}")
            assert status == 200
        # client 2 polls so that round 1 opens with both selected
        job.request("GET", "/v1/task?wait=0", cert="client-2")
        job.wait_for(lambda: (s := job.request("GET", "/v1/task?wait=1")[1]) and
                     json.loads(s)["action"] == "train", 15, "a train task")
        status, model = job.request("GET", "/v1/model/1")
        assert status == 200
        tensors, _ = read_safetensors(model)
        good = [(n, s, a.tobytes()) for n, (s, a) in
                sorted(tensors.items(), key=lambda kv: (int(kv[0].split(".")[1]), kv[0].endswith("bias")))]
        meta = {"round": "1", "num_samples": "300", "train_loss": "0.5"}
        w_name, w_shape, w_raw = good[0]
        nan = struct.pack("<f", float("nan"))
        inf = struct.pack("<f", float("inf"))
        cases = [
            ("wrong size", encode([(w_name, [w_shape[0], w_shape[1] - 1], w_raw[:-4 * w_shape[0]])] + good[1:], meta), 400, "bad_shape"),
            ("wrong dtype", encode([(n, s, r[:len(r) // 2]) for n, s, r in good], meta, dtype="F16"), 400, "bad_dtype"),
            ("NaN", encode([(w_name, w_shape, nan + w_raw[4:])] + good[1:], meta), 400, "non_finite"),
            ("Inf", encode([(w_name, w_shape, w_raw[:-4] + inf)] + good[1:], meta), 400, "non_finite"),
            ("bad checksum", encode(good, meta, corrupt_sha=True), 400, "bad_checksum"),
            ("stale round", encode(good, dict(meta, round="7")), 409, "stale_round"),
            ("missing num_samples", encode(good, {"round": "1", "train_loss": "0.5"}), 400, "bad_metadata"),
            ("garbage", b"\x00garbage" * 100, 400, "bad_container"),
        ]
        full = encode(good, meta)
        cases.append(("truncated body", full[:len(full) // 2], 400, "bad_container"))
        for what, body, want_status, want_code in cases:
            status, resp = job.request("POST", "/v1/update", body,
                                       headers={"Content-Type": "application/octet-stream"})
            err = json.loads(resp)
            assert status == want_status and err["error"] == want_code, (what, status, err)
            assert err["message"], what
        # oversized: refused from Content-Length, before the body is read
        conn = job.tls_connection()
        conn.putrequest("POST", "/v1/update")
        conn.putheader("Content-Length", str(1 << 40))
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 413 and json.loads(r.read())["error"] == "too_large"
        conn.close()
        st = job.status()
        assert st["reported"] == 0 and st["state"] == "open", st
        # the good update, then a resend: accepted once, acknowledged twice
        status, resp = job.request("POST", "/v1/update", full)
        assert status == 200 and json.loads(resp) == {"accepted": True, "round": 1, "duplicate": False}
        status, resp = job.request("POST", "/v1/update", full)
        assert status == 200 and json.loads(resp)["duplicate"] is True
        assert job.status()["reported"] == 1
        m = job.metrics()
        for code in ("bad_shape", "bad_dtype", "non_finite", "bad_checksum", "stale_round",
                     "bad_metadata", "bad_container"):
            line = [l for l in m.splitlines() if f'reason="{code}"' in l][0]
            assert int(line.split()[-1]) >= 1, line
        # the coordinator still serves, and nothing was stored
        with job.db() as con:
            assert con.execute("SELECT COUNT(*) FROM updates").fetchone()[0] == 0
            assert con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 0
    finally:
        job.close()


def final_model(job):
    ckpt = job.checkpoints()
    return flat(read_safetensors(ckpt[max(ckpt)][0])[0])


def test_strategies_over_the_wire():
    """FedAdam through a kill -9 and restart ends on exactly the model of an
    uninterrupted run (its moments are stored with each round); DP writes a
    growing epsilon to the store's ledger and to /v1/status."""
    extra = "[strategy]\nname = fedadam\nserver_lr = 0.01\n"
    job = Job("fedadam", 3, sizes=[2000, 2000, 2000], rounds=4, extra=extra,
              model="mlp", hidden="64", epochs=2)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        for p in clients:
            assert p.wait(timeout=60) == 0
        clean = final_model(job)
        job.coordinator.send_signal(signal.SIGTERM)
        assert job.coordinator.wait(timeout=10) == 0
        # the same clients and certificates, a new store, and a crash after round 2
        job.store = os.path.join(job.dir, "second.db")
        job.write_coordinator_config()
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        job.wait_for(lambda: job.committed() >= 2, 60, "round 2")
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        with job.db() as con:
            done = con.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
        assert 2 <= done < 4, f"{done} rounds committed before the kill"
        job.start_coordinator()
        for p in clients:
            assert p.wait(timeout=60) == 0
        crashed = final_model(job)
        assert crashed == clean, "the restarted FedAdam job ended on another model"
        with job.db() as con:
            assert con.execute("SELECT COUNT(*) FROM opt_state").fetchone()[0] == 4
    finally:
        job.close()
    extra = "[privacy]\nnoise_multiplier = 0.5\nclip_norm = 0.5\n"
    job = Job("dp", 3, rounds=3, extra=extra)
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        for p in clients:
            assert p.wait(timeout=60) == 0
        with job.db() as con:
            eps = [e for (e,) in con.execute("SELECT epsilon FROM privacy ORDER BY round")]
        assert len(eps) == 3 and eps[0] > 0 and eps[0] < eps[1] < eps[2], eps
        st = job.status()
        assert abs(st["privacy"]["epsilon"] - eps[-1]) < 1e-9
        assert st["rounds"][-1]["epsilon"] == eps[-1]
        print(f"       DP over the wire: epsilon after 3 rounds {eps[-1]:.3f}")
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("coordinator_tests")
    only = sys.argv[1:]
    for fn in (test_fedavg_over_the_wire, test_coordinator_kill9_and_restart,
               test_client_dropout_quorum, test_refused_clients, test_bad_updates,
               test_strategies_over_the_wire):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
