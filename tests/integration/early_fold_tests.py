#!/usr/bin/env python3
"""early_fold_tests.py - a chunked upload folded as its bytes arrive
(coordinator/upload_fold.c; docs/protocol.md, "Chunked uploads") on a real
coordinator over mutual TLS on loopback (harness.py). Every run's
committed models are compared with a run that folds at completion
(FEDC_UPLOAD_EARLY_FOLD=0 in the coordinator's environment): the tensors'
bytes must be the same.

1. Faults, with this script as the sites of an all-F32 tensor job (one
   round, the quorum three): the reference run has three sites send their
   updates in chunks cleanly. The faulted run, with early folds, has site 4 send
   part of its update and then nothing (abandoned at the deadline: its
   folds taken out), site 1 an update whose data's SHA-256 is not its
   metadata's (refused at completion; the data's hash is kept as the
   chunks come), a chunk with a bad checksum and then a cut
   (the upload announced again and resumed from its offset), site 2 an
   update whose whole SHA-256 is not the one announced (refused at its last
   chunk: its folds taken out) and then its own, site 3 an update with a
   NaN in its second chunk (refused at completion) and part of another
   update replaced by its own. The reference run's job has only sites 1-3
   (the same updates of the same model, so the same sums). Chunks are of an odd size, so values lie
   across chunk boundaries. Once with FedAvg's sums in memory, once in
   large-model mode ([server] spill_above_mb), where the coordinator is
   also killed (SIGKILL) with two uploads part folded and started again.
   The coordinator's log must show the three updates folded as they
   arrived, counted from their headers without decoding them again, and
   the folds taken out.
2. Concurrency, with three fedc-client sites on the numpy trainer sending
   their updates in chunks at once (two rounds, [strategy]
   max_weight_delta on): fold at completion, early folds with the sums in
   memory, early folds in large-model mode: the same models.

3. The share cap, at its default (max_client_share 0.5), with three
   fedc-client sites of which one claims a large count (its weight cut),
   two uploading in chunks and one in one request: fold at completion,
   early folds in memory and in large-model mode: the same models.

Run under /usr/bin/python3 (Debian's, with numpy).
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from harness import BIN, Skip, Suite, Job  # noqa: E402

try:
    import numpy as np
except ImportError:
    np = None

MIB = 1 << 20
CHUNK = 300001  # odd: values lie across chunk boundaries
SAMPLES = {1: 37, 2: 50, 3: 41, 4: 29}


def need_numpy():
    if np is None:
        raise Skip("numpy is not installed for this interpreter (run under /usr/bin/python3)")


def model_shas(job):
    """round -> SHA-256 of the committed tensors' bytes (by name)."""
    import fedc
    out = {}
    for r, (blob, _) in job.checkpoints().items():
        st = fedc.st.loads(blob)
        h = hashlib.sha256()
        for name in sorted(st):
            h.update(np.ascontiguousarray(st[name]).tobytes())
        out[r] = h.hexdigest()
    return out


def strategy_keys(job, text):
    """Add [strategy] keys to the coordinator's config."""
    with open(job.coord_ini) as f:
        ini = f.read()
    with open(job.coord_ini, "w") as f:
        f.write(ini.replace("[strategy]\n", "[strategy]\n" + text, 1)
                if "[strategy]\n" in ini else ini + "\n[strategy]\n" + text)


def start(job, early, init, strategy="", share_cap=False):
    """The tensor job's coordinator, early folds on or off; the share cap
    (max_client_share, 0.5 by default) off unless share_cap."""
    from trainer_tests import start_tensor_job
    strategy_keys(job, ("" if share_cap else "max_client_share = 0\n") + strategy)
    os.environ["FEDC_UPLOAD_EARLY_FOLD"] = "1" if early else "0"
    try:
        start_tensor_job(job, init, "*num_batches_tracked=max")
    finally:
        os.environ.pop("FEDC_UPLOAD_EARLY_FOLD", None)


def coordinator_log(job):
    with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
        return f.read()


