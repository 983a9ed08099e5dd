#!/usr/bin/env python3
"""attack_http.py - the coordinator's HTTP layer against hostile peers
(docs/operations.md, "Limits and hostile peers"). Each case a few
seconds, on a real coordinator (harness.Job):

1. Pipelined GET / flood whose answers are never read, on the plain status
   port and on the TLS port: the daemon's peak RSS (VmHWM) grows by less
   than RSS_BOUND_MB, and another client is still served meanwhile.
2. Slowloris: headers trickled one byte per second are answered 408 at
   [server] header_timeout_s; a body trickled under min_rate_bytes_s is
   answered 408 within a rate window or two; a slow but reasonable client
   (headers over 1.5 s, a body at 5x the minimum rate) gets its 200.
3. Authorization before the body: 20 POSTs declaring 64 MiB each, to the
   status port and to /v1/update with a certificate that is not enrolled,
   are answered (405 / 403) as soon as their headers are in, and pushing 4
   MiB of body after each does not grow the daemon's RSS.
4. HEAD / on both ports: 200 with the page's Content-Length and no body.

FEDC_ATTACK_FULL=1 (tests/long/test_attack_http.sh) pushes the whole 64
MiB of each refused body. FEDC_ATTACK_OLD_CONFIG=1 leaves the new [server] keys out of the config, to
run these cases against a coordinator that predates them (they must fail).
"""
import os
import socket
import ssl
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, Suite, mem_kb  # noqa: E402

RSS_BOUND_MB = 64
# Under ASan, freed blocks sit in a quarantine (256 MiB by default) and would
# count as growth: keep it small so that the bound means the same there.
ENV = {"ASAN_OPTIONS": "quarantine_size_mb=8:" + os.environ.get("ASAN_OPTIONS", "")}
HEADER_S = 2
OLD = os.environ.get("FEDC_ATTACK_OLD_CONFIG") == "1"
FULL = os.environ.get("FEDC_ATTACK_FULL") == "1"  # the whole 64 MiB bodies (tests/long)


def job_with(name, n, **server):
    job = Job(name, n, rounds=1, clients_per_round=8, min_clients=8, poll_s=5)
    if server and not OLD:
        job.set_server_keys(**server)
    return job


def tls_ctx(job, cert="client-1"):
    ctx = ssl.create_default_context(cafile=job.pki("ca.pem"))
    ctx.load_cert_chain(job.pki(cert + ".pem"), job.pki(cert + ".key"))
    return ctx


def connect(job, tls, cert="client-1", timeout=5):
    s = socket.create_connection(("127.0.0.1", job.port if tls else job.status_port),
                                 timeout=timeout)
    if tls:
        s = tls_ctx(job, cert).wrap_socket(s, server_hostname="127.0.0.1")
    return s


def read_head(s, timeout):
    """The status code and headers of the first answer (or None when the
    connection closes or nothing comes within timeout)."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            k = s.recv(65536)
            if not k:
                break
            data += k
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None, data
    return int(data[9:12]), data


def served_meanwhile(job):
    t0 = time.time()
    with urllib.request.urlopen(f"http://127.0.0.1:{job.status_port}/v1/status",
                                timeout=3) as r:
        assert r.status == 200
    return time.time() - t0


def flood(job, tls):
    """Pipeline GET / for up to 3 s (at most 8 MB), never reading; the
    daemon's peak RSS growth and whether others are served meanwhile."""
    pid = job.coordinator.pid
    for _ in range(20):  # warm up: the page and a few connections
        served_meanwhile(job)
    base = mem_kb(pid, "VmHWM")
    s = connect(job, tls)
    s.settimeout(0.2)
    chunk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
    sent, t0 = 0, time.time()
    while time.time() - t0 < 3 and sent < 8 << 20:
        data = chunk
        while data and time.time() - t0 < 3:
            try:
                n = s.send(data)
                data = data[n:]
                sent += n
            except (socket.timeout, ssl.SSLWantWriteError):
                continue
            except OSError:
                data = b""
                break
    took = served_meanwhile(job)
    grow = (mem_kb(pid, "VmHWM") - base) / 1024
    s.close()
    assert job.coordinator.poll() is None, "the coordinator died"
    assert grow < RSS_BOUND_MB, \
        f"{sent / 1e6:.1f} MB of pipelined GET / grew the peak RSS by {grow:.0f} MiB"
    assert took < 2, f"another client waited {took:.1f} s"
    print(f"       {'tls' if tls else 'plain'}: {sent / 1e6:.1f} MB of pipelined GET / "
          f"accepted in 3 s, peak RSS +{grow:.1f} MiB (bound {RSS_BOUND_MB}), "
          f"others served in {took * 1000:.0f} ms")


def test_pipelined_flood():
    job = job_with("flood", 1)
    try:
        job.allow_all()
        job.start_coordinator(ENV)
        flood(job, tls=False)
        flood(job, tls=True)
    finally:
        job.close()


