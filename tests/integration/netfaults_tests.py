#!/usr/bin/env python3
"""netfaults_tests.py - a real coordinator and real clients talking through
a fault-injecting TCP proxy (tests/tools/faultproxy.c) on 127.0.0.1.

1. Rounds through faults: 4 clients reach the coordinator only through the
   proxy, which delays chunks, cuts connections, stalls them longer than
   [server] idle_timeout_s and flips bits in the clients' TLS records.
   All 5 rounds commit (the clients retry), every committed model is the
   sample-weighted average of the updates the clients kept copies of, no
   corrupted byte reached the HTTP layer (no update refused for its
   content, every corrupted connection dropped by the coordinator and
   counted in fedc_tls_errors_total), and every stalled connection was
   closed by the coordinator within idle_timeout_s + 1 s.
2. A connection that stalls in its TLS handshake (either direction) is
   closed by the coordinator within idle_timeout_s + 1 s, as seen in
   /metrics (fedc_connections back to where it was) and by the proxy.

The proxy's fault plan is drawn from a seed and the connection's number;
the seeds below were chosen so that the first connections carry each kind
of fault (test 1: connections 1-4 and again 5-8), and the tests check that
with `faultproxy --plans`.
"""
import os
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the tests
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coordinator_tests import check_averages  # noqa: E402
from harness import BUILD, ROOT, Job, Suite, free_port  # noqa: E402

PROXY = os.path.join(BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD),
                     "tests", "faultproxy")
IDLE_S = 2            # [server] idle_timeout_s for these jobs
STALL_MS = 3500       # longer than IDLE_S + 1 s: the coordinator must act first
CONTENT_CODES = ("bad_request", "bad_container", "bad_dtype", "bad_shape", "non_finite",
                 "bad_checksum", "bad_metadata")


class ProxiedJob(Job):
    """A Job whose clients reach the coordinator through the fault proxy."""

    def __init__(self, name, n_clients, **cfg):
        self.proxy_port = free_port()
        super().__init__(name, n_clients, **cfg)

    def write_coordinator_config(self):
        super().write_coordinator_config()
        with open(self.coord_ini) as f:
            text = f.read()
        assert "idle_timeout_s = 10\n" in text
        with open(self.coord_ini, "w") as f:
            f.write(text.replace("idle_timeout_s = 10\n", f"idle_timeout_s = {IDLE_S}\n"))

    def client_ini(self, k, **kw):
        path = super().client_ini(k, **kw)
        with open(path) as f:
            text = f.read()
        direct = f"url = https://127.0.0.1:{self.port}\n"
        assert direct in text
        with open(path, "w") as f:
            f.write(text.replace(direct, f"url = https://127.0.0.1:{self.proxy_port}\n"))
        return path

    def start_proxy(self, flags):
        self.proxy_log = os.path.join(self.dir, "proxy.log")
        log = open(self.proxy_log, "ab")
        p = subprocess.Popen([PROXY, "--listen", f"127.0.0.1:{self.proxy_port}",
                              "--upstream", f"127.0.0.1:{self.port}", "--duration", "120"] + flags,
                             stdout=log, stderr=log)
        self.procs.append(p)
        self.wait_for(lambda: any(e["event"] == "listening" for e in self.proxy_events()), 5,
                      "the proxy to listen")
        return p

    def proxy_events(self):
        """The proxy's event lines as dicts (numbers where they parse)."""
        out = []
        with open(self.proxy_log) as f:
            for line in f:
                if not line.startswith("faultproxy "):
                    continue
                e = {}
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    try:
                        e[k] = float(v) if "." in v else int(v)
                    except ValueError:
                        e[k] = v
                out.append(e)
        return out


def plans(flags, n):
    """The fault plans of the proxy's connections 1..n (faultproxy --plans)."""
    r = subprocess.run([PROXY, "--listen", "127.0.0.1:1", "--upstream", "127.0.0.1:2",
                        "--plans", str(n)] + flags, capture_output=True, text=True, check=True)
    return [dict(kv.split("=", 1) for kv in line.split()) for line in r.stdout.splitlines()]


