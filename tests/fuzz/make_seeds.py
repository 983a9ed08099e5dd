#!/usr/bin/env python3
"""make_seeds.py - writes the seed corpora of the fuzz targets.

    python3 tests/fuzz/make_seeds.py [tests/fuzz/corpus]

Seeds are small and meaningful: for each parser, valid inputs as fedc and
the protocol write them, and near-valid ones that each break one rule (a
bad checksum, a wrong shape, a truncated file, a header over the limit...),
so that the fuzzers start at the boundaries. The files are committed; run
this again only to change the set (it rewrites the seeds it names and
leaves any other file in the corpus alone). Standard library only.
"""
import gzip
import hashlib
import json
import os
import struct
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors -------------------------------------------------------


def st(tensors, meta=None, sha=True, dtype="F32", pad=True, raw_header=None,
       hlen=None, extra=b""):
    """A container: tensors is [(name, shape, values)], values floats (or
    u32 ints when dtype is U32)."""
    data = b""
    header = {}
    if meta is not None or sha:
        m = dict(meta or {})
        header["__metadata__"] = m
    entries = []
    for name, shape, values in tensors:
        fmt = "<%d%s" % (len(values), "I" if dtype == "U32" else "f")
        blob = struct.pack(fmt, *values)
        entries.append((name, {"dtype": dtype, "shape": shape,
                               "data_offsets": [len(data), len(data) + len(blob)]}))
        data += blob
    if sha:
        header["__metadata__"]["sha256"] = hashlib.sha256(data).hexdigest()
    for name, e in entries:
        header[name] = e
    text = raw_header if raw_header is not None else json.dumps(
        header, separators=(",", ":"))
    text = text.encode() if isinstance(text, str) else text
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    n = len(text) if hlen is None else hlen
    return struct.pack("<Q", n) + text + data + extra


SOFTMAX = [("layers.0.weight", [3, 4], [0.1 * i for i in range(12)]),
           ("layers.0.bias", [3], [0.5, -0.5, 0.0])]
MLP = [("layers.0.weight", [5, 4], [0.01 * i for i in range(20)]),
       ("layers.0.bias", [5], [0.0] * 5),
       ("layers.1.weight", [3, 5], [-0.02 * i for i in range(15)]),
       ("layers.1.bias", [3], [1.0, 2.0, 3.0])]
UPDATE_META = {"round": "4", "num_samples": "600", "train_loss": "0.5123"}


