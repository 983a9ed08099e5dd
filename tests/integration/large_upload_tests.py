#!/usr/bin/env python3
"""large_upload_tests.py - chunked, resumable uploads of updates
(docs/protocol.md, "Chunked uploads") on a real coordinator over mutual TLS
on loopback (harness.py).

1. The chunk checks, with this script as three sites of a tensor job: a
   chunk whose SHA-256 is not the one sent with it is refused
   (400 bad_chunk_checksum, the message naming both checksums) and nothing
   is written; a chunk that does not follow the accepted bytes gets
   409 bad_offset with the offset; a resend of an accepted chunk and a
   second announce of the same update answer the accepted offset; the last
   chunk's answer is the update's acknowledgement, a resend of it a
   duplicate; an update over what the model allows is refused (413); the
   round commits the sample-weighted average with the chunked update in it.
2. A cut mid-upload: a tensor job (an F32 tensor of LARGE_UPLOAD_MB MiB, 18
   by default, and an F16 one) with real fedc-client sites and the numpy
   trainer, [server] max_body_mb = 8 (so the updates can only go in
   chunks), run once directly and once through the fault proxy
   (tests/tools/faultproxy.c --cut-at) which resets the connection carrying
   the byte at 60% of the first update: every committed model is
   byte-identical to the uncut run's, and the bytes the proxy forwarded
   from the clients exceed the updates' by less than half an update (the
   upload resumed; it did not start over). The figures are printed. Then
   again with site 1 killed (SIGKILL) once 30% of its first update is in
   and started again: it sends the update it kept in [client] state_dir
   from the coordinator's offset, without training again, and the models
   are the same again.
   tests/long/test_large_upload.sh runs it with one 500 MiB update.

Run under /usr/bin/python3 (Debian's, with numpy).
"""
import hashlib
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Skip, Suite, Job  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

MIB = 1 << 20


def need_numpy():
    if np is None:
        raise Skip("numpy is not installed for this interpreter (run under /usr/bin/python3)")


