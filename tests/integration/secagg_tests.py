#!/usr/bin/env python3
"""secagg_tests.py - secure aggregation through the real coordinator and real
clients on 127.0.0.1 (mutual TLS, a real sqlite store).

1. 10 clients with uneven data, [privacy] secure_aggregation = true; three
   of them are killed (kill -9) right after they shared their keys (they
   stall there through the FEDC_TEST_SECAGG_STALL_S hook until the test
   sees them in /v1/status and kills them). The round commits, and the
   committed model equals the sample-weighted average of the 7 survivors'
   updates (their keep_updates copies) within the quantization error the
   round used: 2^-(frac_bits+1) per weight, plus float32 rounding.
2. What the coordinator received from a client (dumped by the
   FEDC_SECAGG_DEBUG_DIR hook) is not that client's update: no word equals
   the client's quantized weighted delta or its float bits, and read as an
   update it is nowhere near the client's weights.
3. Cost: the same 10 clients and model, 3 rounds plain and 3 rounds
   secure; prints the mean round time and the bytes per round on the
   clients' listener.
4. A lying client (FEDC_TEST_SECAGG_LIE=1: it reveals one wrong share word
   in each secure round) among 6: its wrong share is located, it is named
   in the log, counted in /metrics, listed in /v1/status and not selected
   again; every round commits, and each honest client trains once per
   round (no retraining in a loop).
5. Distributed DP ([privacy] noise_at = sites, noise_multiplier 0.5,
   clip_norm 0.5) among 6 clients, one killed after sharing its keys in
   round 1: every round commits; round 1's model is the unweighted mean of
   the 5 survivors' clipped deltas (recomputed from their keep_updates
   copies) plus noise whose size matches the noise the sites were told to
   add (within 10% of its expected L2 norm; its relative
   spread is 1 / sqrt(2 n) = 0.8% here); the store's privacy
   ledger has one row per round with epsilon growing, equal to
   /v1/status's.
"""
import array
import json
import math
import os
import re
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite, flat, read_safetensors  # noqa: E402

SIZES = [150, 220, 300, 380, 450, 520, 640, 760, 880, 1000]
SECURE = "[privacy]\nsecure_aggregation = true\nsecagg_threshold = 0.6\n"


