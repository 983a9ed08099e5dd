"""download_tests.py - large model downloads: shared, ranged, resumed
(docs/protocol.md, "Model downloads"), on a real coordinator over mutual
TLS on loopback.

1. Resume through cuts: a tensor job whose model is one F32 tensor of
   FEDC_DL_MB MiB (24 by default); its one site (fedc-client with the numpy
   trainer and a [client] state_dir) reaches the coordinator only through
   the fault proxy (tests/tools/faultproxy.c), which cuts every connection
   once at a byte offset drawn below the model's size (the seed puts the
   first cut in the model's first half). The download is cut, resumes with
   Range/If-Range from the bytes in state_dir, the round commits, and the
   client's model file is byte-identical to the one the coordinator serves;
   the bytes the coordinator sent beyond one model (counted by the proxy,
   server to client, over every connection) are under half a model, and
   the client received no byte twice.
2. Resume after a restart: the site killed (SIGKILL) with part of the
   model on disk and started again resumes from those bytes (the proxy
   only slows the transfer) and ends with the same model file.
3. Shared body: FEDC_DL_N (8) sites download a model of FEDC_DL_BIG_MB
   (32) MiB at once, each reading slowly; the coordinator's VmHWM grows by
   less than one model (one copy per download would be N models).

Run under /usr/bin/python3 (Debian's, with numpy) for the trainer; the
suite is skipped without it. tests/long/test_download_big.sh runs it with
a 96 MiB model and case 3 with a 256 MiB one.
"""
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Job, Skip, Suite, free_port, mem_kb  # noqa: E402
from netfaults_tests import PROXY  # noqa: E402

PY = "/usr/bin/python3"
TRAINER = os.path.join(ROOT, "tests/integration/trainers/numpy_trainer.py")
MB = 1 << 20
DL_MB = int(os.environ.get("FEDC_DL_MB", "24"))
BIG_MB = int(os.environ.get("FEDC_DL_BIG_MB", "32"))
N_DL = int(os.environ.get("FEDC_DL_N", "8"))
# FEDC_DL_BEFORE=1: measure a coordinator built before shared bodies (no
# X-Fedc-SHA256, no bound on its memory): figures only, never a pass
BEFORE = os.environ.get("FEDC_DL_BEFORE") == "1"


def need_numpy():
    if subprocess.run([PY, "-c", "import numpy"], capture_output=True).returncode != 0:
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    sys.path.insert(0, os.path.join(ROOT, "python"))


