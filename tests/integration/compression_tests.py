#!/usr/bin/env python3
"""compression_tests.py - compressed updates (docs/compression.md) through
the real coordinator and clients on loopback, over mutual TLS.

int8: 3 clients, 3 rounds; every committed model is bit for bit the
FedAvg of the updates decoded here, in Python, from the bodies the
clients kept ([client] keep_updates), and the store's update checksums are
those bodies'. topk: the same, and client 3 is killed with SIGKILL after
round 2 and started again: it says it restored its residual, and the
residual in its [client] state_dir at the end is exactly what error
feedback over every round it trained gives, replayed here from its kept
weights, the global models and the entries it sent - a residual lost in
the restart would differ. External trainers ([trainer] command, the
numpy trainer of tests/integration/trainers/ under /usr/bin/python3): a
topk_bf16 job with one built-in site and two external ones; every site's
body is the compressed delta from the global model (the same check of the
committed models), each external site keeps its residual file, and its
kept body is the encoding of its trainer's own weights against the global
model (the residual replayed from the trainer's kept updates); one of the
two goes through the trainer interface's train_st (bytes in, bytes out),
the other through train (a weight vector)."""
import array
import glob
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, Job, Skip, Suite, flat, read_safetensors  # noqa: E402

SIZES = [300, 400, 500]
INT8, TOPK, TOPK_BF16 = 3, 4, 5
PY = "/usr/bin/python3"
TRAINER = os.path.join(ROOT, "tests/integration/trainers/numpy_trainer.py")