# ---- 1. faults ---------------------------------------------------------------------
def scripted(name, spill, early, faults, kill=False):
    import tensor_job_tests as tj
    from trainer_tests import close
    # the clean run's sites 1-3 are the whole round (it commits when they are
    # in); the faulted run's site 4 holds the round to its deadline
    deadline = 8
    n = 4 if faults else 3
    job = Job(name, n, sizes=[10] * n, rounds=1, model="tensors", round_timeout_s=deadline,
              min_clients=3, poll_s=1)
    try:
        if spill:
            job.set_server_keys(spill_above_mb=0.25)
        rng = np.random.default_rng(3)
        init = {"big.weight": rng.normal(size=(512, 1024)).astype(np.float32),
                "head.weight": rng.normal(size=(16, 8)).astype(np.float32)}
        start(job, early, init)

        def restart():
            coord = [p for p in job.procs if p.args[0].endswith("fedc-coordinator")][-1]
            coord.send_signal(signal.SIGKILL)
            coord.wait()
            log = open(os.path.join(job.dir, "coordinator.log"), "ab")
            env = dict(os.environ, FEDC_UPLOAD_EARLY_FOLD="1" if early else "0")
            p = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config",
                                  job.coord_ini], stdout=log, stderr=log, env=env)
            job.procs.append(p)
            job.wait_for(lambda: job.status() is not None, 20, "the coordinator to restart")

        def ready():
            tj.N = n
            tj.join_all(job)
            tj.wait_train(job, 1)

        ready()
        status, blob = job.request("GET", "/v1/model/1")
        assert status == 200
        model, _ = tj.decode(blob)

        def update(k, seed=0, nan_at=None):
            g = np.random.default_rng(100 * k + seed)
            ts = []
            for nm, (dt, arr) in model.items():
                v = (arr + g.normal(0, 0.05, arr.shape)).astype(np.float32)
                if nan_at is not None and nm == "big.weight":
                    v.reshape(-1)[nan_at] = np.nan
                ts.append((nm, dt, v))
            meta = {"round": "1", "num_samples": str(SAMPLES[k]), "train_loss": "0.5"}
            return tj.encode(ts, meta)

        def req(k, method, path, data=None):
            st, b = job.request(method, path, data, cert=f"client-{k}")
            return st, json.loads(b)

        def announce(k, body, sha=None):
            sha = sha or hashlib.sha256(body).hexdigest()
            st, a = req(k, "POST", f"/v1/upload?round=1&size={len(body)}&sha256={sha}", b"")
            assert st == 200, (k, st, a)
            return a["offset"]

        def send(k, body, off, end=None, bad=False):
            """Chunks of body from off to end; the last answer."""
            end = len(body) if end is None else end
            a = None
            while off < end:
                part = body[off:min(off + CHUNK, end)]
                sha = hashlib.sha256(part[::-1] if bad else part).hexdigest()
                st, a = req(k, "POST", f"/v1/upload/chunk?round=1&offset={off}&sha256={sha}", part)
                if bad:
                    assert st == 400 and a["error"] == "bad_chunk_checksum", (st, a)
                    return a
                if st != 200:
                    return (st, a)
                off += len(part)
            return a

        ups = {k: update(k) for k in range(1, n + 1)}
        accepted = {"accepted": True, "round": 1, "duplicate": False}
        if faults and kill:
            # two uploads part folded, then kill -9: the sums are rebuilt from nothing
            for k in (3, 4):
                assert announce(k, ups[k]) == 0
                send(k, ups[k], 0, 3 * CHUNK)
            time.sleep(0.3)
            restart()
            ready()
            assert announce(3, ups[3]) == 0, "an upload survived the restart"
        if faults:
            # site 4: part of its update, then silence (abandoned at the deadline)
            assert announce(4, ups[4]) == 0
            send(4, ups[4], 0, 2 * CHUNK)
            # site 1: its data's SHA-256 not its metadata's (checked as the chunks
            # came: refused, its folds taken out)
            h = hashlib.sha256(ups[1]).hexdigest()
            meta_sha = re.search(rb'"sha256": "([0-9a-f]{64})"', ups[1]).group(1)
            liar = ups[1].replace(meta_sha, hashlib.sha256(meta_sha).hexdigest().encode())
            assert announce(1, liar) == 0 and h != hashlib.sha256(liar).hexdigest()
            st, e = send(1, liar, 0)
            assert st == 400 and e["error"] == "bad_checksum", (st, e)
            # then a chunk with a bad checksum, then a cut, resumed from its offset
            assert announce(1, ups[1]) == 0
            send(1, ups[1], 0, 2 * CHUNK)
            send(1, ups[1], 2 * CHUNK, 3 * CHUNK, bad=True)
            assert announce(1, ups[1]) == 2 * CHUNK  # the resume
            assert send(1, ups[1], 2 * CHUNK) == accepted
            # site 2: the whole's SHA-256 is not the one announced; then its own
            wrong = hashlib.sha256(ups[3]).hexdigest()
            assert announce(2, ups[2], wrong) == 0
            st, e = send(2, ups[2], 0)
            assert st == 400 and e["error"] == "bad_checksum", (st, e)
            assert announce(2, ups[2]) == 0
            assert send(2, ups[2], 0) == accepted
            # site 3: a NaN in its second chunk, refused; part of another update
            # replaced by its own
            bad3 = update(3, nan_at=CHUNK // 4 + 10)
            assert announce(3, bad3) == 0
            st, e = send(3, bad3, 0)
            assert st == 400 and e["error"] == "non_finite", (st, e)
            other = update(3, seed=1)
            assert announce(3, other) == 0
            send(3, other, 0, 3 * CHUNK)
            assert announce(3, ups[3]) == 0
            assert send(3, ups[3], 0) == accepted
        else:
            for k in (1, 2, 3):
                assert announce(k, ups[k]) == 0
                assert send(k, ups[k], 0) == accepted
        job.wait_for(lambda: job.committed() >= 1, deadline + 60, "round 1 to commit")
        shas = model_shas(job)
        return shas, coordinator_log(job)
    finally:
        close(job)


def test_faults():
    need_numpy()
    for spill in (False, True):
        mode = "large-model mode" if spill else "sums in memory"
        ref, log0 = scripted("efold-ref", spill, False, False)
        assert "folded as it arrived" not in log0, "folded early with FEDC_UPLOAD_EARLY_FOLD=0"
        got, log = scripted("efold-faults", spill, True, True, kill=spill)
        assert got == ref, f"{mode}: the faulted run's models differ from the clean run's"
        folded = log.count('msg="update folded as it arrived"')
        undone = log.count('msg="early folds taken out"')
        assert folded == 3, f"{mode}: {folded} updates folded as they arrived, not 3"
        assert undone >= 5, f"{mode}: folds taken out {undone} times, not 5 or more"
        # every counted update was checked from its header and the hashes kept
        # as its chunks came, not decoded again
        assert log.count("decoded=0") == 3, f"{mode}: updates decoded again at completion"
        assert not spill or 'msg="job resumed"' in log or 'msg="job started"' in log
        print(f"       {mode}: a data SHA-256 not the metadata's, a bad chunk, a cut resumed, a whole SHA-256 mismatch, a NaN, "
              f"a replaced upload, an upload abandoned at the deadline"
              f"{', a kill -9 with two uploads part folded' if spill else ''}: the model "
              f"is the clean run's ({folded} updates folded as they arrived, folds taken "
              f"out {undone} times)")


# ---- 2. concurrency ----------------------------------------------------------------
def clients(name, early, spill, mb=4, rounds=2):
    from trainer_tests import start_external, close
    sites = {1: 100, 2: 140, 3: 177}
    job = Job(name, len(sites), sizes=[10] * len(sites), rounds=rounds, model="tensors",
              round_timeout_s=300, poll_s=1)
    try:
        job.set_server_keys(max_body_mb=1, **({"spill_above_mb": mb / 4} if spill else {}))
        rng = np.random.default_rng(9)
        n = mb * MIB // 4
        start(job, early, {"big.weight": rng.normal(size=(n // 1024, 1024)).astype(np.float32),
                           "head.weight": rng.normal(size=(16, 8)).astype(np.float32)},
              "max_weight_delta = 1000000\n")
        env = {"FEDC_UPLOAD_CHUNKED_MIN": str(MIB)}
        procs = [start_external(job, k, f"--samples {s}", keep=False, timeout_s=300, env=env)
                 for k, s in sites.items()]
        for k, q in enumerate(procs, 1):
            if q.wait(timeout=600) != 0:
                with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-4:]
                raise AssertionError(f"client {k} exit {q.returncode}: " + " | ".join(tail))
        shas = model_shas(job)
        assert len(shas) == rounds + 1, sorted(shas)
        return shas, coordinator_log(job).count('msg="update folded as it arrived"')
    finally:
        close(job)


def test_concurrent_clients():
    need_numpy()
    ref, n0 = clients("efold-late", False, False)
    mem, n1 = clients("efold-mem", True, False)
    big, n2 = clients("efold-big", True, True)
    assert n0 == 0 and n1 == 6 and n2 == 6, (n0, n1, n2)
    assert mem == ref, "early folds (sums in memory) changed the committed models"
    assert big == ref, "early folds (large-model mode) changed the committed models"
    print("       3 sites uploading in chunks at once, 2 rounds: the models are the same "
          "folded at completion, folded as they arrived in memory and in large-model mode")


# ---- 3. the share cap --------------------------------------------------------------
def capped(name, early, spill, mb=4, rounds=2):
    """Three fedc-client sites under the default share cap (0.5): sites 1
    and 3 upload in chunks, site 2 in one request; site 3 claims 5000
    samples, so the cap cuts its weight to 240 every round."""
    from trainer_tests import start_external, close
    sites = {1: 100, 2: 140, 3: 5000}
    job = Job(name, len(sites), sizes=[10] * len(sites), rounds=rounds, model="tensors",
              round_timeout_s=300, poll_s=1)
    try:
        if spill:
            job.set_server_keys(spill_above_mb=mb / 4)
        rng = np.random.default_rng(12)
        n = mb * MIB // 4
        start(job, early, {"big.weight": rng.normal(size=(n // 1024, 1024)).astype(np.float32),
                           "head.weight": rng.normal(size=(16, 8)).astype(np.float32)},
              share_cap=True)
        procs = [start_external(job, k, f"--samples {s}", keep=False, timeout_s=300,
                                env={"FEDC_UPLOAD_CHUNKED_MIN": str(MIB)} if k != 2 else {})
                 for k, s in sites.items()]
        for k, q in enumerate(procs, 1):
            if q.wait(timeout=600) != 0:
                with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-4:]
                raise AssertionError(f"client {k} exit {q.returncode}: " + " | ".join(tail))
        shas = model_shas(job)
        assert len(shas) == rounds + 1, sorted(shas)
        log = coordinator_log(job)
        cut = len(re.findall(r'msg="updates limited" capped=1 ', log))
        assert cut == rounds, f"{name}: the cap cut {cut} rounds' weights, not {rounds}"
        return shas, log.count('msg="update folded as it arrived"')
    finally:
        close(job)


def test_share_cap():
    need_numpy()
    ref, n0 = capped("ecap-late", False, False)
    mem, n1 = capped("ecap-mem", True, False)
    big, n2 = capped("ecap-big", True, True)
    assert n0 == 0 and n1 == 4 and n2 == 4, (n0, n1, n2)
    assert mem == ref, "early folds under the share cap (sums in memory) changed the models"
    assert big == ref, "early folds under the share cap (large-model mode) changed the models"
    print("       the default share cap, a site claiming 5000 samples (cut to 240), two sites "
          "in chunks and one whole, 2 rounds: the models are the same folded at completion, "
          "folded as they arrived in memory and in large-model mode")


if __name__ == "__main__":
    suite = Suite("early_fold_tests")
    only = sys.argv[1:]
    for fn in (test_faults, test_concurrent_clients, test_share_cap):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
