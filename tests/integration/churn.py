#!/usr/bin/env python3
"""churn.py - clients joining, long-polling and dropping while others are
allowed (the churn probe of the hardening suite; run it against an
ASan+UBSan build).

    churn.py [--cycles N] [--clients M] [--allow-every S]

A coordinator with [server] enroll = open and a quorum nobody reaches (so
every poll stays pending). Each cycle, M clients (each its own certificate)
open a TLS connection, POST /v1/join, send GET /v1/task?wait=30 and leave it
pending; once all M polls are in, every connection is dropped at once (the
coordinator aborts M pending polls). Meanwhile a thread runs
`fedc-coordinator allow FINGERPRINT` for a new made-up fingerprint every S
seconds; the daemon picks them up every 2 s, so its client array keeps
growing (and moving) under pending polls. Each client offers its last TLS
session again, as fedc-client does, so a cycle's handshakes resume (the
coordinator issues session tickets); --no-resume makes every one full.
At the end: the daemon still serves, its peak RSS is reported, SIGTERM
ends it with exit 0, and its log has no sanitizer report.
"""
import argparse
import concurrent.futures
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job, mem_kb  # noqa: E402

SANITIZER = re.compile(r"Sanitizer|runtime error:")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--allow-every", type=float, default=0.25)
    ap.add_argument("--no-resume", action="store_true")
    a = ap.parse_args()
    n = a.clients
    job = Job("churn", n, sizes=[20] * n, rounds=1, clients_per_round=100000,
              min_clients=100000, enroll="open", poll_s=30)
    # every client comes from 127.0.0.1: the per-address limits, meant for a
    # flood from one source, are turned off as for any single-address load
    job.set_server_keys(max_conns_per_source=0, handshake_rate=0)
    stop = threading.Event()
    allowed = [0]
    failures = []

    def allow_loop():
        while not stop.is_set():
            fp = secrets.token_hex(32)
            r = job.coordinator_cmd("allow", fp, "--name", f"extra-{allowed[0]}")
            if r.returncode != 0:
                failures.append(f"allow: {r.stderr.strip()}")
                return
            allowed[0] += 1
            stop.wait(a.allow_every)

    ctxs = []
    for k in range(1, n + 1):
        c = ssl.create_default_context(cafile=job.pki("ca.pem"))
        c.load_cert_chain(job.pki(f"client-{k}.pem"), job.pki(f"client-{k}.key"))
        ctxs.append(c)
    sessions = [None] * n
    resumed = [0]
    ok = False
    try:
        p = job.start_coordinator()
        t = threading.Thread(target=allow_loop, daemon=True)
        t.start()
        t0 = time.time()
        polls_total = 0
        pool = concurrent.futures.ThreadPoolExecutor(8)

        def join_and_poll(cycle, k):
            """Client k+1's connection with its join answered and its poll sent."""
            s = ctxs[k].wrap_socket(socket.create_connection(("127.0.0.1", job.port), timeout=20),
                                    server_hostname="127.0.0.1",
                                    session=None if a.no_resume else sessions[k])
            if s.session_reused:
                resumed[0] += 1
            sessions[k] = s.session
            body = json.dumps({"name": f"churn-{k + 1}"}).encode()
            s.sendall(b"POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            data = b""
            while b"\r\n\r\n" not in data:
                d = s.recv(65536)
                assert d, f"cycle {cycle}: join of client {k + 1}: connection closed"
                data += d
            assert data.startswith(b"HTTP/1.1 200 "), (cycle, k + 1, data[:200])
            head, rest = data.split(b"\r\n\r\n", 1)
            m = re.search(rb"Content-Length: (\d+)", head)
            want = int(m.group(1)) if m else 0
            while len(rest) < want:
                d = s.recv(65536)
                assert d, "join answer cut"
                rest += d
            s.sendall(b"GET /v1/task?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n")
            return s

        for cycle in range(a.cycles):
            socks = list(pool.map(lambda k: join_and_poll(cycle, k), range(n)))
            # every poll pending, then dropped at once
            st = job.status()
            assert st is not None, f"cycle {cycle}: no status"
            for s in socks:
                s.close()
            polls_total += len(socks)
            assert p.poll() is None, f"cycle {cycle}: the coordinator exited {p.returncode}"
            if failures:
                raise AssertionError(failures[0])
            if (cycle + 1) % max(1, a.cycles // 10) == 0:
                print(f"       cycle {cycle + 1}/{a.cycles}: {time.time() - t0:.0f} s, "
                      f"{len(st['clients'])} clients known, {allowed[0]} allowed meanwhile, "
                      f"RSS {mem_kb(p.pid, 'VmRSS') / 1024:.0f} MiB", flush=True)
        secs = time.time() - t0
        pool.shutdown()
        stop.set()
        t.join(timeout=10)
        with urllib.request.urlopen(f"http://127.0.0.1:{job.status_port}/v1/status",
                                    timeout=5) as r:
            known = len(json.loads(r.read())["clients"])
        rss, hwm = mem_kb(p.pid, "VmRSS"), mem_kb(p.pid, "VmHWM")
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        log = open(os.path.join(job.dir, "coordinator.log"), errors="replace").read()
        assert rc == 0, f"exit {rc}: {log[-3000:]}"
        m = SANITIZER.search(log)
        assert m is None, log[max(0, m.start() - 200):m.start() + 3000]
        print(f"churn: {a.cycles} cycles of {n} clients ({polls_total} polls aborted), "
              f"{allowed[0]} fingerprints allowed meanwhile, {known} clients known at the end, "
              f"{resumed[0]} handshakes resumed, "
              f"{secs:.0f} s; RSS {rss / 1024:.0f} MiB, peak {hwm / 1024:.0f} MiB; "
              f"exit 0, no sanitizer report")
        ok = True
    finally:
        stop.set()
        job.close(keep=not ok)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"churn: FAILED: {e}")
        sys.exit(1)