def tensor_job(name, n, mb, pki_from=None, deltas=None, server=None, **cfg):
    """A tensor job with one F32 tensor of mb MiB, its coordinator started;
    pki_from: a job's pki folder to use (the same certificates); deltas:
    [server] model_deltas when not None; server: more [server] keys."""
    import numpy as np
    import fedc
    job = Job(name, n, sizes=[20] * n, model="tensors", **cfg)
    if pki_from:
        shutil.rmtree(job.pki(""))
        shutil.copytree(pki_from, job.pki(""))
    if deltas is not None:
        job.set_server_keys(model_deltas="true" if deltas else "false")
    if server:
        job.set_server_keys(**server)
    init = os.path.join(job.dir, "init.safetensors")
    rng = np.random.default_rng(5)
    fedc.st.save(init, {"w": rng.normal(size=(mb * MB // 4,)).astype(np.float32)})
    with open(job.coord_ini) as f:
        text = f.read()
    text = text.replace("type = tensors\n", f"type = tensors\ninit = {init}\n")
    text = text.replace("inputs = 784\n", "").replace("classes = 10\n", "")
    text = re.sub(r"(?m)^test(_labels)? = .*\n", "", text)
    # the model is larger than the default 64 MiB request bound
    text = text.replace("[server]\n", f"[server]\nmax_body_mb = {max(64, 2 * mb)}\n", 1)
    with open(job.coord_ini, "w") as f:
        f.write(text)
    job.allow_all()
    # a big model takes a while to load, hash and store before it listens
    log = open(os.path.join(job.dir, "coordinator.log"), "ab")
    job.coordinator = subprocess.Popen([os.path.join(BIN, "fedc-coordinator"), "--config",
                                        job.coord_ini], stdout=log, stderr=log)
    job.procs.append(job.coordinator)
    job.wait_for(lambda: job.status() is not None or job.coordinator.poll() is not None,
                 30 + mb // 4, "coordinator to listen")
    assert job.coordinator.poll() is None, f"the coordinator exited; logs in {job.dir}"
    return job


def proxy_s2c(log):
    """Bytes the proxy carried server to client, over every connection, and
    the number of connections it cut."""
    total = cuts = 0
    with open(log, errors="replace") as f:
        for line in f:
            m = re.search(r"event=close why=(\S+) c2s=(\d+) s2c=(\d+)", line)
            if m:
                total += int(m.group(3))
                cuts += m.group(1).startswith("cut")
    return total, cuts


def site_ini(job, port):
    """Site 1's config: the coordinator at port (the proxy's), a
    state_dir, the numpy trainer; (path, state_dir)."""
    ini = job.client_ini(1, keep=False)
    state = os.path.join(job.dir, "state-1")
    data = os.path.join(job.dir, "data", "client-1")
    with open(ini) as f:
        text = f.read()
    text = text.replace(f"url = https://127.0.0.1:{job.port}\n", f"url = https://127.0.0.1:{port}\n")
    text = text.replace("[client]\n", f"[client]\nstate_dir = {state}\n", 1)
    text = text.replace("give_up_s = 60\n", "give_up_s = 120\n")
    text += (f"[trainer]\ncommand = PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data}\n"
             "timeout_s = 120\n")
    with open(ini, "w") as f:
        f.write(text)
    return ini, state


def test_resume_through_cuts():
    need_numpy()
    job = tensor_job("dl-resume", 1, DL_MB, rounds=1, round_timeout_s=120, poll_s=1)
    try:
        proxy_port = free_port()
        plog = os.path.join(job.dir, "proxy.log")
        # seed 1: connection 1 is cut server to client at 10.5 MB of 30 MB
        # drawn (below half of the model for sizes >= 21 MiB)
        cut_bytes = DL_MB * MB * 5 // 4
        proxy = subprocess.Popen([PROXY, "--listen", f"127.0.0.1:{proxy_port}", "--upstream",
                                  f"127.0.0.1:{job.port}", "--duration", "300", "--seed", "1",
                                  "--cut", "1", "--cut-bytes", str(cut_bytes)],
                                 stdout=open(plog, "ab"), stderr=subprocess.STDOUT)
        job.procs.append(proxy)
        time.sleep(0.3)
        # the model round 1 starts from, as the coordinator serves it (after
        # the job, /v1/model/1 comes from the store, encoded anew)
        st, body = job.request("POST", "/v1/join", b"{}")
        assert st == 200, body
        st, served = job.request("GET", "/v1/model/1")
        assert st == 200, st
        ini, state = site_ini(job, proxy_port)
        clog = os.path.join(job.dir, "client-1.log")
        client = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini],
                                  stdout=open(clog, "ab"), stderr=subprocess.STDOUT)
        job.procs.append(client)
        rc = client.wait(timeout=240)
        with open(clog, errors="replace") as f:
            log = f.read()
        assert rc == 0, f"client exit {rc}: {log[-800:]}"
        if not BEFORE:
            files = [n for n in os.listdir(state) if n.startswith("model-") and
                     n.endswith(".safetensors")]
            assert len(files) == 1, os.listdir(state)
            with open(os.path.join(state, files[0]), "rb") as f:
                got = f.read()
            assert got == served, f"the client's model differs ({len(got)} vs {len(served)} bytes)"
        size = len(served)
        proxy.terminate()
        proxy.wait(timeout=5)
        s2c, cuts = proxy_s2c(plog)
        again = s2c - size  # the proxy's bytes to the client beyond one model
        resumes = re.findall(r"model download resumes\" round=1 from_bytes=(\d+)", log)
        print(f"       model {size / MB:.1f} MiB, cut {len(resumes)} time(s) in the download "
              f"(resumed from {', '.join(f'{int(b) / MB:.1f}' for b in resumes) or '-'} MiB); "
              f"{again / MB:.2f} MiB sent to the client beyond one model, {cuts} connection(s) cut")
        if BEFORE:
            raise Skip("a measurement of another build (FEDC_DL_BEFORE=1), not a test")
        assert resumes, f"no cut hit the download (seed plan changed?): {log[-600:]}"
        m = re.search(r"model downloaded\" round=1 bytes=(\d+) received=(\d+)", log)
        assert m, log[-600:]
        twice = int(m.group(2)) - int(m.group(1))
        print(f"       the client received {twice} bytes twice")
        assert twice == 0, twice
        assert again < size / 2, (again, size)
    finally:
        job.close(keep=bool(os.environ.get("FEDC_KEEP")))


def test_resume_after_kill():
    """The site killed (SIGKILL) with part of the model in state_dir, then
    started again: it resumes from the bytes on disk (the proxy only slows
    the transfer down so that the kill lands in the middle)."""
    need_numpy()
    job = tensor_job("dl-kill", 1, DL_MB, rounds=1, round_timeout_s=120, poll_s=1)
    try:
        proxy_port = free_port()
        plog = os.path.join(job.dir, "proxy.log")
        proxy = subprocess.Popen([PROXY, "--listen", f"127.0.0.1:{proxy_port}", "--upstream",
                                  f"127.0.0.1:{job.port}", "--duration", "300", "--delay", "1",
                                  "--delay-ms", "20"],
                                 stdout=open(plog, "ab"), stderr=subprocess.STDOUT)
        job.procs.append(proxy)
        time.sleep(0.3)
        st, body = job.request("POST", "/v1/join", b"{}")
        assert st == 200, body
        st, served = job.request("GET", "/v1/model/1")
        assert st == 200, st
        size = len(served)
        ini, state = site_ini(job, proxy_port)
        clog = os.path.join(job.dir, "client-1.log")
        run = [os.path.join(BIN, "fedc-client"), "--config", ini]
        first = subprocess.Popen(run, stdout=open(clog, "ab"), stderr=subprocess.STDOUT)
        job.procs.append(first)
        part = os.path.join(state, [n for n in job.wait_for(
            lambda: os.path.isdir(state) and [n for n in os.listdir(state)
                                              if n.endswith(".part")], 60, "a .part file")][0])
        job.wait_for(lambda: os.path.getsize(part) >= size * 3 // 10, 60, "30% of the model")
        first.kill()
        first.wait()
        on_disk = os.path.getsize(part)
        assert on_disk < size, "the download finished before the kill"
        second = subprocess.Popen(run, stdout=open(clog, "ab"), stderr=subprocess.STDOUT)
        job.procs.append(second)
        rc = second.wait(timeout=240)
        with open(clog, errors="replace") as f:
            log = f.read()
        assert rc == 0, f"client exit {rc}: {log[-800:]}"
        m = re.search(r"model download resumes\" round=1 from_bytes=(\d+) file=", log)
        assert m and int(m.group(1)) == on_disk, (on_disk, log[-800:])
        files = [n for n in os.listdir(state) if n.endswith(".safetensors") and
                 n.startswith("model-")]
        assert len(files) == 1 and not any(n.endswith(".part") for n in os.listdir(state)), \
            os.listdir(state)
        with open(os.path.join(state, files[0]), "rb") as f:
            assert f.read() == served, "the client's model differs"
        proxy.terminate()
        proxy.wait(timeout=5)
        s2c, _ = proxy_s2c(plog)
        again = s2c - size
        print(f"       model {size / MB:.1f} MiB, client killed with {on_disk / MB:.1f} MiB on "
              f"disk, restarted: {again / MB:.2f} MiB sent to the client beyond one model")
        assert again < size / 2, (again, size)
    finally:
        job.close(keep=bool(os.environ.get("FEDC_KEEP")))


def slow_download(job, k, size, out, barrier):
    """Site k joins, then reads GET /v1/model/1 in small bites."""
    ctx = ssl.create_default_context(cafile=job.pki("ca.pem"))
    ctx.load_cert_chain(job.pki(f"client-{k}.pem"), job.pki(f"client-{k}.key"))
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", job.port), timeout=60),
                        server_hostname="127.0.0.1")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    barrier.wait()
    s.sendall(b"GET /v1/model/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    h = hashlib.sha256()
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, rest = buf.split(b"\r\n\r\n", 1)
    want = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    m = re.search(rb"X-Fedc-SHA256: ([0-9a-f]{64})", head)
    sha = m.group(1).decode() if m else None  # None: a coordinator before the header
    h.update(rest)
    n = len(rest)
    while n < want:
        b = s.recv(256 * 1024)
        if not b:
            break
        h.update(b)
        n += len(b)
        time.sleep(0.002)  # slow readers: every download stays open a while
    s.close()
    out[k] = (n == want == size, h.hexdigest() == sha or (sha is None and BEFORE))


def test_concurrent_downloads_share_one_model():
    need_numpy()
    job = tensor_job("dl-shared", N_DL, BIG_MB, rounds=1, round_timeout_s=300, poll_s=1)
    try:
        for k in range(1, N_DL + 1):
            st, body = job.request("POST", "/v1/join", b"{}", cert=f"client-{k}")
            assert st == 200, body
        st, model = job.request("GET", "/v1/model/1")
        assert st == 200
        size = len(model)
        del model
        pid = job.coordinator.pid
        before = mem_kb(pid, "VmHWM")
        out = {}
        barrier = threading.Barrier(N_DL)
        threads = [threading.Thread(target=slow_download, args=(job, k, size, out, barrier))
                   for k in range(1, N_DL + 1)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        dt = time.time() - t0
        after = mem_kb(pid, "VmHWM")
        assert all(v == (True, True) for v in out.values()) and len(out) == N_DL, out
        grew = (after - before) * 1024
        print(f"       {N_DL} downloads of {size / MB:.0f} MiB at once in {dt:.1f} s: coordinator "
              f"VmHWM {before / 1024:.0f} -> {after / 1024:.0f} MiB (+{grew / MB:.1f} MiB)")
        if BEFORE:
            raise Skip("a measurement of another build (FEDC_DL_BEFORE=1), not a test")
        assert grew < size, f"VmHWM grew by {grew / MB:.1f} MiB for a {size / MB:.0f} MiB model"
    finally:
        job.close()


def main():
    if not os.path.exists(PROXY):
        print(f"download: {PROXY} is not built")
        sys.exit(1)
    s = Suite("download")
    only = sys.argv[1:]
    for fn in (test_resume_through_cuts, test_resume_after_kill,
               test_concurrent_downloads_share_one_model):
        if not only or fn.__name__ in only:
            s.run(fn)
    s.finish()


if __name__ == "__main__":
    main()