def metric(text, name):
    """A metric's value from Prometheus text (a name with its labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


FAULTS = ["--seed", "217", "--delay", "0.2", "--delay-ms", "40", "--cut", "0.15",
          "--corrupt", "0.15", "--stall", "0.1", "--stall-ms", str(STALL_MS),
          "--cut-bytes", "40000", "--stall-bytes", "40000"]


def test_rounds_through_faults():
    # every kind of fault among the clients' first connections, and again
    # among the next four, whichever client gets which
    p = [q["fault"] for q in plans(FAULTS, 8)]
    for group in (p[:4], p[4:]):
        assert {"cut", "corrupt", "stall"} <= set(group), f"seed no longer plans every fault: {p}"
    job = ProxiedJob("netfaults", 4, rounds=5, poll_s=1, round_timeout_s=20)
    try:
        job.allow_all()
        job.start_coordinator()
        job.start_proxy(FAULTS)
        t0 = time.time()
        clients = [job.start_client(k) for k in range(1, 5)]
        for p in clients:
            assert p.wait(timeout=60) == 0, "a client did not finish with exit 0"
        secs = time.time() - t0
        assert job.committed() == 5
        worst = check_averages(job, 5)
        m = job.metrics()
        assert metric(m, "fedc_updates_accepted_total") >= 20
        for code in CONTENT_CODES:
            n = metric(m, f'fedc_updates_rejected_total{{reason="{code}"}}')
            assert n == 0, f"{n:.0f} requests refused as {code}: corrupted bytes got through TLS"
        ev = job.proxy_events()
        by_conn = {}
        for e in ev:
            if "conn" in e:
                by_conn.setdefault(e["conn"], []).append(e)
        corrupt = [e for e in ev if e["event"] == "corrupt"]
        stalls = [e for e in ev if e["event"] == "stall"]
        cuts = [e for e in ev if e["event"] == "cut"]
        assert corrupt and stalls and cuts, \
            f"faults fired: {len(corrupt)} corrupt, {len(stalls)} stall, {len(cuts)} cut"
        # every corrupted connection was dropped by the coordinator, at once
        for c in corrupt:
            up = [e for e in by_conn[c["conn"]] if e["event"] == "upstream_closed"]
            assert up and up[0]["t"] - c["t"] < 1.0, \
                f"connection {c['conn']}: corrupted, not dropped by the coordinator ({up})"
        tls_errors = metric(m, "fedc_tls_errors_total")
        assert 1 <= tls_errors <= len(corrupt), (tls_errors, len(corrupt))
        # every stalled connection was closed by the coordinator within idle + 1 s
        worst_close = 0
        for s in stalls:
            up = [e for e in by_conn[s["conn"]] if e["event"] == "upstream_closed"]
            assert up and up[0]["in_stall"] == 1, \
                f"connection {s['conn']}: still open at the end of a {STALL_MS} ms stall"
            worst_close = max(worst_close, up[0]["after_ms"])
            assert up[0]["after_ms"] <= (IDLE_S + 1) * 1000, up[0]
        assert metric(m, "fedc_connections_idle_closed_total") >= len(stalls)
        # and nothing is left open once the clients are gone
        job.wait_for(lambda: metric(job.metrics(), "fedc_connections") <= 1, IDLE_S + 1,
                     "the coordinator's connections to close")
        conns = max(e["conn"] for e in ev if "conn" in e)
        print(f"       {secs:.1f} s, {conns} connections: {len(cuts)} cut, {len(corrupt)} corrupted "
              f"({tls_errors:.0f} TLS errors at the coordinator), {len(stalls)} stalled "
              f"(closed after at most {worst_close:.0f} ms, idle timeout {IDLE_S} s); "
              f"models exact to {worst:.1e}")
    finally:
        job.close()


def test_stall_in_handshake_closed():
    flags = ["--seed", "3", "--stall", "1", "--stall-bytes", "1", "--stall-ms", "5000"]
    dirs = [p["dir"] for p in plans(flags, 2)]
    assert dirs == ["c2s", "s2c"], dirs
    job = ProxiedJob("stall", 1, rounds=1)
    try:
        job.allow_all()
        job.start_coordinator()
        job.start_proxy(flags)
        ctx = ssl.create_default_context(cafile=job.pki("ca.pem"))
        ctx.load_cert_chain(job.pki("client-1.pem"), job.pki("client-1.key"))
        for conn, direction in ((1, "c2s"), (2, "s2c")):
            base = metric(job.metrics(), "fedc_connections")
            sock = socket.create_connection(("127.0.0.1", job.proxy_port), timeout=5)
            tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1", do_handshake_on_connect=False)
            tls.setblocking(False)
            t0 = time.time()
            try:
                tls.do_handshake()  # sends the ClientHello, then waits for an answer
            except ssl.SSLWantReadError:
                pass
            job.wait_for(lambda: metric(job.metrics(), "fedc_connections") > base, 2,
                         "the coordinator to count the connection")
            job.wait_for(lambda: metric(job.metrics(), "fedc_connections") <= base,
                         IDLE_S + 1 - (time.time() - t0),
                         f"the coordinator to close a connection stalled {direction}")
            took = time.time() - t0
            tls.close()
            up = [e for e in job.proxy_events() if e.get("conn") == conn and
                  e["event"] == "upstream_closed"]
            assert up and up[0]["in_stall"] == 1 and up[0]["after_ms"] <= (IDLE_S + 1) * 1000, up
            print(f"       stalled {direction} in the handshake: closed after {took:.2f} s "
                  f"(proxy: {up[0]['after_ms']:.0f} ms; idle timeout {IDLE_S} s)")
        assert metric(job.metrics(), "fedc_connections_idle_closed_total") >= 2
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("netfaults_tests")
    only = sys.argv[1:]
    for fn in (test_rounds_through_faults, test_stall_in_handshake_closed):
        if not only or fn.__name__ in only:
            suite.run(fn)
    suite.finish()
