#!/usr/bin/env python3
"""delta_tests.py - global models downloaded as lossless deltas from the
model a client holds (docs/protocol.md "Model deltas", docs/compression.md)
through the real coordinator and clients on loopback, over mutual TLS.

One job (an MLP, 3 clients, all in every round, 4 rounds) runs twice with the same
certificates and seed: with [server] model_deltas on (the default) and
off. Every committed model is byte-identical between the two runs (its
weights, the data section; the header names each run's job id); with
deltas on the coordinator sent deltas (fedc_model_downloads_total{kind=
"delta"} > 0, none with deltas off) and fewer bytes of models, and fewer
bytes in all on the clients' listener. Then, on the finished coordinator:
GET /v1/model/<r>?base=<r-1> is a delta naming its base
(X-Fedc-Delta-Base), which this file decodes independently (the format of
wire/model_delta.h) into exactly the whole model's bytes; a base that is
not r-1 (a client that skipped a round), a base that is not a number and
no base at all get the whole model. Last, a coordinator that serves
corrupt deltas (the test hook FEDC_TEST_CORRUPT_DELTA=1): every client
refuses each delta, fetches the whole model, and the committed models are
again those of the run without deltas."""
import hashlib
import json
import os
import re
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite  # noqa: E402

ROUNDS = 4


def metric(text, name, kind):
    m = re.search(r'^%s\{kind="%s"\} (\d+)$' % (re.escape(name), kind), text, re.M)
    assert m, (name, kind)
    return int(m.group(1))


def plain_metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    assert m, name
    return int(m.group(1))


def run(name, pki_from=None, env=None, **server):
    """Run the job to its end; (checkpoints, metrics text, job)."""
    job = Job(name, 3, rounds=ROUNDS, model="mlp",
              hidden="32")
    if pki_from:  # the same certificates: the same local shuffles, the same models
        shutil.rmtree(job.pki(""))
        shutil.copytree(pki_from, job.pki(""))
    if server:
        job.set_server_keys(**server)
    job.allow_all()
    job.start_coordinator(env=env)
    clients = [job.start_client(k) for k in (1, 2, 3)]
    job.wait_for(lambda: job.committed() >= ROUNDS, 120, f"{ROUNDS} rounds")
    for p in clients:
        p.wait(timeout=60)
        assert p.returncode == 0, (p.returncode, job.dir)
    return job.checkpoints(), job.metrics(), job


def weights(container):
    """A container's data section and its sha256 metadata (the job id in
    the header differs from run to run)."""
    n, = struct.unpack_from("<Q", container, 0)
    meta = json.loads(container[8:8 + n])["__metadata__"]
    data = container[8 + n:]
    assert hashlib.sha256(data).hexdigest() == meta["sha256"]
    return meta["round"], meta["sha256"], data


def get(job, path):
    conn = job.tls_connection()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, headers, body


def decode(delta, base):
    """The whole body rebuilt from a FEDCDLT1 delta and its base, in Python."""
    assert delta[:8] == b"FEDCDLT1"
    base_round, rnd = struct.unpack_from("<ii", delta, 8)
    blen, = struct.unpack_from("<Q", delta, 16)
    nlen, = struct.unpack_from("<Q", delta, 56)
    hn, hb, data, coded = struct.unpack_from("<QQQQ", delta, 96)
    assert blen == len(base) and hashlib.sha256(base).digest() == delta[24:56]
    head = delta[128:128 + hn]
    bits = int.from_bytes(delta[128 + hn:128 + hn + coded], "little")
    pos = 0

    def take(n):
        nonlocal pos
        v = (bits >> pos) & ((1 << n) - 1)
        pos += n
        return v

    words = data // 4
    out = bytearray(head)
    for i in range(0, words, 8):
        k = take(5)
        for j in range(i, min(i + 8, words)):
            q = 0
            while take(1):
                q += 1
                if q == 16:
                    break
            z = take(32) if q == 16 else (q << k) | take(k)
            d = (z >> 1) ^ (-(z & 1) & 0xFFFFFFFF)
            b, = struct.unpack_from("<I", base, hb + 4 * j)
            out += struct.pack("<I", (b + d) & 0xFFFFFFFF)
    out += delta[128 + hn + coded:]
    assert len(out) == nlen and hashlib.sha256(out).digest() == delta[64:96]
    return base_round, rnd, bytes(out)


