#!/usr/bin/env python3
"""agg_device_coord_tests.py - [strategy] device in the coordinator
(docs/cuda.md), as real processes on 127.0.0.1 (harness.Job).

1. device = auto: the coordinator starts and runs 2 rounds with 3 clients;
   without a GPU its log holds exactly one line saying it aggregates on the
   CPU and why, with one it says it aggregates on the GPU; either way every
   committed model is the sample-weighted average of the clients' kept
   updates within 1e-6 (coordinator_tests.check_averages).
2. device = cuda without a GPU: the coordinator refuses to start (exit 2)
   with one line naming the key and what is missing, before it listens.
   Skipped where a GPU is present.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Job, Skip, Suite  # noqa: E402
from coordinator_tests import check_averages  # noqa: E402

FALLBACK = "[strategy] device = auto: aggregating on the CPU"
ON_GPU = 'device=cuda msg="aggregating on the GPU"'


def log_of(job):
    with open(os.path.join(job.dir, "coordinator.log")) as f:
        return f.read()


def test_coordinator_auto():
    job = Job("agg-auto", 3, sizes=[200, 300, 400], rounds=2,
              extra="[strategy]\ndevice = auto\n")
    try:
        job.allow_all()
        job.start_coordinator()
        clients = [job.start_client(k) for k in range(1, 4)]
        for p in clients:
            assert p.wait(timeout=90) == 0, "a client did not finish with exit 0"
        assert job.committed() == 2
        log = log_of(job)
        if ON_GPU in log:
            print("       aggregated on the GPU")
        else:
            lines = [ln for ln in log.splitlines() if FALLBACK in ln]
            assert len(lines) == 1, f"{len(lines)} fallback lines in {job.dir}/coordinator.log"
            assert 'reason="agg_cuda: ' in lines[0], lines[0]
            print(f"       {lines[0][lines[0].index('reason='):][:120]}")
        worst = check_averages(job, 2)
        print(f"       max relative error of 2 committed models: {worst:.2e}")
    finally:
        job.close()


def test_coordinator_cuda_refused():
    job = Job("agg-cuda", 1, rounds=1, extra="[strategy]\ndevice = cuda\n")
    try:
        job.allow_all()
        r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", job.coord_ini],
                           capture_output=True, text=True, timeout=60)
        if r.returncode == 0 or "device = cuda" not in r.stderr and ON_GPU in r.stderr:
            raise Skip("a CUDA device is present: device = cuda is not refused")
        assert r.returncode == 2, f"exit {r.returncode}: {r.stderr[-400:]}"
        lines = [ln for ln in r.stderr.splitlines() if "device = cuda" in ln]
        assert len(lines) == 1 and "[strategy] device = cuda: agg_cuda: " in lines[0], r.stderr[-600:]
        assert job.status() is None, "the coordinator listened"
        print(f"       {lines[0][:160]}")
    finally:
        job.close()


if __name__ == "__main__":
    suite = Suite("agg_device_coord_tests")
    for fn in (test_coordinator_auto, test_coordinator_cuda_refused):
        suite.run(fn)
    suite.finish()