def read_u32(blob):
    """(words, metadata) of a container with one U32 tensor "masked"."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    assert list(header) == ["masked"] and header["masked"]["dtype"] == "U32", header
    a, b = header["masked"]["data_offsets"]
    words = array.array("I")
    words.frombytes(blob[8 + n + a:8 + n + b])
    if sys.byteorder != "little":
        words.byteswap()
    return words, meta


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def metric(job, name):
    m = re.search(rf"^{name} (\d+)", job.metrics(), re.M)
    return int(m.group(1))


def test_secure_round_with_dropouts():
    job = Job("secagg", 10, sizes=SIZES, rounds=1, round_timeout_s=8, min_clients=7,
              extra=SECURE)
    debug = os.path.join(job.dir, "masked")
    os.mkdir(debug)
    try:
        job.allow_all()
        job.start_coordinator(env={"FEDC_SECAGG_DEBUG_DIR": debug})
        victims = [2, 5, 9]  # harness client numbers
        procs = {}
        for k in range(1, 11):
            env = {"FEDC_TEST_SECAGG_STALL_S": "120"} if k in victims else None
            procs[k] = job.start_client(k, env=env)
        ids = job.wait_for(lambda: len(job.client_ids()) == 10 and job.client_ids(), 20,
                           "10 clients in the store")
        cid = {k: ids[job.fingerprint(k)] for k in range(1, 11)}

        def victims_shared():
            s = job.status()
            sa = s and s.get("secagg") or {}
            return all(cid[k] in sa.get("shared_ids", []) for k in victims) and sa
        sa = job.wait_for(victims_shared, 40, "the three victims to share their keys")
        for k in victims:
            procs[k].send_signal(signal.SIGKILL)
            procs[k].wait()
        print(f"       killed clients {[cid[k] for k in victims]} in phase {sa['phase']} "
              f"(shared {sa['shared']}/{sa['selected']})")
        job.wait_for(lambda: job.committed() == 1, 40, "the secure round to commit")
        for k in range(1, 11):
            if k not in victims:
                assert procs[k].wait(timeout=30) == 0, f"client {k} did not exit 0"
        st = job.status()
        last = st["secagg"]["last"]
        assert last["committed"] and last["survivors"] == 7 and last["dropped"] == 3, last
        f = last["frac_bits"]
        survivors = [k for k in range(1, 11) if k not in victims]
        ups = job.updates_of(1)
        assert sorted(u[0] for u in ups) == sorted(cid[k] for k in survivors), ups
        assert st["rounds"][0]["samples"] == sum(SIZES[k - 1] for k in survivors)

        # the committed model against the survivors' plain weighted average
        ckpt = job.checkpoints()
        g = flat(read_safetensors(ckpt[0][0])[0])
        model = flat(read_safetensors(ckpt[1][0])[0])
        kept = {k: flat(read_safetensors(job.kept_update(k, 1))[0]) for k in survivors}
        total = sum(SIZES[k - 1] for k in survivors)
        bound = 2.0 ** -(f + 1)
        worst = 0.0
        for i in range(len(model)):
            want = sum(SIZES[k - 1] * kept[k][i] for k in survivors) / total
            err = abs(model[i] - want)
            worst = max(worst, err)
            assert err <= bound + 2e-7 * max(1.0, abs(want)), (i, model[i], want, err, bound)
        print(f"       committed model vs plain average of 7 survivors: max error {worst:.2e} "
              f"(bound 2^-{f + 1} = {bound:.2e})")

        # what the coordinator got from one survivor is not its update
        k = survivors[0]
        n_k = SIZES[k - 1]
        words, meta = read_u32(open(os.path.join(debug, f"round-1-client-{cid[k]}.safetensors"),
                                    "rb").read())
        assert int(meta["num_samples"]) == n_k and len(words) == len(model)
        scale = 2.0 ** f
        plain_q = [(round(f32(kept[k][i] - g[i]) * scale) * n_k) & 0xffffffff
                   for i in range(len(words))]
        float_bits = array.array("I", struct.pack(f"<{len(words)}f", *kept[k]))
        same_q = sum(1 for a, b in zip(words, plain_q) if a == b)
        same_f = sum(1 for a, b in zip(words, float_bits) if a == b)
        as_update = [g[i] + (w - (1 << 32) if w >= 1 << 31 else w) / scale / n_k
                     for i, w in enumerate(words)]
        off = sum(abs(a - b) for a, b in zip(as_update, kept[k])) / len(words)
        print(f"       client {cid[k]}: {same_q} of {len(words)} masked words equal its quantized "
              f"delta, {same_f} equal its float bits; read as an update it is off by "
              f"{off:.1f} per weight on average")
        assert same_q <= 3 and same_f <= 3 and off > 10.0
        for k in victims:
            assert not os.path.exists(os.path.join(debug, f"round-1-client-{cid[k]}.safetensors"))
    finally:
        job.close()


def run_job(secure, rounds=3):
    job = Job("secagg-cost" if secure else "plain-cost", 10, sizes=SIZES, rounds=rounds,
              round_timeout_s=20, extra=SECURE if secure else "")
    try:
        job.allow_all()
        job.start_coordinator()
        if secure:
            st, body = job.request("GET", "/v1/secagg/keys?round=1")
            assert st == 409, (st, body)  # no round open yet
        clients = [job.start_client(k) for k in range(1, 11)]
        for p in clients:
            assert p.wait(timeout=120) == 0, "a client did not finish with exit 0"
        st = job.status()
        assert len(st["rounds"]) == rounds
        secs = [r["secs"] for r in st["rounds"]]
        rx = metric(job, "fedc_api_bytes_received_total")
        tx = metric(job, "fedc_api_bytes_sent_total")
        return secs, rx, tx, st
    finally:
        job.close()


def test_cost_secure_vs_plain():
    p_secs, p_rx, p_tx, _ = run_job(False)
    s_secs, s_rx, s_tx, st = run_job(True)
    assert st["secagg"]["last"]["committed"] and st["secagg"]["last"]["survivors"] == 10
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(f"       10 clients, softmax 784x10 (7850 weights), 3 rounds each:")
    print(f"       plain : round {mean(p_secs):.3f} s (rounds {', '.join(f'{s:.3f}' for s in p_secs)}), "
          f"received {p_rx / 3 / 1024:.1f} KiB/round, sent {p_tx / 3 / 1024:.1f} KiB/round")
    print(f"       secure: round {mean(s_secs):.3f} s (rounds {', '.join(f'{s:.3f}' for s in s_secs)}), "
          f"received {s_rx / 3 / 1024:.1f} KiB/round, sent {s_tx / 3 / 1024:.1f} KiB/round")
    print(f"       secure/plain: time x{mean(s_secs) / mean(p_secs):.2f}, "
          f"received x{s_rx / p_rx:.2f}, sent x{s_tx / p_tx:.2f}")


def test_lying_client_is_excluded():
    rounds = 3
    job = Job("secagg-liar", 6, sizes=SIZES[:6], rounds=rounds, round_timeout_s=8,
              min_clients=4, extra=SECURE)
    try:
        job.allow_all()
        job.start_coordinator()
        liar = 4  # harness client number
        procs = {k: job.start_client(k, env={"FEDC_TEST_SECAGG_LIE": "1"} if k == liar else None)
                 for k in range(1, 7)}
        job.wait_for(lambda: job.committed() == rounds, 90, f"{rounds} secure rounds to commit")
        for k in range(1, 7):
            assert procs[k].wait(timeout=30) == 0, f"client {k} did not exit 0"
        ids = job.client_ids()
        cid = {k: ids[job.fingerprint(k)] for k in range(1, 7)}
        st = job.status()
        sa = st["secagg"]
        assert sa["excluded_ids"] == [cid[liar]], sa
        assert metric(job, "fedc_secagg_clients_excluded_total") == 1
        log = open(os.path.join(job.dir, "coordinator.log")).read()
        named = [l for l in log.splitlines()
                 if f"client={cid[liar]} " in l and "excluded from later rounds" in l]
        assert len(named) == 1, named
        assert metric(job, "fedc_rounds_abandoned_total") == 0
        # round 1: the liar's masked input was counted (its self-mask rebuilt
        # from the honest shares); later rounds go on without it
        assert cid[liar] in [u[0] for u in job.updates_of(1)]
        for r in range(2, rounds + 1):
            got = sorted(u[0] for u in job.updates_of(r))
            assert got == sorted(cid[k] for k in range(1, 7) if k != liar), (r, got)
        assert len(st["rounds"]) == rounds
        assert sa["last"]["committed"] and sa["last"]["excluded"] == 0, sa["last"]
        for k in range(1, 7):
            trained = open(os.path.join(job.dir, f"client-{k}.log")).read().count('msg="trained"')
            want = 1 if k == liar else rounds
            assert trained == want, f"client {k} trained {trained} times for {rounds} rounds"
        secs = ", ".join(f"{r['secs']:.2f}" for r in st["rounds"])
        print(f"       client {cid[liar]} revealed a wrong share word: excluded after round 1; "
              f"{rounds} rounds committed, each honest client trained {rounds} times; "
              f"round secs {secs}")
    finally:
        job.close()


def test_dp_noise_at_sites():
    rounds, z, clip = 3, 0.5, 0.5
    sizes = SIZES[:6]
    job = Job("secagg-dp-sites", 6, sizes=sizes, rounds=rounds, round_timeout_s=8,
              min_clients=4,
              extra=SECURE + f"noise_at = sites\nnoise_multiplier = {z}\nclip_norm = {clip}\n")
    try:
        job.allow_all()
        job.start_coordinator()
        victim = 3
        procs = {k: job.start_client(k, env={"FEDC_TEST_SECAGG_STALL_S": "120"}
                                     if k == victim else None) for k in range(1, 7)}
        ids = job.wait_for(lambda: len(job.client_ids()) == 6 and job.client_ids(), 20,
                           "6 clients in the store")
        cid = {k: ids[job.fingerprint(k)] for k in range(1, 7)}

        def victim_shared():
            sa = (job.status() or {}).get("secagg") or {}
            return cid[victim] in sa.get("shared_ids", [])
        job.wait_for(victim_shared, 40, "the victim to share its keys")
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        job.wait_for(lambda: job.committed() == rounds, 90, f"{rounds} rounds to commit")
        for k in range(1, 7):
            if k != victim:
                assert procs[k].wait(timeout=30) == 0, f"client {k} did not exit 0"
        st = job.status()
        survivors = [k for k in range(1, 7) if k != victim]
        assert sorted(u[0] for u in job.updates_of(1)) == sorted(cid[k] for k in survivors)
        # every survivor entered with weight 1
        assert st["rounds"][0]["samples"] == len(survivors), st["rounds"][0]

        ckpt = job.checkpoints()
        g = flat(read_safetensors(ckpt[0][0])[0])
        model = flat(read_safetensors(ckpt[1][0])[0])
        n, m = len(model), len(survivors)
        clipped, norms = [], []
        for k in survivors:
            d = [a - b for a, b in zip(flat(read_safetensors(job.kept_update(k, 1))[0]), g)]
            nrm = math.sqrt(sum(x * x for x in d))
            norms.append(nrm)
            clipped.append([x * min(1.0, clip / nrm) if nrm > 0 else x for x in d])
        want = [g[i] + sum(c[i] for c in clipped) / m for i in range(n)]
        dist = math.sqrt(sum((a - b) ** 2 for a, b in zip(model, want)))
        m_min = 4  # min_clients; the threshold of a 4-party round is 2
        sd_mean = math.sqrt(m) * z * clip / math.sqrt(m_min) / m
        expect = sd_mean * math.sqrt(n)
        print(f"       update norms {', '.join(f'{x:.3f}' for x in norms)} (clip {clip}); "
              f"committed model {dist:.4f} from the mean of the {m} clipped deltas, "
              f"noise expected {expect:.4f} (per weight {sd_mean:.2e})")
        assert 0.9 * expect < dist < 1.1 * expect, (dist, expect)

        db = job.db()
        ledger = db.execute("SELECT round, epsilon, delta FROM privacy ORDER BY round").fetchall()
        db.close()
        assert [r[0] for r in ledger] == list(range(1, rounds + 1)), ledger
        eps = [r[1] for r in ledger]
        assert all(0 < a < b for a, b in zip(eps, eps[1:])), eps
        assert abs(st["privacy"]["epsilon"] - eps[-1]) < 1e-9 * eps[-1], st["privacy"]
        assert st["privacy"]["noise_at"] == "sites", st["privacy"]
        log = open(os.path.join(job.dir, "client-1.log")).read()
        assert log.count("clipped and noised at the site") == rounds
        secs = ", ".join(f"{r['secs']:.2f}" for r in st["rounds"])
        eps_s = ", ".join(f"{e:.3f}" for e in eps)
        print(f"       ledger epsilon {eps_s} (delta {ledger[0][2]:g}); round secs {secs}")
    finally:
        job.close()


if __name__ == "__main__":
    s = Suite("secagg_tests")
    s.run(test_secure_round_with_dropouts)
    s.run(test_cost_secure_vs_plain)
    s.run(test_lying_client_is_excluded)
    s.run(test_dp_noise_at_sites)
    s.finish()
