#!/usr/bin/env python3
"""tls_attack.py - a hostile peer for the coordinator's TLS port, for the
attack tests (tests/integration/attack_tls_tests.py, tests/long/test_flood.sh).

Two modes, run together or apart, each from chosen loopback source
addresses (127.0.0.0/8 is all local on Linux, so one machine plays many
sources):

  slow   N connections that trickle a real ClientHello one byte per
         second and never finish it; a connection that is closed is
         opened again at once, so the coordinator's slots stay under
         pressure;
  flood  a replayed ClientHello (captured once from Python's ssl) sent on
         new connections as fast as one thread can: the attacker spends no
         crypto, the coordinator answers with a signed key exchange unless
         it refuses the connection first.

Prints one JSON line with what happened (connections opened, closed by
the server, flood hellos sent and answered). Standard library only.

  tls_attack.py --port P [--slow N] [--flood-s S] [--seconds T]
                [--slow-src 127.0.0.2,127.0.0.3] [--flood-src 127.0.0.9]
"""
import argparse
import json
import resource
import selectors
import socket
import ssl
import sys
import threading
import time


def client_hello():
    """A real TLS 1.2 ClientHello, as Python's ssl writes it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def slow(port, n, sources, seconds, stats, stop):
    """n trickling connections, spread over sources, refilled when closed."""
    hello = client_hello()
    sel = selectors.DefaultSelector()
    conns = {}

    def open_one(i):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.bind((sources[i % len(sources)], 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            return
        conns[s] = [i, 0]
        sel.register(s, selectors.EVENT_READ)
        stats["slow_opened"] += 1

    for i in range(n):
        open_one(i)
    end = time.time() + seconds
    next_tick = time.time()
    while time.time() < end and not stop.is_set():
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                i = conns.pop(s)[0]
                sel.unregister(s)
                s.close()
                stats["slow_closed_by_server"] += 1
                open_one(i)
        if time.time() >= next_tick:
            next_tick += 1.0
            stats["slow_open_now"] = len(conns)
            for s, st in list(conns.items()):
                if st[1] < len(hello) - 1:  # never the last byte
                    try:
                        s.send(hello[st[1]:st[1] + 1])
                        st[1] += 1
                    except OSError:
                        pass
    for s in conns:
        s.close()


def flood(port, sources, seconds, stats, stop):
    """Replayed ClientHellos on fresh connections as fast as one thread can:
    connect, send, close, without waiting for the answer (the coordinator
    reads the hello before it sees the close, and answers it unless it
    refused the connection first). Every 50th connection waits for the
    answer, to count how many are answered and how many refused."""
    hello = client_hello()
    end = time.time() + seconds
    k = 0
    while time.time() < end and not stop.is_set():
        s = socket.socket()
        s.settimeout(2)
        try:
            s.bind((sources[k % len(sources)], 0))
            k += 1
            s.connect(("127.0.0.1", port))
            s.sendall(hello)
            stats["flood_sent"] += 1
            if k % 50 == 0:
                if s.recv(4096):
                    stats["flood_answered"] += 1
                else:
                    stats["flood_refused"] += 1
        except OSError:
            stats["flood_errors"] += 1
        finally:
            s.close()


def run(port, slow_n=0, slow_src=("127.0.0.2",), flood_s=0.0, flood_src=("127.0.0.9",),
        seconds=10.0, stop=None):
    """Both modes in threads; returns the stats dict when done (or stopped)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # one descriptor per slow connection
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = dict(slow_opened=0, slow_closed_by_server=0, slow_open_now=0, flood_sent=0,
                 flood_answered=0, flood_refused=0, flood_errors=0)
    stop = stop or threading.Event()
    threads = []
    if slow_n:
        threads.append(threading.Thread(target=slow, args=(port, slow_n, list(slow_src), seconds,
                                                           stats, stop)))
    if flood_s > 0:
        threads.append(threading.Thread(target=flood, args=(port, list(flood_src), flood_s, stats,
                                                            stop)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--slow", type=int, default=0)
    ap.add_argument("--slow-src", default="127.0.0.2")
    ap.add_argument("--flood-s", type=float, default=0)
    ap.add_argument("--flood-src", default="127.0.0.9")
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    st = run(a.port, a.slow, a.slow_src.split(","), a.flood_s, a.flood_src.split(","), a.seconds)
    print(json.dumps(st))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
