#!/usr/bin/env python3
"""arm64_client_tests.py - fedc-client built for arm64 (make client-arm64),
run under qemu-user beside x86-64 clients, against the x86-64 coordinator
on loopback over mutual TLS (tests/integration/harness.py).

1. The arm64 binary: an AArch64 ELF whose NEEDED entries name none of the
   coordinator's libraries (libuv, SQLite, http-parser), no MPI and no
   CUDA, and whose --version runs under qemu-aarch64.
2. A mixed job: softmax on Fashion-MNIST shards, 3 clients (client 1 the
   arm64 one), 3 rounds, the coordinator evaluating each global model on
   the 10,000 test images. It finishes; every round counted 3 updates, one
   of them the arm64 client's. Then the same job (same PKI, so the same
   fingerprints, same shards, same seed) again with client 1 on x86-64. A
   "correct model" is then:
     - the x86 clients' round-1 updates are byte-identical in both runs (the
       built-in trainer is deterministic per seed, round and fingerprint,
       so the comparison below compares like with like);
     - the arm64 client's round-1 update (same global model in, same shard)
       is within a relative error of 1e-4 of what the x86 client computed:
       the two differ only in floating-point rounding (FMA contraction,
       OpenBLAS's kernels and their summation order);
     - the final global models agree within 1e-3, and the final test
       accuracy within 0.5 percentage points of the all-x86 run's.

    arm64_client_tests.py            the tests (test_arm64_client.sh)
    arm64_client_tests.py --measure  the figures of docs/client.md: stripped
                                     size, NEEDED, peak RSS on a 15,000-image
                                     shard, for every client build present

The environment: FEDC_BUILD (the x86-64 programs, default build),
FEDC_ARM64_BIN (default build/arm64/bin/fedc-client), FEDC_QEMU
(qemu-aarch64), FEDC_ARM64_SYSROOT (/, the multiarch root). --measure also
looks for build/lean and build/arm64-lean (make client-lean, make
client-arm64 LEAN=1) and skips what is not built.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Job, Suite, flat, free_port, read_safetensors  # noqa: E402

ARM64_BIN = os.environ.get("FEDC_ARM64_BIN", os.path.join(ROOT, "build/arm64/bin/fedc-client"))
QEMU = os.environ.get("FEDC_QEMU", "qemu-aarch64")
# The arm64 root is / under multiarch: its loader /lib/ld-linux-aarch64.so.1
# belongs to libc6:arm64, as the libc6:arm64 that the client's arm64
# libraries come with. `-L /usr/aarch64-linux-gnu` (the cross compiler's
# glibc, libc6-arm64-cross) would pair that loader with the multiarch libc.so
# of another build, and the first pthread_create then spins for ever.
SYSROOT = os.environ.get("FEDC_ARM64_SYSROOT", "/")
QEMU_ENV = {}
FORBIDDEN = ("libuv", "libsqlite", "libhttp_parser", "libmpi", "libopen-", "libcuda", "libcudart",
             "libcublas", "libnvidia")


def qemu_cmd(binary):
    return [QEMU, "-L", SYSROOT, binary]


def needed(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    return [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


def start_arm64_client(job, k, env=None, wrap=()):
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen(list(wrap) + qemu_cmd(ARM64_BIN) + ["--config", job.client_ini(k)],
                         stdout=log, stderr=log, env=dict(os.environ, **QEMU_ENV, **(env or {})))
    job.procs.append(p)
    return p


def wait_all(job, procs, timeout):
    for k, p in procs.items():
        rc = p.wait(timeout=timeout)
        assert rc == 0, f"client {k} exited {rc}; logs in {job.dir}"


def run_job(job, arm64, tag):
    """One run of the job; client 1 on arm64 (under qemu) when arm64 is set.
    Returns its status, the final checkpoint and client 1's id."""
    job.allow_all()
    job.start_coordinator()
    procs = {1: start_arm64_client(job, 1) if arm64 else job.start_client(1)}
    for k in range(2, job.n + 1):
        procs[k] = job.start_client(k)
    wait_all(job, procs, 240)
    st = job.status()
    rounds = job.cfg["rounds"]
    assert st["state"] == "finished", f"{tag}: job state {st['state']}"
    assert len(st["rounds"]) == rounds, f"{tag}: {len(st['rounds'])} rounds committed"
    assert all(r["clients"] == job.n for r in st["rounds"]), f"{tag}: a round lacks updates"
    cid1 = job.client_ids()[job.fingerprint(1)]
    for r in range(1, rounds + 1):
        ids = [cid for cid, _, _ in job.updates_of(r)]
        assert cid1 in ids, f"{tag}: round {r} did not count client 1's update"
    job.coordinator.terminate()
    job.coordinator.wait()
    return st, job.checkpoints()[rounds][0]


def rerun(job, tag):
    """The same job again in the same folder: same PKI and shards, a new
    store and ports; the first run's kept updates moved aside under tag."""
    for k in range(1, job.n + 1):
        d = os.path.join(job.dir, f"updates-{k}")
        if os.path.isdir(d):
            os.rename(d, os.path.join(job.dir, f"{tag}-updates-{k}"))
    job.store = os.path.join(job.dir, f"fedc-{tag}.db")
    job.port, job.status_port = free_port(), free_port()
    job.write_coordinator_config()