def bf16(bits16):
    return struct.unpack("<f", struct.pack("<I", bits16 << 16))[0]


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def decode(body, x):
    """(round, codec, samples, entries, w) of a FEDCCMP1 body against x;
    entries: topk's (index, value bits) pairs."""
    assert body[:8] == b"FEDCCMP1", body[:8]
    assert hashlib.sha256(body[:-32]).digest() == body[-32:]
    rnd, codec, samples = struct.unpack_from("<iIQ", body, 8)
    n, k = struct.unpack_from("<QQ", body, 32)
    assert n == len(x), (n, len(x))
    p, d, entries = body[48:-32], [0.0] * n, []
    if codec == INT8:
        off = 0
        for b in range(0, n, 256):
            m = min(256, n - b)
            s = struct.unpack_from("<f", p, off)[0]
            levels = struct.unpack_from(f"<{m}b", p, off + 4)
            off += 4 + m
            for i in range(m):
                d[b + i] = f32(s * levels[i])
        assert off == len(p)
    elif codec == TOPK:
        assert len(p) == 8 * k
        for j in range(k):
            i, bits = struct.unpack_from("<II", p, 8 * j)
            if i < n:
                d[i] = struct.unpack("<f", struct.pack("<I", bits))[0]
                entries.append((i, bits))
    elif codec == TOPK_BF16:
        nb = (n + 7) // 8
        assert len(p) == nb + 2 * k, (len(p), nb, k)
        idx = [i for i in range(n) if p[i // 8] >> (i % 8) & 1]
        assert len(idx) == k
        for j, i in enumerate(idx):
            v = struct.unpack_from("<H", p, nb + 2 * j)[0]
            d[i] = bf16(v)
            entries.append((i, v))
    else:
        raise AssertionError(f"codec {codec}")
    w = array.array("f", (x[i] + d[i] for i in range(n)))  # float32 sums, as the C code
    return rnd, codec, samples, entries, w


def fedavg(updates):
    """FedAvg as the coordinator computes it: sum n_k round(w_k 2^32) in
    integers, then (float)(acc * (2^-32 / total)) in double."""
    total = sum(s for s, _ in updates)
    n = len(updates[0][1])
    scale = 2.0 ** -32 / total
    acc = [0] * n
    for s, w in updates:
        for i in range(n):
            acc[i] += s * round(w[i] * 4294967296.0)
    return array.array("f", (float(a) * scale for a in acc))


def start_client(job, k, state, external=False, env=None, args=""):
    ini = job.client_ini(k)
    with open(ini, "a") as f:
        f.write(f"state_dir = {state}\n")
        if external:  # the numpy trainer, keeping its own updates beside the client's
            data = os.path.join(job.dir, "data", f"client-{k}")
            keep = os.path.join(job.dir, f"trainer-{k}")
            os.makedirs(keep, exist_ok=True)
            f.write(f"[trainer]\ncommand = PYTHONPATH={ROOT}/python {PY} {TRAINER} --data {data} "
                    f"--keep {keep} {args}\ntimeout_s = 60\n")
    log = open(os.path.join(job.dir, f"client-{k}.log"), "ab")
    p = subprocess.Popen([os.path.join(BIN, "fedc-client"), "--config", ini], stdout=log,
                         stderr=log, env=dict(os.environ, **(env or {})))
    job.procs.append(p)
    return p


def header_flat(blob):
    """A safetensors blob's F32 tensors in header order, as one vector (a
    tensor job's layout order)."""
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    v = array.array("f")
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        v.frombytes(blob[8 + n + a:8 + n + b])
    return v


def check_models(job, rounds, vec=lambda blob: flat(read_safetensors(blob)[0])):
    """Each committed model = FedAvg of the decoded kept bodies."""
    ckpt = job.checkpoints()
    ids = job.client_ids()
    cid = {k: ids[job.fingerprint(k)] for k in range(1, 4)}
    for r in range(1, rounds + 1):
        x = vec(ckpt[r - 1][0])
        rows = {c: (s, sha) for c, s, sha in job.updates_of(r)}
        ups = []
        for k in range(1, 4):
            body = open(os.path.join(job.dir, f"updates-{k}", f"round-{r}.coded"), "rb").read()
            rnd, _, samples, _, w = decode(body, x)
            assert rnd == r and samples == SIZES[k - 1], (rnd, samples)
            assert rows[cid[k]] == (samples, body[-32:].hex()), (rows[cid[k]], body[-32:].hex())
            ups.append((samples, w))
        want = fedavg(ups)
        got = vec(ckpt[r][0])
        assert want.tobytes() == got.tobytes(), f"round {r}: committed model differs"
    return ckpt


def test_int8_models_are_the_decoded_fedavg():
    job = Job("int8", 3, sizes=SIZES, rounds=3, extra="[strategy]\ncompression = int8\n")
    try:
        job.allow_all()
        job.start_coordinator()
        ps = [start_client(job, k, os.path.join(job.dir, f"state-{k}")) for k in (1, 2, 3)]
        for p in ps:
            assert p.wait(timeout=120) == 0, open(os.path.join(job.dir, "client-1.log")).read()
        check_models(job, 3)
        body = open(os.path.join(job.dir, "updates-1", "round-1.coded"), "rb").read()
        plain = os.path.getsize(os.path.join(job.dir, "updates-1", "round-1.safetensors"))
        print(f"       int8 body {len(body)} bytes, float32 update {plain} bytes "
              f"({plain / len(body):.1f}x); 3 committed models bit-identical to the recomputation")
        assert plain / len(body) > 3.5
    finally:
        job.close()


def test_topk_restarted_client_keeps_its_residual():
    rounds = 4
    job = Job("topk", 3, sizes=SIZES, rounds=rounds, round_timeout_s=30,
              extra="[strategy]\ncompression = topk\ntopk_fraction = 0.05\n")
    state = os.path.join(job.dir, "state-3")
    try:
        job.allow_all()
        job.start_coordinator()
        ps = [start_client(job, k, os.path.join(job.dir, f"state-{k}")) for k in (1, 2)]
        c3 = start_client(job, 3, state)
        job.wait_for(lambda: job.committed() >= 2, 60, "two rounds")
        c3.send_signal(signal.SIGKILL)
        c3.wait()
        assert glob.glob(os.path.join(state, "topk-*.safetensors")), "no residual file"
        c3 = start_client(job, 3, state)
        for p in ps + [c3]:
            assert p.wait(timeout=120) == 0
        log = open(os.path.join(job.dir, "client-3.log")).read()
        assert log.count("topk residual restored") == 1, "the restart did not restore"
        ckpt = check_models(job, rounds)
        # replay client 3's error feedback over every round, across the restart
        e = array.array("f", [0.0]) * len(flat(read_safetensors(ckpt[0][0])[0]))
        for r in range(1, rounds + 1):
            x = flat(read_safetensors(ckpt[r - 1][0])[0])
            w = flat(read_safetensors(open(os.path.join(job.dir, "updates-3",
                                                        f"round-{r}.safetensors"), "rb").read())[0])
            body = open(os.path.join(job.dir, "updates-3", f"round-{r}.coded"), "rb").read()
            _, _, _, entries, _ = decode(body, x)
            for i in range(len(e)):
                e[i] = e[i] + f32(w[i] - x[i])
            for i, bits in entries:
                assert struct.pack("<f", e[i]) == struct.pack("<I", bits), (r, i)
                e[i] = 0.0
        (path,) = glob.glob(os.path.join(state, "topk-*.safetensors"))
        tensors, meta = read_safetensors(open(path, "rb").read())
        assert meta["round"] == str(rounds), meta
        kept = tensors["residual"][1]
        assert kept.tobytes() == e.tobytes(), "the residual is not error feedback's over all rounds"
        nz = sum(1 for v in e if v != 0.0)
        print(f"       client 3 killed after round 2 and restarted; its residual after round "
              f"{rounds} ({nz} non-zero) equals the replay over all {rounds} rounds")
    finally:
        job.close()


def test_external_trainers_send_compressed_deltas():
    if subprocess.run([PY, "-c", "import numpy"], capture_output=True).returncode != 0:
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    rounds = 3
    job = Job("ext", 3, sizes=SIZES, rounds=rounds, round_timeout_s=60,
              extra="[strategy]\ncompression = topk_bf16\ntopk_fraction = 0.1\n")
    try:
        job.allow_all()
        job.start_coordinator()
        # site 3's rounds go through the trainer's train_st (the model's bytes in,
        # the update's bytes out), as a library trainer without train does
        ps = [start_client(job, k, os.path.join(job.dir, f"state-{k}"), external=k > 1,
                           env={"FEDC_TEST_TRAINER_ST": "1"} if k == 3 else None)
              for k in (1, 2, 3)]
        for k, p in enumerate(ps, 1):
            assert p.wait(timeout=180) == 0, open(os.path.join(job.dir, f"client-{k}.log")).read()
        ckpt = check_models(job, rounds)
        for k in (2, 3):
            log = open(os.path.join(job.dir, f"client-{k}.log")).read()
            assert "updates compressed" in log, f"client {k} did not compress"
            (path,) = glob.glob(os.path.join(job.dir, f"state-{k}", "topk-*.safetensors"))
            # the trainer's own weights, encoded against the global model: replay
            # error feedback from what the trainer wrote, round by round
            e = None
            for r in range(1, rounds + 1):
                x = flat(read_safetensors(ckpt[r - 1][0])[0])
                mine = open(os.path.join(job.dir, f"trainer-{k}", f"round-{r}.safetensors"),
                            "rb").read()
                w = flat(read_safetensors(mine)[0])
                body = open(os.path.join(job.dir, f"updates-{k}", f"round-{r}.coded"), "rb").read()
                _, codec, _, entries, _ = decode(body, x)
                assert codec == TOPK_BF16
                e = e or array.array("f", [0.0]) * len(x)
                for i in range(len(e)):
                    e[i] = e[i] + f32(w[i] - x[i])
                for i, v in entries:  # sent as bfloat16: the rounding stays behind
                    e[i] = f32(e[i] - bf16(v))
            tensors, meta = read_safetensors(open(path, "rb").read())
            assert meta["round"] == str(rounds), meta
            assert tensors["residual"][1].tobytes() == e.tobytes(), \
                f"client {k}: the residual is not error feedback over its trainer's updates"
        body = open(os.path.join(job.dir, "updates-2", "round-1.coded"), "rb").read()
        plain = os.path.getsize(os.path.join(job.dir, "trainer-2", "round-1.safetensors"))
        print(f"       external sites: topk_bf16 body {len(body)} bytes, the trainer's float32 "
              f"update {plain} bytes ({plain / len(body):.1f}x); {rounds} committed models "
              f"bit-identical to the recomputation; residuals replayed from the trainers' updates")
        assert plain / len(body) > 3
    finally:
        for p in job.procs:  # SIGTERM first: a client stops its trainer's process group
            if p.poll() is None:
                p.terminate()
        job.close()


def tensor_job(name, tensors, codec):
    """A tensor job ([model] type = tensors) whose [model] init holds
    tensors (name -> (dtype, shape, raw bytes)), compressed with codec."""
    job = Job(name, 3, sizes=[10] * 3, rounds=3, round_timeout_s=60, model="tensors",
              extra=f"[strategy]\ncompression = {codec}\n")
    header, data = {}, b""
    for k, (dt, shape, raw) in tensors.items():
        header[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    header["__metadata__"] = {"sha256": hashlib.sha256(data).hexdigest()}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    init = os.path.join(job.dir, "init.safetensors")
    with open(init, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    with open(job.coord_ini) as f:
        text = f.read()
    text = text.replace("type = tensors\n", f"type = tensors\ninit = {init}\n")
    text = text.replace("inputs = 784\n", "").replace("classes = 10\n", "")
    with open(job.coord_ini, "w") as f:
        f.write(text)
    return job


def f32_bytes(vals):
    return array.array("f", vals).tobytes()


def test_tensor_job_f32_compressed():
    """A tensor job of F32 tensors with int8: its sites' external trainers
    send coded deltas; every committed model is the FedAvg of the decoded
    bodies. A tensor job with an F16 tensor and a codec is refused at
    start, naming the tensor."""
    if subprocess.run([PY, "-c", "import numpy"], capture_output=True).returncode != 0:
        raise Skip(f"{PY} has no numpy (apt-get install python3-numpy)")
    job = tensor_job("tensor-int8", {
        "conv.weight": ("F32", [4, 3, 3], f32_bytes(0.1 * ((i * 7) % 11 - 5) for i in range(36))),
        "fc.weight": ("F32", [50, 6], f32_bytes(0.01 * ((i * 5) % 13 - 6) for i in range(300)))},
        "int8")
    try:
        job.allow_all()
        job.start_coordinator()
        ps = [start_client(job, k, os.path.join(job.dir, f"state-{k}"), external=True,
                           args=f"--samples {SIZES[k - 1]}") for k in (1, 2, 3)]
        for k, p in enumerate(ps, 1):
            assert p.wait(timeout=180) == 0, open(os.path.join(job.dir, f"client-{k}.log")).read()
        check_models(job, 3, vec=header_flat)
        body = open(os.path.join(job.dir, "updates-1", "round-1.coded"), "rb").read()
        plain = os.path.getsize(os.path.join(job.dir, "trainer-1", "round-1.safetensors"))
        print(f"       tensor job (2 F32 tensors, 336 weights): int8 body {len(body)} bytes, the "
              f"trainer's update {plain} bytes; 3 committed models bit-identical to the "
              f"recomputation")
    finally:
        for p in job.procs:
            if p.poll() is None:
                p.terminate()
        job.close()
    bad = tensor_job("tensor-f16", {
        "conv.weight": ("F32", [4], f32_bytes([0.5] * 4)),
        "fc.weight": ("F16", [2], struct.pack("<2e", 0.25, 0.5))}, "topk")
    try:
        try:  # refused at start: it exits at once
            r = subprocess.run([os.path.join(BIN, "fedc-coordinator"), "--config", bad.coord_ini],
                               capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError("a compressed tensor job with an F16 tensor started")
        assert r.returncode != 0, "a compressed tensor job with an F16 tensor started"
        msg = r.stderr
        assert "fc.weight" in msg and "F16" in msg and "compression = topk" in msg, msg[-400:]
    finally:
        bad.close()


suite = Suite("compression")
suite.run(test_int8_models_are_the_decoded_fedavg)
suite.run(test_topk_restarted_client_keeps_its_residual)
suite.run(test_external_trainers_send_compressed_deltas)
suite.run(test_tensor_job_f32_compressed)
suite.finish()