def test_slow_peers():
    job = job_with("slow", 2, header_timeout_s=HEADER_S, request_timeout_s=8,
                   min_rate_bytes_s=100, rate_window_s=1)
    try:
        job.allow_all()
        job.start_coordinator(ENV)
        # slowloris: one header byte a second on the status port
        s = connect(job, tls=False)
        s.settimeout(0.05)
        req = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        t0, closed, got = time.time(), None, b""
        for b in req:
            try:
                s.send(bytes([b]))
            except OSError:
                closed = time.time() - t0
                break
            end = time.time() + 1
            while time.time() < end:
                try:
                    k = s.recv(4096)
                except socket.timeout:
                    continue
                got += k
                if not k:
                    closed = time.time() - t0
                break
            if closed or time.time() - t0 > HEADER_S + 4:
                break
        s.close()
        assert closed is not None and closed < HEADER_S + 1.5, \
            f"a one-byte-a-second header not closed after {time.time() - t0:.1f} s"
        assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        print(f"       slowloris headers: 408 and closed after {closed:.1f} s "
              f"(header_timeout_s {HEADER_S})")

        # a body trickled at 10 bytes/s, under the minimum of 100
        s = connect(job, tls=True)
        s.sendall(b"POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        t0, closed = time.time(), None
        s.settimeout(0.1)
        got = b""
        while time.time() - t0 < 6:
            try:
                s.send(b"x")
            except OSError:
                closed = time.time() - t0
                break
            try:
                k = s.recv(4096)
                got += k
                if not k or got.startswith(b"HTTP/1.1 408"):
                    closed = time.time() - t0
                    break
            except (socket.timeout, ssl.SSLWantReadError):
                pass
        s.close()
        assert closed is not None and closed < 3.5, \
            f"a body at 10 bytes/s still open after {time.time() - t0:.1f} s"
        assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        print(f"       body at 10 B/s (minimum 100 B/s over 1 s): 408 after {closed:.1f} s")

        # slow but reasonable: headers over 1.5 s, a 600-byte body at 500 B/s
        body = b'{"name": "slow-but-fine"' + b" " * 576 + b"}"
        head = (b"POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        s = connect(job, tls=True, cert="client-2")
        t0 = time.time()
        for i in range(0, len(head), 16):
            s.sendall(head[i:i + 16])
            time.sleep(1.5 / (len(head) / 16))
        for i in range(0, len(body), 50):
            s.sendall(body[i:i + 50])
            time.sleep(0.1)
        status, data = read_head(s, 5)
        s.close()
        assert status == 200, (status, data[:200])
        print(f"       slow but reasonable client: 200 after {time.time() - t0:.1f} s")

        # each closing is counted in /metrics, by reason and listener
        counts = {}
        for line in job.metrics().splitlines():
            if line.startswith("fedc_http_closed_total{"):
                key, val = line.rsplit(" ", 1)
                counts[key[len("fedc_http_closed_total"):]] = int(val)
        assert counts.get('{reason="header_timeout",listener="status"}', 0) >= 1, counts
        assert counts.get('{reason="slow",listener="tls"}', 0) >= 1, counts
        hdr = counts['{reason="header_timeout",listener="status"}']
        slow = counts['{reason="slow",listener="tls"}']
        print(f"       /metrics: header_timeout on the status port {hdr}, slow on the TLS port {slow}")
    finally:
        job.close()


def big_posts(job, tls, path, cert, want):
    """20 POSTs declaring 64 MiB: the refusal must come before the body;
    then 4 MiB of body is pushed on each (dropped, never kept)."""
    pid = job.coordinator.pid
    base = mem_kb(pid, "VmHWM")
    block = b"\0" * (1 << 20)
    t0 = time.time()
    for _ in range(20):
        s = connect(job, tls, cert)
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % (path.encode(), 64 << 20))
        status, data = read_head(s, 3)
        assert status == want, f"POST {path} ({'tls' if tls else 'plain'}): " \
            f"{status} {data[:120]!r} (want {want} before the body)"
        s.settimeout(2)
        try:
            for _ in range(64 if FULL else 4):
                s.sendall(block)
        except OSError:
            pass  # the daemon closed: fine
        s.close()
    grow = (mem_kb(pid, "VmHWM") - base) / 1024
    assert grow < RSS_BOUND_MB, f"20 refused 64 MiB POSTs grew the peak RSS by {grow:.0f} MiB"
    print(f"       {'tls' if tls else 'plain'} POST {path}: {want} before the body, 20 of them in "
          f"{time.time() - t0:.1f} s, peak RSS +{grow:.1f} MiB (bound {RSS_BOUND_MB})")


def test_refused_before_body():
    job = job_with("early", 2)
    try:
        job.coordinator_cmd("allow", job.pki("client-1.pem"))  # client-2 is not enrolled
        job.start_coordinator(ENV)
        big_posts(job, False, "/v1/status", None, 405)
        big_posts(job, True, "/v1/update", "client-2", 403)
        big_posts(job, True, "/v1/nowhere", "client-1", 404)
        assert served_meanwhile(job) < 2
    finally:
        job.close()


def test_head():
    job = job_with("head", 1)
    try:
        job.allow_all()
        job.start_coordinator(ENV)
        for tls in (False, True):
            s = connect(job, tls)
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/status HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            status, data = read_head(s, 3)
            assert status == 200, (tls, status, data[:200])
            hdr = data.split(b"\r\n\r\n", 1)
            length = [ln for ln in hdr[0].split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            assert length and int(length[0].split(b":")[1]) > 1000, hdr[0]
            # no body: what follows the HEAD answer is the next answer
            rest = hdr[1]
            s.settimeout(3)
            while b"\r\n\r\n" not in rest:
                k = s.recv(65536)
                if not k:
                    break
                rest += k
            s.close()
            assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]
        print("       HEAD /: 200 with Content-Length and no body, on both ports")
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("attack_http")
    for t in (test_head, test_pipelined_flood, test_slow_peers, test_refused_before_body):
        suite.run(t)
    suite.finish()
