#!/usr/bin/env python3
"""coordinator_round.py - seconds per round of the real coordinator with 50
real clients over mutual TLS on loopback, with a ~1M-parameter model
(MLP 784-1000-200-10: 987,210 weights, 3.95 MB per update).

Each client trains one epoch on 60 private images, so the round is
dominated by moving and checking 50 updates: TLS, the SHA-256 of every
container, decoding, folding into the exact running sum, and the commit.
Prints one line per round and a summary with the median, the coordinator's
received bytes per second, and mbedTLS's own cipher and hash speeds on this
machine (bench/crypto_speed.c) to set them against.

    FEDC_BUILD=build python3 bench/coordinator_round.py [CLIENTS] [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Job  # noqa: E402


def crypto_speed():
    exe = "/tmp/fedc-crypto-speed"
    subprocess.run(["cc", "-O2", "-I" + os.path.join(ROOT, "include"),
                    "-I" + os.path.join(ROOT, "shared"),
                    os.path.join(ROOT, "bench/crypto_speed.c"),
                    os.path.join(ROOT, "shared/base/mbedtls_compat.c"),
                    os.path.join(ROOT, "shared/base/error.c"), "-o", exe,
                    "-lmbedcrypto"], check=True)
    return json.loads(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    job = Job("bench", n, sizes=[60] * n, rounds=rounds, round_timeout_s=600,
              model="mlp", hidden="1000,200", epochs=1, poll_s=20)
    try:
        job.allow_all()
        job.start_coordinator()
        t0 = time.time()
        clients = [job.start_client(k, keep=False) for k in range(1, n + 1)]
        bytes0 = None
        for p in clients:
            rc = p.wait(timeout=1200)
            assert rc == 0, f"a client exited {rc}; logs in {job.dir}"
        wall = time.time() - t0
        st = job.status()
        secs = [r["secs"] for r in st["rounds"]]
        m = job.metrics()
        received = metric(m, "fedc_bytes_received_total")
        params = st["job"]["params"]
        for r in st["rounds"]:
            print(f"round {r['round']}: {r['clients']} clients, {r['secs']:.2f} s")
        steady = secs[1:] if len(secs) > 1 else secs
        med = statistics.median(steady)
        per_round = received / len(secs)
        speed = crypto_speed()
        print(f"\n{n} clients, {params} parameters ({params * 4 / 1e6:.2f} MB per update), "
              f"{len(secs)} rounds in {wall:.1f} s wall (incl. client start-up)")
        print(f"seconds per round (median of rounds 2..{len(secs)}): {med:.2f}")
        print(f"coordinator received {per_round / 1e6:.0f} MB per round: "
              f"{per_round / med / 1e6:.0f} MB/s over a round")
        print(f"mbedTLS on this machine: AES-128-GCM {speed['aes128_gcm_MBps']:.0f} MB/s, "
              f"ChaCha20-Poly1305 {speed['chacha20_poly1305_MBps']:.0f} MB/s (the suite "
              f"negotiated), SHA-256 {speed['sha256_MBps']:.0f} MB/s")
        print(json.dumps({"clients": n, "params": params, "sec_per_round": round(med, 3),
                          "rx_MBps": round(per_round / med / 1e6, 1), **speed}))
    finally:
        job.close()


if __name__ == "__main__":
    main()
