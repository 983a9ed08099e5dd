#!/usr/bin/env python3
"""split_idx.py - give each client of a demo or test its own data shard.

Reads an IDX images/labels pair (gzipped or not) and writes, for each
client k, DIR/client-k/train-images.idx and DIR/client-k/train-labels.idx
holding a disjoint slice of the rows (shuffled with a seed). Sizes are
given per client, so tests can make clients with uneven amounts of data.

    split_idx.py IMAGES LABELS DIR SIZE [SIZE ...] [--seed N]

Standard library only.
"""
import argparse
import gzip
import os
import random
import struct
import sys


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return dims, data[4 + 4 * ndim:]


def write_idx(path, dims, rows):
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0800 | len(dims)))
        f.write(struct.pack(">" + "I" * len(dims), *dims))
        for r in rows:
            f.write(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("labels")
    ap.add_argument("dir")
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    idims, ibytes = read_idx(a.images)
    ldims, lbytes = read_idx(a.labels)
    n = idims[0]
    if ldims[0] != n or sum(a.sizes) > n:
        sys.exit(f"need {sum(a.sizes)} rows, have {n} (labels {ldims[0]})")
    row = idims[1] * idims[2]
    order = list(range(n))
    random.Random(a.seed).shuffle(order)
    at = 0
    for k, size in enumerate(a.sizes, start=1):
        take = order[at:at + size]
        at += size
        d = os.path.join(a.dir, f"client-{k}")
        os.makedirs(d, exist_ok=True)
        write_idx(os.path.join(d, "train-images.idx"), (size, idims[1], idims[2]),
                  [ibytes[i * row:(i + 1) * row] for i in take])
        write_idx(os.path.join(d, "train-labels.idx"), (size,),
                  [lbytes[i:i + 1] for i in take])
    print(f"split_idx: {len(a.sizes)} clients, {at} rows, into {a.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