# ---- 1. the chunk checks ---------------------------------------------------------
def test_chunk_checks():
    need_numpy()
    import tensor_job_tests as tj
    job, _ = tj.tensor_job("chunks")
    try:
        job.allow_all()
        job.start_coordinator()
        tj.join_all(job)
        tj.wait_train(job, 1)
        status, blob = job.request("GET", "/v1/model/1")
        assert status == 200
        model, _ = tj.decode(blob)
        ups = {k: tj.update_of(model, k, 1) for k in range(1, tj.N + 1)}
        meta = {"round": "1", "num_samples": str(tj.SAMPLES[1]), "train_loss": "0.25"}
        body = tj.encode(ups[1], meta)
        sha = hashlib.sha256(body).hexdigest()
        cert = "client-1"

        def req(method, path, data=None):
            st, b = job.request(method, path, data, cert=cert)
            return st, json.loads(b)

        def chunk(off, data, csha=None):
            csha = csha or hashlib.sha256(data).hexdigest()
            return req("POST", f"/v1/upload/chunk?round=1&offset={off}&sha256={csha}", data)

        st, a = req("POST", f"/v1/upload?round=1&size={len(body)}&sha256={sha}", b"")
        assert st == 200 and a["offset"] == 0 and a["size"] == len(body) and a["chunk"] > 0, a
        st, a = req("GET", "/v1/upload?round=1")
        assert st == 200 and a["offset"] == 0, a
        cut = [0, len(body) // 3, 2 * len(body) // 3, len(body)]
        parts = [body[cut[i]:cut[i + 1]] for i in range(3)]
        # a chunk whose checksum is not its own
        st, e = chunk(0, parts[0], hashlib.sha256(parts[1]).hexdigest())
        assert st == 400 and e["error"] == "bad_chunk_checksum", (st, e)
        assert "SHA-256" in e["message"] and hashlib.sha256(parts[0]).hexdigest() in e["message"], e
        print(f"       bad chunk checksum: 400 {e['error']}: {e['message'][:90]}...")
        st, a = req("GET", "/v1/upload?round=1")
        assert a["offset"] == 0, a  # nothing written
        # a chunk that does not follow
        st, e = chunk(cut[1], parts[1])
        assert st == 409 and e["error"] == "bad_offset" and e["offset"] == 0, (st, e)
        st, a = chunk(0, parts[0])
        assert st == 200 and a["offset"] == cut[1], a
        st, a = chunk(0, parts[0])  # a resend: nothing to do
        assert st == 200 and a["offset"] == cut[1], a
        st, a = req("POST", f"/v1/upload?round=1&size={len(body)}&sha256={sha}", b"")
        assert st == 200 and a["offset"] == cut[1], a  # a resume
        st, a = chunk(cut[1], parts[1])
        assert st == 200 and a["offset"] == cut[2], a
        st, a = chunk(cut[2], parts[2])
        assert st == 200 and a == {"accepted": True, "round": 1, "duplicate": False}, a
        st, a = chunk(cut[2], parts[2])  # the last answer was lost: a duplicate
        assert st == 200 and a["accepted"] and a["duplicate"], a
        # over what the model allows
        cert = "client-2"
        st, e = req("POST", f"/v1/upload?round=1&size={1 << 40}&sha256={sha}", b"")
        assert st == 413 and e["error"] == "too_large", (st, e)
        for k in (2, 3):
            meta = {"round": "1", "num_samples": str(tj.SAMPLES[k]), "train_loss": "0.25"}
            st, r = tj.post(job, k, tj.encode(ups[k], meta))
            assert st == 200 and r["accepted"], r
        job.wait_for(lambda: job.committed() >= 1, 30, "round 1 to commit")
        status, blob = job.request("GET", "/v1/model/2")
        assert status == 200
        after, _ = tj.decode(blob)
        worst = tj.check_committed(after, tj.expected(model, ups))
        print(f"       round 1 with a chunked update: max rel. error {worst:.2e}")
        assert not os.listdir(job.store + ".uploads"), "a spool file was left behind"
    finally:
        job.close()


# ---- 2. a cut mid-upload ------------------------------------------------------------
def run_tensor_job(name, mb, sites, rounds, cut_frac=None, kill_frac=None):
    """A tensor job of an mb MiB F32 tensor and a small F16 one; sites
    (k -> samples) on the numpy trainer, through the fault proxy cutting at
    cut_frac of the first update when given. kill_frac: site 1 is killed
    (SIGKILL) once the coordinator's spool of its first update holds that
    fraction, and started again (its links slowed by the proxy's delays so
    that the kill lands mid-upload). Returns the committed models' data
    SHA-256 by round, the update's size, the proxy's summary (or None), and
    the seconds the job took."""
    from trainer_tests import start_tensor_job, start_external, close
    from netfaults_tests import ProxiedJob
    import fedc
    proxied = cut_frac is not None or kill_frac is not None
    cls = ProxiedJob if proxied else Job
    job = cls(name, len(sites), sizes=[10] * len(sites), rounds=rounds, model="tensors",
              round_timeout_s=600, poll_s=1)
    if proxied:
        # the proxy's jobs close idle connections after 2 s (netfaults_tests.py);
        # a long model download through it on a loaded machine needs more
        with open(job.coord_ini) as f:
            text = f.read()
        with open(job.coord_ini, "w") as f:
            f.write(text.replace("idle_timeout_s = 2\n", "idle_timeout_s = 30\n"))
    plain_ini = job.client_ini

    def client_ini(k, **kw):  # every site keeps its state (the pending update)
        path = plain_ini(k, **kw)
        state = os.path.join(job.dir, f"state-{k}")
        os.makedirs(state, exist_ok=True)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[client]\n", f"[client]\nstate_dir = {state}\n", 1))
        return path
    job.client_ini = client_ini
    try:
        job.set_server_keys(max_body_mb=8)
        n = mb * MIB // 4
        rng = np.random.default_rng(5)
        start_tensor_job(job, {"big.weight": rng.normal(size=(n // 1024, 1024)).astype(np.float32),
                               "head.weight": rng.normal(size=(64, 32)).astype(np.float16)},
                         "*num_batches_tracked=max")
        # the update's size: what the trainer writes (fedc.save_update)
        size = None
        summary = None
        if cut_frac is not None:
            # the update is the F32 tensor plus a few KiB: cut at cut_frac of it,
            # after the joins and polls (a few KiB too)
            job.start_proxy(["--cut-at", str(int(cut_frac * mb * MIB))])
        elif kill_frac is not None:
            job.start_proxy(["--delay", "1", "--delay-ms", "20"])
        proxy = job.procs[-1] if proxied else None
        t0 = time.time()
        procs = [start_external(job, k, f"--samples {s}", keep=True, timeout_s=900)
                 for k, s in sites.items()]
        if kill_frac is not None:
            spool = os.path.join(job.store + ".uploads")

            def far_enough():
                for f in os.listdir(spool) if os.path.isdir(spool) else []:
                    if f.endswith("-c1.part"):
                        return os.path.getsize(os.path.join(spool, f)) >= kill_frac * mb * MIB
                return False
            job.wait_for(far_enough, 300, "site 1's upload to be under way")
            procs[0].kill()
            procs[0].wait()
            held = max(os.path.getsize(os.path.join(spool, f)) for f in os.listdir(spool)
                       if f.endswith("-c1.part"))
            procs[0] = start_external(job, 1, f"--samples {sites[1]}", keep=True, timeout_s=900)
        for k, q in enumerate(procs, 1):
            if q.wait(timeout=900) != 0:
                with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-4:]
                raise AssertionError(f"client {k} exit {q.returncode}: " + " | ".join(tail))
        took = time.time() - t0
        if kill_frac is not None:
            with open(os.path.join(job.dir, "client-1.log"), errors="replace") as f:
                log = f.read().split("msg=\"joined\"")[-1]  # the restarted client's
            assert "resending the update already made" in log, "site 1 trained again"
            m = [int(x) for x in re.findall(r'msg="upload resumes" round=1 offset=(\d+)', log)]
            assert m and m[0] >= held - 16 * MIB and m[0] > 0, (m, held)
            print(f"       site 1 killed with {held / MIB:.1f} MiB of its update held and "
                  f"started again: it resumed at {m[0] / MIB:.1f} MiB, without training again")
        kept = os.path.join(job.dir, "updates-1")
        files = [f for f in os.listdir(kept)] if os.path.isdir(kept) else []
        if files:
            size = os.path.getsize(os.path.join(kept, sorted(files)[0]))
        if cut_frac is not None:
            proxy.terminate()  # its summary line
            proxy.wait(timeout=10)
            ev = job.proxy_events()
            summary = [e for e in ev if e["event"] == "summary"][-1]
            summary["cuts"] = [e for e in ev if e["event"] == "cut"]
        shas = {}
        for r, (blob, _) in job.checkpoints().items():
            st = fedc.st.loads(blob)
            h = hashlib.sha256()
            for name in sorted(st):
                h.update(np.ascontiguousarray(st[name]).tobytes())
            shas[r] = h.hexdigest()
        assert not os.listdir(job.store + ".uploads"), "a spool file was left behind"
        return shas, size, summary, took
    finally:
        close(job)


def test_cut_and_resume():
    need_numpy()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "python"))
    mb = int(os.environ.get("LARGE_UPLOAD_MB", "18"))
    n_sites = int(os.environ.get("LARGE_UPLOAD_SITES", "2"))
    rounds = int(os.environ.get("LARGE_UPLOAD_ROUNDS", "2"))
    sites = {k: 100 + 37 * k for k in range(1, n_sites + 1)}
    plain, size, _, t_plain = run_tensor_job("upload-plain", mb, sites, rounds)
    cut, size2, s, t_cut = run_tensor_job("upload-cut", mb, sites, rounds, cut_frac=0.6)
    assert size and size == size2, (size, size2)
    assert len(plain) == rounds + 1 and plain == cut, "the committed models differ from the uncut run's"
    assert s["cut"] == 1 and len(s["cuts"]) == 1, s
    updates = size * n_sites * rounds
    again = s["c2s_bytes"] - updates
    print(f"       {rounds} rounds x {n_sites} sites, updates of {size / MIB:.1f} MiB, "
          f"cut at 60% of the first: committed models identical to the uncut run's")
    print(f"       the proxy forwarded {s['c2s_bytes'] / MIB:.1f} MiB from the clients for "
          f"{updates / MIB:.1f} MiB of updates: {again / MIB:.2f} MiB more "
          f"({100.0 * again / size:.1f}% of one update; requests, TLS and the chunk in flight)")
    print(f"       job time: {t_plain:.1f} s uncut, {t_cut:.1f} s with the cut")
    assert 0 <= again < 0.5 * size, f"{again} bytes sent again, half an update is {size // 2}"
    if os.environ.get("LARGE_UPLOAD_KILL", "1") == "1":
        killed, size3, _, t_kill = run_tensor_job("upload-kill", mb, sites, rounds, kill_frac=0.3)
        assert size3 == size and killed == plain, "the committed models differ from the uncut run's"
        print(f"       with the kill: committed models identical to the uncut run's "
              f"({t_kill:.1f} s)")


if __name__ == "__main__":
    suite = Suite("large_upload_tests")
    only = sys.argv[1:]
    for fn in (test_chunk_checks, test_cut_and_resume):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
