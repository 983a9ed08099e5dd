#!/bin/sh
# valgrind_client.sh - fedc-client under valgrind's memcheck through a short
# real job (docs/hardening.md; run by `make test-long`).
#
# A coordinator and two clients on loopback; client 2 runs under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
# with a local test set (so each global model is evaluated too), through a
# 3-round job during which the coordinator is killed with SIGKILL and
# restarted (so the client goes through its retry and backoff paths). Then
# a second run under valgrind: the client waits for a round that never
# opens and is stopped with SIGTERM (exit 5), which must free everything
# too. Each run must report "ERROR SUMMARY: 0 errors" and no definitely
# lost block; the job must commit all its rounds and every client exit 0.
#
# Valgrind knows no AVX-512, so the client under it is built without
# -march=native: $FEDC_VG_BUILD (make test-long builds it in
# $(BUILD)/valgrind with ARCH=); the coordinator and client 1 come from
# $FEDC_BUILD.
#
# Exit 77 (skipped, as scripts/run-tests.sh reads it) without valgrind.
BUILD=${FEDC_BUILD:-build}
VG_BUILD=${FEDC_VG_BUILD:-$BUILD/valgrind}
if ! command -v valgrind >/dev/null 2>&1; then
  echo "valgrind_client: SKIPPED: valgrind is not installed (apt-get install valgrind)"
  exit 77
fi
for b in "$BUILD/bin/fedc-coordinator" "$BUILD/bin/fedc-client" "$VG_BUILD/bin/fedc-client"; do
  if [ ! -x "$b" ]; then
    echo "valgrind_client: $b is not built"
    exit 1
  fi
done
exec python3 - "$VG_BUILD/bin/fedc-client" <<'EOF'
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, "tests/integration")
from harness import FMNIST, ROOT, Job  # noqa: E402

VG_CLIENT = os.path.abspath(sys.argv[1])
VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--error-exitcode=99", "--track-fds=no"]


def valgrind_client(job, k, log, extra=()):
    out = open(log + ".out", "ab")
    p = subprocess.Popen(VALGRIND + [f"--log-file={log}", VG_CLIENT, "--config",
                                     job.client_ini(k)] + list(extra),
                         stdout=out, stderr=out)
    job.procs.append(p)
    return p


def verdict(log, what):
    """(errors, definitely lost bytes) from a memcheck log; asserts both 0."""
    text = open(log).read()
    m = re.search(r"ERROR SUMMARY: ([\d,]+) errors", text)
    assert m, f"{what}: no ERROR SUMMARY in {log}"
    errors = int(m.group(1).replace(",", ""))
    lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
    lost = int(lost.group(1).replace(",", "")) if lost else 0
    assert errors == 0 and lost == 0, f"{what}: {errors} errors, {lost} bytes definitely lost:\n" \
        + text[-4000:]
    heap = re.search(r"total heap usage: ([\d,]+) allocs", text)
    return errors, lost, heap.group(1) if heap else "?"


def main():
    t0 = time.time()
    job = Job("valgrind", 2, rounds=3, round_timeout_s=120, poll_s=1)
    ok = False
    try:
        # a small local test set for client 2: 500 rows of Fashion-MNIST's test split
        subprocess.run([sys.executable, os.path.join(ROOT, "tests/tools/split_idx.py"),
                        f"{FMNIST}/t10k-images-idx3-ubyte.gz", f"{FMNIST}/t10k-labels-idx1-ubyte.gz",
                        os.path.join(job.dir, "test"), "500"], check=True, capture_output=True)
        test = os.path.join(job.dir, "test", "client-1")
        extra = ["--set", f"data.test={test}/train-images.idx",
                 "--set", f"data.test_labels={test}/train-labels.idx"]
        job.allow_all()
        job.start_coordinator()
        c1 = job.start_client(1)
        log = os.path.join(job.dir, "memcheck-job.log")
        c2 = valgrind_client(job, 2, log, extra)
        # kill -9 the coordinator once round 1 is in, and start it again
        job.wait_for(lambda: job.committed() >= 1, 300, "round 1")
        job.coordinator.send_signal(signal.SIGKILL)
        job.coordinator.wait()
        time.sleep(1.0)
        job.start_coordinator()
        assert c2.wait(timeout=600) == 0, f"the client under valgrind exited {c2.returncode}"
        assert c1.wait(timeout=60) == 0, f"client 1 exited {c1.returncode}"
        assert job.committed() == 3, f"{job.committed()} rounds committed"
        e1, l1, h1 = verdict(log, "3-round job with a coordinator restart")
        print(f"  ok   a 3-round job, a coordinator kill -9 and restart, a local test set: "
              f"{e1} errors, definitely lost {l1} bytes ({h1} allocations)", flush=True)
        job.coordinator.send_signal(signal.SIGTERM)
        assert job.coordinator.wait(timeout=20) == 0

        # stopped while waiting for a round that never opens (min_clients = 2)
        job.store = os.path.join(job.dir, "second.db")
        job.write_coordinator_config()
        job.allow_all()
        job.start_coordinator()
        log = os.path.join(job.dir, "memcheck-sigterm.log")
        c2 = valgrind_client(job, 2, log)
        job.wait_for(lambda: b'msg="joined"' in open(log + ".out", "rb").read(), 300,
                     "the client to join")
        time.sleep(1.0)  # it is long-polling now
        c2.send_signal(signal.SIGTERM)
        assert c2.wait(timeout=120) == 5, f"the client under valgrind exited {c2.returncode}, want 5"
        e2, l2, h2 = verdict(log, "stopped with SIGTERM")
        print(f"  ok   stopped by SIGTERM while waiting: {e2} errors, definitely lost {l2} bytes "
              f"({h2} allocations)", flush=True)
        print(f"valgrind_client: 0 errors, definitely lost 0 ({time.time() - t0:.0f}s)")
        ok = True
    except AssertionError as e:
        print(f"  FAIL {e}")
        print("valgrind_client: FAIL")
    finally:
        job.close(keep=not ok)
    sys.exit(0 if ok else 1)


main()
EOF
