#!/usr/bin/env python3
"""delta_file_tests.py - model deltas for models downloaded into [client]
state_dir (docs/protocol.md "Model deltas", docs/compression.md): the
client keeps the last checked model file as the base, asks for a delta,
writes it to model-<job>.delta.part and rebuilds the new model file from
the two in slices (client/model_rebuild.c).

1. A tensor job whose model is one F32 tensor of FEDC_DF_MB MiB (20), 2
   sites with the numpy trainer and a state_dir each, ROUNDS rounds, run
   with [server] model_deltas on and off with the same certificates: every
   committed model byte-identical between the two runs (data sections);
   with deltas on, every download after a site's first is a delta
   (fedc_model_downloads_total{kind="delta"}), none with deltas off, fewer
   model bytes sent; each site's model file is the last model it was sent,
   and no .part file is left.
2. A delta download cut in the middle: the same job (1 site, 2 rounds)
   behind the fault proxy, which slows every transfer; the site is stopped
   (SIGSTOP) while its .delta.part file is growing, its connection cut (the
   proxy killed and started again), and continued: it resumes the delta
   with Range/If-Range from the bytes on disk, receives no byte of it
   twice, rebuilds the model, and its model file is round 1's model.

Run under /usr/bin/python3 (Debian's, with numpy) for the trainer; the
suite is skipped without it.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Skip, Suite, free_port  # noqa: E402
from download_tests import PY, TRAINER, need_numpy, tensor_job  # noqa: E402
from delta_tests import metric, weights  # noqa: E402
from netfaults_tests import PROXY  # noqa: E402

MB = 1 << 20
DF_MB = int(os.environ.get("FEDC_DF_MB", "20"))
ROUNDS = 3


def site(job, k, port=None):
    """Site k's config (state_dir, the numpy trainer), started; (proc, state)."""
    ini = job.client_ini(k, keep=False)
    state = os.path.join(job.dir, f"state-{k}")
    data = os.path.join(job.dir, "data", f"client-{k}")
    with open(ini) as f:
        text = f.read()
    if port:
        text = text.replace(f"url = https://127.0.0.1:{job.port}\n",
                            f"url = https://127.0.0.1:{port}\n")
    text = text.replace("[client]\n", f"[client]\nstate_dir = {state}\n", 1)
    text = text.replace("give_up_s = 60\n", "give_up_s = 120\n")
    text += (f"[trainer]\ncommand = PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data}\n"
             "timeout_s = 120\n")
    with open(ini, "w") as f:
        f.write(text)
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini], stdout=log,
                         stderr=subprocess.STDOUT)
    job.procs.append(p)
    return p, state


# the run without deltas (test 1), for test 3: its certificates and models
OFF = {}


def run(name, deltas, pki_from=None, server=None):
    """The job to its end with [server] model_deltas on or off; (job, checkpoints, metrics)."""
    job = tensor_job(name, 2, DF_MB, rounds=ROUNDS, round_timeout_s=120, poll_s=1,
                     pki_from=pki_from, deltas=deltas, server=server)
    procs = [site(job, k)[0] for k in (1, 2)]
    for p in procs:
        rc = p.wait(timeout=300)
        assert rc == 0, (rc, job.dir)
    return job, job.checkpoints(), job.metrics()


def client_logs(job):
    text = ""
    for k in (1, 2):
        with open(os.path.join(job.dir, f"client-{k}.log"), errors="replace") as f:
            text += f.read()
    return text