def kept(job, tag, k, r):
    with open(os.path.join(job.dir, f"{tag}-updates-{k}", f"round-{r}.safetensors"), "rb") as f:
        return f.read()


def rel_err(a, b):
    assert len(a) == len(b), f"{len(a)} weights against {len(b)}"
    return max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(a, b))


# ---- the tests ------------------------------------------------------------------
def test_arm64_binary():
    assert elf_machine(ARM64_BIN) == 183, "not an AArch64 ELF (e_machine 183)"
    libs = needed(ARM64_BIN)
    bad = [lib for lib in libs if lib.startswith(FORBIDDEN)]
    assert not bad, f"the arm64 client needs {bad}"
    r = subprocess.run(qemu_cmd(ARM64_BIN) + ["--version"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, **QEMU_ENV))
    assert r.returncode == 0 and "fedc" in (r.stdout + r.stderr).lower(), r.stderr
    print(f"       NEEDED: {' '.join(libs)}")


def test_mixed_job_correct_model():
    job = Job("arm64", 3, sizes=[1000, 1000, 1000], rounds=3, test=True, round_timeout_s=120)
    try:
        t0 = time.time()
        st_a, final_a = run_job(job, True, "arm64")
        t_a = time.time() - t0
        rerun(job, "a")
        t0 = time.time()
        st_b, final_b = run_job(job, False, "x86")
        t_b = time.time() - t0
        rerun(job, "b")
        # like with like: the x86 clients computed the same bytes in both runs
        for k in (2, 3):
            assert kept(job, "a", k, 1) == kept(job, "b", k, 1), \
                f"x86 client {k}'s round-1 update differs between the runs"
        upd_a = flat(read_safetensors(kept(job, "a", 1, 1))[0])
        upd_b = flat(read_safetensors(kept(job, "b", 1, 1))[0])
        e_upd = rel_err(upd_a, upd_b)
        e_model = rel_err(flat(read_safetensors(final_a)[0]), flat(read_safetensors(final_b)[0]))
        acc_a, acc_b = st_a["rounds"][-1]["test_acc"], st_b["rounds"][-1]["test_acc"]
        print(f"       arm64 run {t_a:.1f}s, x86 run {t_b:.1f}s; client 1's round-1 update: "
              f"max rel. error {e_upd:.2e}; final model {e_model:.2e}; "
              f"test accuracy {acc_a:.4f} (arm64) vs {acc_b:.4f} (x86)")
        assert e_upd < 1e-4, f"arm64 update off by {e_upd:.3e} (relative)"
        assert e_model < 1e-3, f"final models differ by {e_model:.3e} (relative)"
        assert abs(acc_a - acc_b) <= 0.005, f"test accuracy {acc_a:.4f} vs {acc_b:.4f}"
        # 3 rounds on 3,000 images land at 0.63-0.73 with the shuffles of each
        # run's fresh certificates; a model that learned nothing is at 0.10
        assert acc_b > 0.5, f"the job did not learn: test accuracy {acc_b:.4f}"
    finally:
        job.close()


# ---- --measure: the figures of docs/client.md ------------------------------------
def peak_rss(cmd, env):
    """Peak RSS in KiB of cmd, from GNU time's "Maximum resident set size"."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    for line in r.stderr.splitlines():
        if "Maximum resident set size" in line:
            return int(line.split(":")[1])
    raise AssertionError("no RSS line from /usr/bin/time")


def measure():
    builds = [("x86-64", os.path.join(BIN, "fedc-client"), False),
              ("x86-64 lean", os.path.join(ROOT, "build/lean/bin/fedc-client"), False),
              ("arm64", ARM64_BIN, True),
              ("arm64 lean", os.path.join(ROOT, "build/arm64-lean/bin/fedc-client"), True)]
    job = Job("rss", 1, sizes=[15000], rounds=1, test=False, round_timeout_s=300)
    try:
        job.allow_all()
        for name, path, arm in builds:
            if not os.path.exists(path):
                print(f"{name}: {path} not built")
                continue
            tool = "aarch64-linux-gnu-strip" if arm else "strip"
            stripped = os.path.join(job.dir, "stripped")
            subprocess.run([tool, "-o", stripped, path], check=True)
            size = os.path.getsize(stripped)
            rss = []
            for _ in range(3):
                rerun(job, f"m{len(rss)}{name.replace(' ', '')}")
                job.allow_all()
                job.start_coordinator()
                cmd = (qemu_cmd(path) if arm else [path]) + ["--config", job.client_ini(1, keep=False)]
                env = dict(os.environ, **(QEMU_ENV if arm else {}))
                rss.append(peak_rss(cmd, env))
                job.coordinator.terminate()
                job.coordinator.wait()
            rss.sort()
            print(f"{name}: stripped {size} bytes ({size / 1024:.0f} KiB); "
                  f"peak RSS median {rss[1] / 1024:.1f} MiB (runs: {', '.join(str(x) for x in rss)} KiB); "
                  f"NEEDED {' '.join(needed(path))}")
    finally:
        job.close()


if __name__ == "__main__":
    if "--measure" in sys.argv:
        measure()
        sys.exit(0)
    s = Suite("arm64_client")
    s.run(test_arm64_binary)
    s.run(test_mixed_job_correct_model)
    s.finish()