def safetensors_seeds():
    t = "safetensors"
    put(t, "valid-softmax", st(SOFTMAX, UPDATE_META))
    put(t, "valid-no-meta", st(SOFTMAX, sha=False))
    put(t, "valid-empty", st([], sha=True))
    put(t, "valid-scalar-and-empty-dim", st(
        [("s", [], [3.5]), ("z", [0, 7], [])]))
    put(t, "valid-4d", st([("t", [1, 2, 1, 2], [1, 2, 3, 4])]))
    put(t, "valid-unicode-name", st([("caf\u00e9.\U0001F600", [2], [1, 2])]))
    put(t, "valid-u32-masked", st([("masked", [3], [1, 2, 0xFFFFFFFF])],
                                  UPDATE_META, dtype="U32"))
    put(t, "dtype-f16", st([("x", [2], [1, 2])], dtype="F16"))
    bad = bytearray(st(SOFTMAX, UPDATE_META))
    bad[-1] ^= 0x40
    put(t, "bad-checksum", bytes(bad))
    put(t, "truncated-data", st(SOFTMAX, UPDATE_META)[:-4])
    put(t, "trailing-bytes", st(SOFTMAX, UPDATE_META, extra=b"\0\0\0\0"))
    put(t, "header-length-huge", st(SOFTMAX, hlen=(16 << 20) + 1))
    put(t, "header-length-past-end", st(SOFTMAX, hlen=4096))
    put(t, "overlapping", st([], sha=False, raw_header=json.dumps(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}),
        extra=b"\0" * 8))
    put(t, "shape-offsets-mismatch", st([], sha=False, raw_header=json.dumps(
        {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}),
        extra=b"\0" * 8))
    put(t, "duplicate-name", st([], sha=False, raw_header=(
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'),
        extra=b"\0" * 8))
    put(t, "nul-escape-in-name", st([], sha=False, raw_header=(
        '{"a\\u0000b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'),
        extra=b"\0" * 4))
    put(t, "float-in-shape", st([], sha=False, raw_header=(
        '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}'),
        extra=b"\0" * 4))
    put(t, "deep-nesting", st([], sha=False, raw_header=(
        '{"__metadata__":{"a":[[["x"]]]}}')))
    put(t, "metadata-not-string", st([], sha=False, raw_header=(
        '{"__metadata__":{"round":4}}')))
    put(t, "escapes-in-metadata", st([("w", [1], [1.0])], raw_header=None,
                                     meta={"note": "tab\tquote\"back\\slash\u00e9"}))
    put(t, "not-json", struct.pack("<Q", 8) + b"{nojson}")
    put(t, "short", b"\x05\0\0")


def model_update_seeds():
    t = "model_update"
    put(t, "valid-softmax", st(SOFTMAX, UPDATE_META))
    put(t, "valid-mlp", st(MLP, UPDATE_META))
    put(t, "valid-no-sha", st(SOFTMAX, UPDATE_META, sha=False))
    put(t, "loss-exponent", st(SOFTMAX, dict(UPDATE_META, train_loss="1e-3")))
    put(t, "missing-round", st(SOFTMAX, {"num_samples": "600",
                                         "train_loss": "0.5"}))
    put(t, "round-zero", st(SOFTMAX, dict(UPDATE_META, round="0")))
    put(t, "round-plus-sign", st(SOFTMAX, dict(UPDATE_META, round="+4")))
    put(t, "round-leading-space", st(SOFTMAX, dict(UPDATE_META, round=" 4")))
    put(t, "round-overflow", st(SOFTMAX, dict(UPDATE_META, round="2147483648")))
    put(t, "samples-over-2-40", st(SOFTMAX, dict(UPDATE_META,
                                                 num_samples="1099511627777")))
    put(t, "loss-empty", st(SOFTMAX, dict(UPDATE_META, train_loss="")))
    put(t, "loss-nan", st(SOFTMAX, dict(UPDATE_META, train_loss="nan")))
    put(t, "loss-trailing", st(SOFTMAX, dict(UPDATE_META, train_loss="0.5x")))
    w = [list(x) for x in SOFTMAX]
    w[0] = ("layers.0.weight", [3, 4], [float("nan")] + [0.0] * 11)
    put(t, "weight-nan", st(w, UPDATE_META))
    w[0] = ("layers.0.weight", [3, 4], [3e9] + [0.0] * 11)
    put(t, "weight-too-large", st(w, UPDATE_META))
    put(t, "wrong-shape", st([("layers.0.weight", [4, 3], [0.0] * 12),
                              ("layers.0.bias", [3], [0.0] * 3)], UPDATE_META))
    put(t, "extra-tensor", st(SOFTMAX + [("layers.1.bias", [1], [0.0])],
                              UPDATE_META))
    put(t, "missing-bias", st(SOFTMAX[:1], UPDATE_META))
    put(t, "dtype-f16", st([("layers.0.weight", [3, 4], [0.0] * 12)],
                           UPDATE_META, dtype="F16"))
    put(t, "tensor-named-dtype", st([("dtype", [1], [0.0])], UPDATE_META))


# ---- http ----------------------------------------------------------------


def http_seeds():
    t = "http_request"
    body = st(SOFTMAX, UPDATE_META)
    reqs = {
        "get-status": b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n",
        "get-task-query": b"GET /v1/task?wait=0.5&x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        "post-join": b"POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 17\r\n\r\n"
                     b'{"name":"site-a"}',
        "post-update": b"POST /v1/update HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       b"application/octet-stream\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\n\r\n" + body,
        "pipelined": b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
                     b"POST /c HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                     b"GET /d HTTP/1.1\r\nConnection: close\r\n\r\n",
        "expect-continue": b"POST /v1/update HTTP/1.1\r\nExpect: 100-continue"
                           b"\r\nContent-Length: 4\r\n\r\nbody",
        "chunked-411": b"POST /v1/update HTTP/1.1\r\nTransfer-Encoding: "
                       b"chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n",
        "too-large-413": b"POST /v1/update HTTP/1.1\r\nContent-Length: "
                         b"99999999\r\n\r\n",
        "headers-431": b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 2100 + b"\r\n\r\n",
        "bad-request-line": b"GET\x01/ HTTP/1.1\r\n\r\n",
        "head": b"HEAD /v1/status HTTP/1.1\r\n\r\n",
        "absolute-form": b"GET http://localhost:8443/v1/model/3?x HTTP/1.1\r\n\r\n",
        "http10": b"GET / HTTP/1.0\r\n\r\n",
        "options-star": b"OPTIONS * HTTP/1.1\r\n\r\n",
        "folded-header": b"GET / HTTP/1.1\r\nContent-Type: a\r\n b\r\n\r\n",
        "two-content-lengths": b"POST / HTTP/1.1\r\nContent-Length: 1\r\n"
                               b"Content-Length: 2\r\n\r\nab",
        "long-content-type": b"POST / HTTP/1.1\r\nContent-Type: " + b"t" * 300
                             + b"\r\nContent-Length: 1\r\n\r\nx",
        "upgrade": b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: "
                   b"websocket\r\n\r\n",
        "incomplete": b"POST /v1/update HTTP/1.1\r\nContent-Length: 10\r\n\r\nab",
    }
    for name, r in reqs.items():
        put(t, name, b"\x00" + r)
    put(t, "pipelined-bytewise", b"\x01" + reqs["pipelined"])
    put(t, "pipelined-deferred", b"\x08" + reqs["pipelined"])
    put(t, "pipelined-big-deferred-pieces", b"\x1d" + reqs["pipelined"])
    put(t, "update-in-pieces", b"\x04" + reqs["post-update"])
    put(t, "continue-deferred", b"\x09" + reqs["expect-continue"])


# ---- JSON ------------------------------------------------------------------


def join_seeds():
    t = "join_json"
    for name, body in {
        "empty-object": "{}",
        "name": '{"name": "site-a"}',
        "name-empty": '{"name":""}',
        "name-unicode": '{"name":"h\\u00f4pital \\ud83c\\udfe5 \u00e9"}',
        "name-127": '{"name":"%s"}' % ("n" * 127),
        "name-128": '{"name":"%s"}' % ("n" * 128),
        "name-number": '{"name":123}',
        "name-null": '{"name":null}',
        "name-twice": '{"name":"a","name":"b"}',
        "name-nul-escape": '{"name":"a\\u0000b"}',
        "key-nul-escape": '{"name\\u0000x":"evil"}',
        "name-newline": '{"name":"a\\nforged log line"}',
        "other-keys": '{"version":2,"caps":["x"],"name":"s"}',
        "trailing-garbage": '{"name":"a"} x',
        "trailing-space": '{"name":"a"} \r\n',
        "array": '["name"]',
        "string": '"name"',
        "bom": '\ufeff{"name":"a"}',
        "lone-surrogate": '{"name":"\\ud800"}',
        "deep": '{"x":' + "[" * 50 + "]" * 50 + ',"name":"d"}',
    }.items():
        put(t, name, body)
    put(t, "invalid-utf8", b'{"name":"\xc3\x28"}')
    put(t, "raw-control", b'{"name":"a\x01b"}')
    put(t, "raw-nul-after", b'{"name":"a"}\x00{"name":"b"}')


JOB = {"client_id": 3, "job": {
    "id": "9f2c0d", "rounds": 20, "round": 4,
    "model": {"type": "softmax", "inputs": 784, "classes": 10, "hidden": [],
              "l1": 0.0, "l2": 0.0},
    "train": {"epochs": 1, "batch_size": 32, "lr": 0.05, "momentum": 0.0,
              "prox_mu": 0.0},
    "seed": "1"}}


def client_seeds():
    t = "client_json"

    def job(**kw):
        j = json.loads(json.dumps(JOB))
        for path, v in kw.items():
            obj = j
            keys = path.split("__")
            for k in keys[:-1]:
                obj = obj[k]
            if v is None:
                del obj[keys[-1]]
            else:
                obj[keys[-1]] = v
        return json.dumps(j)

    put(t, "join", job())
    put(t, "join-mlp", job(job__model__type="mlp",
                           job__model__hidden=[200, 200]))
    put(t, "join-logreg", job(job__model__type="logreg",
                              job__model__classes=2))
    put(t, "join-seed-number", job(job__seed=18446744073709551615))
    put(t, "join-seed-big-string", job(job__seed="18446744073709551616"))
    put(t, "join-huge-model", job(job__model__type="mlp",
                                  job__model__inputs=100000000,
                                  job__model__hidden=[65536] * 8))
    put(t, "join-lr-zero", job(job__train__lr=0))
    put(t, "join-no-train", job(job__train=None))
    put(t, "join-hidden-float", job(job__model__type="mlp",
                                    job__model__hidden=[1.5]))
    put(t, "join-long-id", job(job__id="i" * 200))
    put(t, "task-train", '{"action": "train", "round": 4, "model_sha256": "'
        + "AB12" * 16 + '", "deadline_s": 57.2, "secagg": false}')
    put(t, "task-train-short-sha", '{"action":"train","round":4,'
        '"model_sha256":"ab12"}')
    put(t, "task-wait", '{"action": "wait", "round": 4, "retry_after_ms": 1000}')
    put(t, "task-finished", '{"action": "finished", "round": 20}')
    put(t, "task-unknown", '{"action": "dance"}')
    put(t, "ack", '{"accepted": true, "round": 4, "duplicate": false}')
    put(t, "ack-dup", '{"accepted": true, "duplicate": true}')
    put(t, "error", '{"error": "stale_round", "message": "update for round 3,'
        ' but round 4 is open"}')
    put(t, "error-long", '{"error": "%s", "message": "%s"}' % ("e" * 100,
                                                               "m" * 400))
    put(t, "not-json", "<html>502 Bad Gateway</html>")
    put(t, "truncated", job()[:-7])


# ---- config ----------------------------------------------------------------


def config_seeds(repo):
    t = "config"
    for name in ("sim-fashion-mlp.ini", "sim-fashion-softmax.ini"):
        p = os.path.join(repo, "configs", name)
        if os.path.exists(p):
            put(t, name, open(p, "rb").read())
    coord = ("[job]\nrounds = 20\nclients_per_round = 4\nmin_clients = 3\n"
             "[model]\ntype = softmax\ninputs = 784\nclasses = 10\n"
             "[server]\nlisten = 127.0.0.1:8443\nenroll = open\n"
             "max_body_mb = 64\n[tls]\nca = pki/ca.pem\ncert = pki/server.pem\n"
             "key = pki/server.key\n[store]\npath = fedc.db\n"
             "[strategy]\nname = fedadam\nserver_lr = 0.01\n"
             "[privacy]\nnoise_multiplier = 1.1\nclip_norm = 1\n")
    put(t, "coordinator.ini", coord)
    put(t, "with-sets", coord.encode() + b"\0train.lr=0.2\0model.hidden="
        b"200, 200\0model.type=mlp\0job.seed=18446744073709551615")
    put(t, "only-sets", b"\0sim.alpha=1e-300\0data.label=y\0bogus\0x.y=1\0"
        b"train.momentum=1")
    put(t, "bom-crlf-indent", b"\xef\xbb\xbf[job]\r\n   rounds = 3\r\n"
        b"\t[train]\r\nlr=1e-2 ; comment\r\n")
    put(t, "long-line", "[data]\ntrain = /" + "d" * 900 + "/x.csv ; c\n")
    put(t, "long-value-over", "[data]\ntrain = /" + "d" * 1100 + "\n")
    put(t, "duplicate-key", "[job]\nrounds = 1\nrounds = 2\n")
    put(t, "unknown-section", "[jobs]\n")
    put(t, "key-before-section", "rounds = 3\n")
    put(t, "syntax-error", "[job]\nrounds\n")
    put(t, "semicolon-value", "[client]\nname = a;b\nkeep_updates = x ;y\n")
    put(t, "colon", "[train]\nlr: 0.5\n")
    put(t, "out-of-range", "[train]\nmomentum = 1\nthreads = 0\n")
    put(t, "int-overflow", "[job]\nrounds = 99999999999999999999\n")
    put(t, "hidden-list", "[model]\ntype = mlp\nhidden = 1,2,3,4,5,6,7,8\n")
    put(t, "hidden-too-many", "[model]\nhidden = 1,2,3,4,5,6,7,8,9\n")
    put(t, "nul-in-line", b"[job]\nrounds = 3\x01\n")
    put(t, "dump-like", "[sim]\nattack = sign_flip\nattack_fraction = 0.25\n"
        "speed_skew = 0.1\n[privacy]\ndelta = 1e-5\nepsilon_budget = 8\n")


# ---- data files --------------------------------------------------------------


def csv_seeds():
    t = "csv"
    put(t, "basic", "f1,f2,label\n0.5,1,0\n-1e3,2.5e-7,1\n3,4,2\n")
    put(t, "label-first-crlf-bom", "\ufefflabel , a,b\r\n1, 2 ,3\r\n0,\t4,5\r\n")
    put(t, "regression", "x,label\n1,0.5\n2,-3.25\n")
    put(t, "blank-lines-at-end", "a,label\n1,1\n\n  \n")
    put(t, "blank-line-middle", "a,label\n1,1\n\n2,0\n")
    put(t, "missing-field", "a,b,label\n1,2\n")
    put(t, "extra-field", "a,label\n1,2,3\n")
    put(t, "not-a-number", "a,label\nx,1\n")
    put(t, "quoted", 'a,label\n"1",1\n')
    put(t, "inf-nan", "a,label\ninf,1\nnan,0\n")
    put(t, "float-overflow", "a,label\n1e39,1\n")
    put(t, "no-label", "a,b\n1,2\n")
    put(t, "label-twice", "label,label\n1,2\n")
    put(t, "only-label", "label\n1\n")
    put(t, "header-only", "a,label\n")
    put(t, "empty", "")
    put(t, "nul-byte", b"a,label\n1\x00,2\n")
    put(t, "big-class-label", "a,label\n0,16777215\n0,16777216\n")
    put(t, "hex-and-exponents", "a,label\n0x1p-3,1e0\n-0,2\n")
    put(t, "long-line", "a,label\n" + "1" * 70000 + ",1\n")


def idx_pair(images, labels):
    return struct.pack("<H", len(images)) + images + labels


def idx_images(n, rows, cols, pixels=None, magic=0x00000803):
    if pixels is None:
        pixels = bytes((i * 37) % 256 for i in range(n * rows * cols))
    return struct.pack(">IIII", magic, n, rows, cols) + pixels


def idx_labels(n, labels=None, magic=0x00000801):
    if labels is None:
        labels = bytes(i % 10 for i in range(n))
    return struct.pack(">II", magic, n) + labels


def idx_seeds():
    t = "idx"
    img, lab = idx_images(3, 2, 2), idx_labels(3)
    gz = lambda b: gzip.compress(b, mtime=0)
    put(t, "valid", idx_pair(img, lab))
    put(t, "valid-gzip", idx_pair(gz(img), gz(lab)))
    put(t, "valid-gzip-images-only", idx_pair(gz(img), lab))
    put(t, "label-254", idx_pair(idx_images(1, 1, 1), idx_labels(1, b"\xfe")))
    put(t, "label-255", idx_pair(idx_images(1, 1, 1), idx_labels(1, b"\xff")))
    put(t, "count-mismatch", idx_pair(img, idx_labels(2)))
    put(t, "truncated-pixels", idx_pair(img[:-1], lab))
    put(t, "trailing-bytes", idx_pair(img + b"\0", lab))
    put(t, "truncated-gzip", idx_pair(gz(img)[:-6], lab))
    put(t, "gzip-trailing-garbage", idx_pair(gz(img) + b"junk", lab))
    put(t, "corrupt-gzip-crc", idx_pair(gz(img)[:-8] + b"\0\0\0\0" +
                                        gz(img)[-4:], lab))
    put(t, "wrong-magic", idx_pair(idx_images(3, 2, 2, magic=0x00000801), lab))
    put(t, "wrong-type", idx_pair(idx_images(3, 2, 2, magic=0x00000D03), lab))
    put(t, "zero-images", idx_pair(idx_images(0, 2, 2, b""), idx_labels(0)))
    put(t, "zero-rows", idx_pair(idx_images(3, 0, 2, b""), lab))
    put(t, "huge-declared", idx_pair(struct.pack(">IIII", 0x803, 0xFFFFFFFF,
                                                 0xFFFFFFFF, 0xFFFFFFFF), lab))
    put(t, "huge-declared-both", idx_pair(
        struct.pack(">IIII", 0x803, 0xFFFFFFFF, 0xFFFF, 0xFFFF),
        struct.pack(">II", 0x801, 0xFFFFFFFF)))
    put(t, "huge-declared-gzip", idx_pair(
        gz(struct.pack(">IIII", 0x803, 1000, 1000, 1000)),
        gz(struct.pack(">II", 0x801, 1000))))
    put(t, "short-header", idx_pair(b"\0\0\x08\x03\0\0", lab))
    put(t, "empty", b"")


def secagg_seeds(repo):
    """The messages of a real secure round: fuzz_secagg.c built with
    -DFUZZ_SECAGG_SEEDS is the writer (the keys are drawn afresh, so its
    seeds differ from run to run). Needs libfedc.a: $FEDC_BUILD (build)
    after `make`; skipped, saying so, without it."""
    import subprocess
    import tempfile
    lib = os.path.join(repo, os.environ.get("FEDC_BUILD", "build"), "lib", "libfedc.a")
    if not os.path.exists(lib):
        print("make_seeds: secagg seeds skipped: %s is not built (make)" % lib)
        return
    d = os.path.join(ROOT, "secagg")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "secagg_seeds")
        subprocess.run([os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O1",
                        "-DFUZZ_SECAGG_SEEDS", "-I" + os.path.join(repo, "include"),
                        "-I" + os.path.join(repo, "shared"), "-o", exe,
                        os.path.join(repo, "tests", "fuzz", "fuzz_secagg.c"), lib,
                        "-lcjson", "-lmbedcrypto", "-lz", "-lm", "-pthread"], check=True)
        subprocess.run([exe, d], check=True)


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    safetensors_seeds()
    model_update_seeds()
    http_seeds()
    join_seeds()
    client_seeds()
    config_seeds(repo)
    csv_seeds()
    idx_seeds()
    secagg_seeds(repo)


if __name__ == "__main__":
    main()