def test_deltas_into_state_dir():
    need_numpy()
    on, ck_on, m_on = run("dfile-on", True)
    try:
        off, ck_off, m_off = run("dfile-off", False, pki_from=on.pki(""))
        try:
            assert sorted(ck_on) == sorted(ck_off) and len(ck_on) >= ROUNDS, \
                (sorted(ck_on), sorted(ck_off))
            for r in sorted(ck_on):
                assert weights(ck_on[r][0]) == weights(ck_off[r][0]), f"round {r} differs"
            d_on = metric(m_on, "fedc_model_downloads_total", "delta")
            f_on = metric(m_on, "fedc_model_downloads_total", "full")
            d_off = metric(m_off, "fedc_model_downloads_total", "delta")
            f_off = metric(m_off, "fedc_model_downloads_total", "full")
            b_on = sum(metric(m_on, "fedc_model_download_bytes_total", k)
                       for k in ("full", "delta"))
            b_off = metric(m_off, "fedc_model_download_bytes_total", "full")
            print(f"       {DF_MB} MiB model, {ROUNDS} rounds, 2 sites: deltas on {f_on} whole + "
                  f"{d_on} deltas, {b_on / MB:.1f} MiB of models sent; off {f_off} whole, "
                  f"{b_off / MB:.1f} MiB", flush=True)
            assert d_off == 0 and f_on == 2 and d_on == 2 * (ROUNDS - 1), (d_on, f_on, d_off)
            assert b_on < b_off, (b_on, b_off)
            OFF["pki"] = tempfile.mkdtemp(prefix="fedc-it-dfile-pki-")
            shutil.rmtree(OFF["pki"])
            shutil.copytree(off.pki(""), OFF["pki"])
            OFF["ck"] = ck_off
            OFF["bytes"] = b_off
            log = client_logs(on)
            assert "model delta refused" not in log, log[-800:]
            # each site's model file is the last model it was sent, nothing else left
            for k in (1, 2):
                state = os.path.join(on.dir, f"state-{k}")
                names = os.listdir(state)
                assert not [n for n in names if ".part" in n], names
                files = [n for n in names if n.startswith("model-") and n.endswith(".safetensors")]
                assert len(files) == 1, names
                with open(os.path.join(state, files[0]), "rb") as f:
                    got = f.read()
                assert weights(got) == weights(ck_on[ROUNDS - 1][0]), f"site {k}'s model file"
        finally:
            off.close()
    finally:
        on.close()


def test_delta_download_resumed():
    """A delta download cut in the middle resumes from the bytes on disk."""
    need_numpy()
    job = tensor_job("dfile-cut", 1, DF_MB, rounds=2, round_timeout_s=120, poll_s=1,
                     deltas=True)
    proxy = None
    try:
        port = free_port()
        plog = os.path.join(job.dir, "proxy.log")

        def start_proxy(slow):
            args = [PROXY, "--listen", f"127.0.0.1:{port}", "--upstream",
                    f"127.0.0.1:{job.port}", "--duration", "300"]
            if slow:  # every chunk held back: a model takes seconds
                args += ["--delay", "1", "--delay-ms", "10"]
            p = subprocess.Popen(args, stdout=open(plog, "ab"), stderr=subprocess.STDOUT)
            job.procs.append(p)
            time.sleep(0.3)
            return p

        proxy = start_proxy(True)
        client, state = site(job, 1, port=port)

        def delta_part():
            names = os.listdir(state) if os.path.isdir(state) else []
            return [os.path.join(state, n) for n in names if n.endswith(".delta.part")
                    and os.path.getsize(os.path.join(state, n)) > 2 * MB]
        part = job.wait_for(delta_part, 180, "2 MiB of round 2's delta on disk")[0]
        client.send_signal(signal.SIGSTOP)
        on_disk = os.path.getsize(part)
        proxy.kill()  # the connection is cut
        proxy.wait(timeout=5)
        proxy = start_proxy(False)
        client.send_signal(signal.SIGCONT)
        rc = client.wait(timeout=240)
        with open(os.path.join(job.dir, "client-1.log"), errors="replace") as f:
            log = f.read()
        assert rc == 0, f"client exit {rc}: {log[-800:]}"
        m = re.findall(r"model download resumes\" round=2 from_bytes=(\d+)", log)
        assert m and int(m[-1]) >= on_disk, (on_disk, log[-1200:])
        m = re.search(r"model rebuilt from a delta\" round=2 base=1 delta_bytes=(\d+) "
                      r"model_bytes=(\d+) received=(\d+) resumes=(\d+)", log)
        assert m, log[-1200:]
        delta, model, received, resumes = (int(g) for g in m.groups())
        print(f"       {model / MB:.1f} MiB model, delta {delta / MB:.1f} MiB cut at "
              f"{on_disk / MB:.1f} MiB on disk, resumed ({resumes}); received {received} bytes "
              f"for it", flush=True)
        assert resumes >= 1 and received <= delta, (received, delta)
        metrics = job.metrics()
        assert metric(metrics, "fedc_model_downloads_total", "delta") >= 1
        ck = job.checkpoints()
        names = os.listdir(state)
        assert not [n for n in names if ".part" in n], names
        files = [n for n in names if n.endswith(".safetensors")]
        with open(os.path.join(state, files[0]), "rb") as f:
            assert weights(f.read()) == weights(ck[1][0])
    finally:
        if proxy and proxy.poll() is None:
            proxy.terminate()
        job.close(keep=bool(os.environ.get("FEDC_KEEP")))


