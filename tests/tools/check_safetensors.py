#!/usr/bin/env python3
"""check_safetensors.py - validate a safetensors file written by fedc.

An independent reading of the format (standard library only), so that a bug
in fedc's encoder cannot hide behind the same bug in fedc's decoder:

  * 8-byte little-endian header size N, N bytes of strict UTF-8 JSON that is
    one object, padded at the end with spaces only, data 8-byte aligned;
  * no duplicate keys, integers only (no floats, NaN, true/false for numbers);
  * every tensor {"dtype":"F32","shape":[...],"data_offsets":[b,e]} with no
    other field, at most 4 non-negative dims, e - b == 4 * elements;
  * tensors contiguous from 0, no overlap or gap, ending at the file's end;
  * "__metadata__" string -> string with "sha256" equal to the SHA-256 of
    the data section;
  * every little-endian F32 value finite.

If torch imports, every tensor is also loaded with torch.frombuffer and its
shape and values compared; if safetensors imports, the file is loaded with
safetensors.numpy / safetensors.torch and compared too. Neither is needed.

Usage: check_safetensors.py FILE...
Prints one summary line per good file; exit 0 when all are good, 1 on any
problem (reported on stderr), 2 on bad usage.
"""

import hashlib
import json
import math
import struct
import sys

MAX_HEADER = 16 << 20
MAX_DIMS = 4


class Bad(Exception):
    """A problem with the file; the message says what."""


def _no_float(text):
    raise Bad("header has a non-integer number %r" % text)


def _no_constant(text):
    raise Bad("header has the non-JSON constant %r" % text)


