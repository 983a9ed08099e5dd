#!/usr/bin/env python3
"""example_coordinator_tests.py - examples/embedded_coordinator.c, a
coordinator embedded in a program's own libuv loop, runs a small real job:
3 real fedc-client processes over mutual TLS on loopback, 3 rounds. Each
round the program prints from its round-committed callback must be the
round the store committed (clients, samples, train loss), in order, and the
program must exit 0 on its own when the job-finished callback fires.

    example_coordinator_tests.py BINARY
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Job  # noqa: E402

ROUNDS = 3
CLIENTS = 3


def parse(line):
    return dict(kv.split("=", 1) for kv in line.split()[0:] if "=" in kv)


def main():
    binary = sys.argv[1]
    job = Job("example", CLIENTS, rounds=ROUNDS, round_timeout_s=20, poll_s=1)
    ok = False
    try:
        job.allow_all()
        out_path = os.path.join(job.dir, "example.out")
        err_path = os.path.join(job.dir, "example.err")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen([binary, job.coord_ini], stdout=out, stderr=err)
        job.procs.append(p)
        job.wait_for(lambda: "listening port=" in open(out_path).read() or p.poll() is not None,
                     15, "the example to listen")
        assert p.poll() is None, f"the example exited {p.returncode}: {open(err_path).read()[-800:]}"
        clients = [job.start_client(k, keep=False) for k in range(1, CLIENTS + 1)]
        t0 = time.time()
        try:
            rc = p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the example did not exit on job finished; logs in {job.dir}")
        assert rc == 0, f"the example exited {rc}: {open(err_path).read()[-800:]}"
        for k, c in enumerate(clients, 1):
            assert c.wait(timeout=60) == 0, f"client {k} exited {c.returncode}"
        lines = open(out_path).read().splitlines()
        printed = [parse(l) for l in lines if l.startswith("round=")]
        joined = [l for l in lines if l.startswith("joined ")]
        assert any(l.startswith("finished rounds_seen=3") for l in lines), lines
        assert len(joined) >= CLIENTS, f"joined callbacks: {joined}"
        assert [int(r["round"]) for r in printed] == list(range(1, ROUNDS + 1)), printed
        with job.db() as con:
            rows = list(con.execute("SELECT round, clients, samples, train_loss FROM rounds "
                                    "ORDER BY round"))
        assert len(rows) == ROUNDS, rows
        for r, (rnd, n_clients, samples, loss) in zip(printed, rows):
            assert int(r["round"]) == rnd and int(r["clients"]) == n_clients == CLIENTS, (r, rnd)
            assert int(r["samples"]) == samples, (r, samples)
            assert abs(float(r["train_loss"]) - loss) <= 1e-6 * max(1.0, abs(loss)), (r, loss)
        shas = job.checkpoints()
        assert sorted(shas) == list(range(0, ROUNDS + 1)), sorted(shas)
        print(f"  ok   the embedded coordinator printed {len(printed)} rounds matching the store "
              f"({time.time() - t0:.1f}s); final model sha256 {shas[ROUNDS][1][:16]}...")
        ok = True
    finally:
        job.close(keep=not ok)
    print(f"example_coordinator: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"  FAIL {e}")
        print("example_coordinator: FAILED")
        sys.exit(1)