def test_bad_delta_file_then_whole_model():
    """A coordinator whose deltas are corrupt (FEDC_TEST_CORRUPT_DELTA=1):
    each site downloads the delta into its file, fails to rebuild the
    model, drops both files and downloads the whole model; the models are
    test 1's without deltas."""
    need_numpy()
    if "ck" not in OFF:
        raise Skip("needs test 1's run without deltas")
    os.environ["FEDC_TEST_CORRUPT_DELTA"] = "1"
    try:
        job, ck, m = run("dfile-bad", True, pki_from=OFF["pki"])
    finally:
        del os.environ["FEDC_TEST_CORRUPT_DELTA"]
    try:
        for r in sorted(OFF["ck"]):
            assert weights(ck[r][0]) == weights(OFF["ck"][r][0]), f"round {r} differs"
        d = metric(m, "fedc_model_downloads_total", "delta")
        f = metric(m, "fedc_model_downloads_total", "full")
        refused = client_logs(job).count("model delta refused")
        print(f"       corrupt deltas: {d} sent, {refused} refused, {f} whole models", flush=True)
        assert d == 2 * (ROUNDS - 1) and refused == d and f == 2 + d, (d, refused, f)
        for k in (1, 2):
            names = os.listdir(os.path.join(job.dir, f"state-{k}"))
            assert not [n for n in names if ".part" in n], names
    finally:
        job.close()


def test_large_model_mode_deltas():
    """Large-model mode ([server] spill_above_mb below the model): the
    coordinator encodes each delta in slices into <store>.delta and serves
    it from a mapping; the models are those of test 1's run without
    deltas."""
    need_numpy()
    if "ck" not in OFF:
        raise Skip("needs test 1's run without deltas")
    try:
        job, ck, m = run("dfile-large", True, pki_from=OFF["pki"],
                         server={"spill_above_mb": "8"})
        try:
            with open(os.path.join(job.dir, "coordinator.log"), errors="replace") as f:
                clog = f.read()
            assert "large-model mode" in clog, clog[-600:]
            assert sorted(ck) == sorted(OFF["ck"]), (sorted(ck), sorted(OFF["ck"]))
            for r in sorted(ck):
                assert weights(ck[r][0]) == weights(OFF["ck"][r][0]), f"round {r} differs"
            d = metric(m, "fedc_model_downloads_total", "delta")
            f = metric(m, "fedc_model_downloads_total", "full")
            b = sum(metric(m, "fedc_model_download_bytes_total", k) for k in ("full", "delta"))
            made = re.findall(r"msg=\"model delta\" bytes=(\d+) model_bytes=(\d+) file=", clog)
            print(f"       large-model mode: {f} whole + {d} deltas, {b / MB:.1f} MiB of models "
                  f"sent (without deltas {OFF['bytes'] / MB:.1f} MiB); deltas made: "
                  f"{', '.join(f'{int(x) / MB:.1f}' for x, _ in made)} MiB", flush=True)
            assert f == 2 and d == 2 * (ROUNDS - 1), (f, d)
            assert b < OFF["bytes"], (b, OFF["bytes"])
            assert "model delta refused" not in client_logs(job)
        finally:
            job.close()
    finally:
        shutil.rmtree(OFF["pki"], ignore_errors=True)


def main():
    s = Suite("model deltas into state_dir")
    s.run(test_deltas_into_state_dir)
    s.run(test_delta_download_resumed)
    s.run(test_bad_delta_file_then_whole_model)
    s.run(test_large_model_mode_deltas)
    return s.finish()


if __name__ == "__main__":
    sys.exit(main())