def test_deltas_byte_identical():
    on, m_on, job_on = run("delta-on")
    try:
        off, m_off, job_off = run("delta-off", pki_from=job_on.pki(""), model_deltas="false")
        try:
            assert sorted(on) == sorted(off) and len(on) >= ROUNDS, (sorted(on), sorted(off))
            for r in sorted(on):  # the headers differ only by the job's id
                assert weights(on[r][0]) == weights(off[r][0]), \
                    f"round {r}: models differ with deltas on and off"
            d_on = metric(m_on, "fedc_model_downloads_total", "delta")
            f_on = metric(m_on, "fedc_model_downloads_total", "full")
            d_off = metric(m_off, "fedc_model_downloads_total", "delta")
            f_off = metric(m_off, "fedc_model_downloads_total", "full")
            assert d_off == 0 and d_on > 0, (d_on, d_off)
            assert d_on + f_on == f_off, (d_on, f_on, f_off)  # the same downloads
            # every client takes part in every round: only round 1 is whole
            assert f_on == 3 and d_on == 3 * (ROUNDS - 1), (f_on, d_on)
            b_on = sum(metric(m_on, "fedc_model_download_bytes_total", k)
                       for k in ("full", "delta"))
            b_off = metric(m_off, "fedc_model_download_bytes_total", "full")
            sent_on = plain_metric(m_on, "fedc_api_bytes_sent_total")
            sent_off = plain_metric(m_off, "fedc_api_bytes_sent_total")
            print(f"    downloads: deltas on {f_on} whole + {d_on} deltas, {b_on} model bytes, "
                  f"{sent_on} bytes sent; off {f_off} whole, {b_off} model bytes, "
                  f"{sent_off} bytes sent", flush=True)
            assert b_on < b_off and sent_on < sent_off, (b_on, b_off, sent_on, sent_off)

            # the finished coordinator still serves round ROUNDS + 1's model
            r = ROUNDS + 1
            st, h, whole = get(job_on, f"/v1/model/{r}")
            assert st == 200 and whole[:8] != b"FEDCDLT1" and "x-fedc-delta-base" not in h
            assert hashlib.sha256(whole).hexdigest() == h["x-fedc-sha256"]
            assert whole == on[ROUNDS][0]
            st, _, prev = get(job_on, f"/v1/model/{r - 1}")
            assert st == 200 and prev == on[ROUNDS - 1][0]
            st, h, delta = get(job_on, f"/v1/model/{r}?base={r - 1}")
            assert st == 200 and h.get("x-fedc-delta-base") == str(r - 1), h
            assert h["content-type"] == "application/x-fedc-model-delta", h
            assert hashlib.sha256(delta).hexdigest() == h["x-fedc-sha256"]
            assert len(delta) < len(whole), (len(delta), len(whole))
            br, rr, rebuilt = decode(delta, prev)
            assert (br, rr) == (r - 1, r) and rebuilt == whole
            # a client that skipped a round, or sent no usable base: whole
            for q in (f"?base={r - 2}", f"?base={r}", "?base=x", "?base=", ""):
                st, h, body = get(job_on, f"/v1/model/{r}{q}")
                assert st == 200 and body == whole and "x-fedc-delta-base" not in h, q
            # with deltas off, ?base= is ignored
            st, h, body = get(job_off, f"/v1/model/{r}?base={r - 1}")
            assert st == 200 and weights(body) == weights(whole), "deltas off"
            assert "x-fedc-delta-base" not in h
        finally:
            job_off.close()
    finally:
        job_on.close()


def test_bad_delta_then_whole_model():
    """A coordinator whose deltas are corrupt (FEDC_TEST_CORRUPT_DELTA): each
    client refuses every delta and downloads the whole model; the models
    are those of a run without deltas."""
    bad, m_bad, job_bad = run("delta-bad", env={"FEDC_TEST_CORRUPT_DELTA": "1"})
    try:
        good, _, job_good = run("delta-good", pki_from=job_bad.pki(""), model_deltas="false")
        try:
            for r in sorted(good):
                assert weights(bad[r][0]) == weights(good[r][0]), f"round {r}"
        finally:
            job_good.close()
        d = metric(m_bad, "fedc_model_downloads_total", "delta")
        f = metric(m_bad, "fedc_model_downloads_total", "full")
        assert d == 3 * (ROUNDS - 1) and f == 3 + d, (d, f)
        refused = 0
        for k in (1, 2, 3):
            with open(os.path.join(job_bad.dir, f"client-{k}.log")) as fh:
                refused += fh.read().count("model delta refused")
        assert refused == d, (refused, d)
    finally:
        job_bad.close()


if __name__ == "__main__":
    s = Suite("delta_tests")
    s.run(test_deltas_byte_identical)
    s.run(test_bad_delta_then_whole_model)
    s.finish()
