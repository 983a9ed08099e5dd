#!/usr/bin/python3
"""stream_trainer.py - the external trainer of bench/large_model.py: the
tensor-job step of tests/integration/trainers/numpy_trainer.py (every F32
value moves by 0.01 (round + 1) (1 + n mod 7) cos(i + n), i its index in
its tensor, n the site's sample count), computed in slices of 4 Mi values
read from the model file through a memory map and written straight to the
update file. Its memory is a few slices whatever the model's size, so four
sites of a 1 GiB model fit one machine beside their fedc-clients; the
numpy trainer holds several float64 copies of every tensor.

    stream_trainer.py --samples N

The update's header is written first with a placeholder SHA-256 of the
data section (64 hex digits, the same length as the real one) and
rewritten in place once the data is written and hashed; the file is
fsync'd and renamed into place, as fedc.save_update does.
"""
import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "python"))
import fedc  # noqa: E402

SLICE = 4 << 20


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    a = ap.parse_args()
    t = fedc.task()
    n = a.samples
    step = 0.01 * (t.round + 1) * (1 + n % 7)
    header, base = read_header(t.model_in)
    for name, d in header.items():
        if d["dtype"] != "F32":
            sys.exit(f"stream_trainer: tensor '{name}' is {d['dtype']}; only F32 is streamed")
    src = np.memmap(t.model_in, dtype=np.uint8, mode="r")
    meta = {"num_samples": str(n), "train_loss": repr(1.0 / (t.round + 1)), "sha256": "0" * 64}
    out_header = {"__metadata__": meta}
    out_header.update(header)

    def encode():
        text = json.dumps(out_header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        return struct.pack("<Q", len(text)) + text

    first = encode()
    tmp = f"{t.update_out}.tmp{os.getpid()}"
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        f.write(first)
        for name, d in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            a0, a1 = d["data_offsets"]
            values = src[base + a0:base + a1].view(np.float32)
            for s in range(0, values.size, SLICE):
                v = values[s:s + SLICE]
                idx = np.arange(s, s + v.size, dtype=np.float64)
                out = (v + step * np.cos(idx + n)).astype(np.float32).tobytes()
                h.update(out)
                f.write(out)
        meta["sha256"] = h.hexdigest()
        second = encode()
        assert len(second) == len(first)
        f.seek(0)
        f.write(second)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, t.update_out)


if __name__ == "__main__":
    main()