def _pairs(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise Bad("header has duplicate key %r" % key)
        seen.add(key)
    return dict(pairs)


def _is_int(v):
    return type(v) is int  # bool is an int subclass: refuse it


def parse(blob):
    """Check the container; return (tensors, metadata, data) where tensors
    is a header-ordered list of (name, shape, begin, end)."""
    if len(blob) < 8:
        raise Bad("%d bytes is shorter than the 8-byte header size" % len(blob))
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        raise Bad("header size %d exceeds fedc's limit of %d" % (n, MAX_HEADER))
    if 8 + n > len(blob):
        raise Bad("header size %d exceeds the %d bytes after it" % (n, len(blob) - 8))
    if (8 + n) % 8 != 0:
        raise Bad("data section starts at %d, not 8-byte aligned" % (8 + n))
    raw = blob[8 : 8 + n]
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise Bad("header is not valid UTF-8: %s" % e)
    if not text.startswith("{"):
        raise Bad("header does not start with '{'")
    body = text.rstrip(" ")
    if not body.endswith("}"):
        raise Bad("header is not one JSON object padded with spaces")
    try:
        header = json.loads(
            body,
            object_pairs_hook=_pairs,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except ValueError as e:
        raise Bad("header is not valid JSON (or not padded with spaces only): %s" % e)
    if not isinstance(header, dict):
        raise Bad("header is not a JSON object")

    data = blob[8 + n :]
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict):
        raise Bad("__metadata__ is not an object")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise Bad("metadata %r is not a string" % k)

    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        where = "tensor %r" % name
        if not name or len(name.encode("utf-8")) > 255:
            raise Bad("%s: name empty or longer than 255 bytes" % where)
        if not isinstance(entry, dict):
            raise Bad("%s: entry is not an object" % where)
        if set(entry) != {"dtype", "shape", "data_offsets"}:
            raise Bad("%s: fields are %s, want dtype, shape, data_offsets"
                      % (where, sorted(entry)))
        if entry["dtype"] != "F32":
            raise Bad("%s: dtype %r, fedc writes F32 only" % (where, entry["dtype"]))
        shape = entry["shape"]
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(_is_int(d) and d >= 0 for d in shape)):
            raise Bad("%s: shape %r is not up to %d non-negative integers"
                      % (where, shape, MAX_DIMS))
        offs = entry["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(_is_int(o) and o >= 0 for o in offs)):
            raise Bad("%s: data_offsets %r is not two non-negative integers"
                      % (where, offs))
        begin, end = offs
        elems = 1
        for d in shape:
            elems *= d
        if begin > end or end - begin != 4 * elems:
            raise Bad("%s: data_offsets %r do not match shape %r of F32"
                      % (where, offs, shape))
        tensors.append((name, shape, begin, end))

    expect = 0
    for name, _, begin, end in sorted(tensors, key=lambda t: (t[2], t[3])):
        if begin != expect:
            raise Bad("tensor %r begins at %d, expected %d (%s)"
                      % (name, begin, expect,
                         "overlap" if begin < expect else "gap"))
        expect = end
    if expect != len(data):
        raise Bad("tensors cover %d bytes, data section has %d" % (expect, len(data)))

    if "sha256" not in meta:
        raise Bad("metadata has no sha256 (fedc always writes one)")
    digest = hashlib.sha256(data).hexdigest()
    if meta["sha256"] != digest:
        raise Bad("sha256 of the data section is %s, metadata says %s"
                  % (digest, meta["sha256"]))

    for name, _, begin, end in tensors:
        # An F32 is finite unless all its exponent bits are set.
        count = (end - begin) // 4
        for i, (bits,) in enumerate(struct.iter_unpack("<I", data[begin:end])):
            if bits & 0x7F800000 == 0x7F800000:
                (v,) = struct.unpack("<f", struct.pack("<I", bits))
                raise Bad("tensor %r: element %d of %d is %r"
                          % (name, i, count, v))
    return tensors, meta, data


def values(data, begin, end):
    return [v for (v,) in struct.iter_unpack("<f", data[begin:end])]


def check_torch(tensors, data):
    """Load each tensor with torch.frombuffer; None if torch is absent."""
    try:
        import torch
    except Exception:
        return None
    if sys.byteorder != "little":
        return "torch skipped (big-endian host)"
    for name, shape, begin, end in tensors:
        if end > begin:
            t = torch.frombuffer(bytearray(data[begin:end]), dtype=torch.float32)
        else:
            t = torch.empty(0, dtype=torch.float32)
        t = t.reshape(shape)
        if list(t.shape) != shape:
            raise Bad("torch: tensor %r has shape %s, header says %r"
                      % (name, list(t.shape), shape))
        if t.flatten().tolist() != values(data, begin, end):
            raise Bad("torch: tensor %r values differ" % name)
        if not bool(torch.isfinite(t).all()):
            raise Bad("torch: tensor %r has non-finite values" % name)
    return "torch ok"


def check_safetensors_lib(path, tensors, meta, data):
    """Load with the safetensors package; None if it is absent."""
    try:
        import safetensors
    except Exception:
        return None
    loaded = None
    how = None
    try:
        from safetensors.numpy import load_file
        loaded, how = load_file(path), "numpy"
    except ImportError:
        pass
    if loaded is None:
        try:
            from safetensors.torch import load_file
            loaded, how = load_file(path), "torch"
        except ImportError:
            return "safetensors present but neither numpy nor torch is"
    try:
        with safetensors.safe_open(path, framework="numpy" if how == "numpy" else "pt") as f:
            theirs = f.metadata() or {}
    except Exception as e:
        raise Bad("safetensors.safe_open failed: %s" % e)
    if theirs != meta:
        raise Bad("safetensors: metadata differs: %r vs %r" % (theirs, meta))
    if set(loaded) != {t[0] for t in tensors}:
        raise Bad("safetensors: names differ: %s" % sorted(loaded))
    for name, shape, begin, end in tensors:
        arr = loaded[name]
        if list(arr.shape) != shape:
            raise Bad("safetensors: tensor %r has shape %s, header says %r"
                      % (name, list(arr.shape), shape))
        flat = arr.reshape(-1).tolist()
        if flat != values(data, begin, end):
            raise Bad("safetensors: tensor %r values differ" % name)
    return "safetensors.%s ok" % how


def check(path):
    with open(path, "rb") as f:
        blob = f.read()
    tensors, meta, data = parse(blob)
    extras = ["sha256 ok"]
    for extra in (check_torch(tensors, data),
                  check_safetensors_lib(path, tensors, meta, data)):
        if extra:
            extras.append(extra)
    shapes = " ".join("%s[%s]" % (n, ",".join(str(d) for d in s))
                      for n, s, _, _ in tensors)
    print("ok %s: %d tensors, %d data bytes: %s (%s)"
          % (path, len(tensors), len(data), shapes, ", ".join(extras)))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: check_safetensors.py FILE...\n")
        return 2
    status = 0
    for path in argv[1:]:
        try:
            check(path)
        except (Bad, OSError) as e:
            sys.stderr.write("check_safetensors: %s: %s\n" % (path, e))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
