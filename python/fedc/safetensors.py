"""fedc.safetensors - a small reader and writer of the safetensors format.

A file is an 8-byte little-endian header length N, N bytes of JSON mapping
each tensor name to {"dtype", "shape", "data_offsets"} (plus an optional
"__metadata__" object of strings), then the little-endian data. fedc adds
the metadata key "sha256" (the hex SHA-256 of the data section) and checks
it when present; this writer adds it too.

Tensors are numpy arrays. numpy has no bfloat16: a BF16 tensor is read as
float32 (exactly) and written from float32 with round-to-nearest-even; the
dtype of each tensor read is kept in the Tensors' .dtypes so that a file
can be written back in the same dtypes. When the `safetensors` package is
installed it decodes files with no BF16 tensor (it is faster on large
files); the results are the same.
"""
import hashlib
import json
import struct

import numpy as np

# safetensors dtype -> numpy dtype (little-endian); BF16 is special
_NP = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "?",
}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
DTYPES = tuple(_SIZE)
HEADER_MAX = 16 << 20


class FormatError(ValueError):
    """The bytes are not a valid safetensors file."""


class Tensors(dict):
    """name -> numpy array, with .dtypes (name -> safetensors dtype) and
    .metadata (str -> str) of the file they came from."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.dtypes = {}
        self.metadata = {}


def dtype_of(arr):
    """The safetensors dtype of a numpy array."""
    kind = np.dtype(arr.dtype)
    for name, code in _NP.items():
        if kind == np.dtype(code):
            return name
    raise TypeError(f"no safetensors dtype for numpy {arr.dtype}")


def bf16_to_f32(raw):
    """uint16 words of bfloat16 -> float32, exact."""
    return (raw.astype("<u4") << 16).view("<f4")


def f32_to_bf16(a):
    """float32 -> uint16 bfloat16 words, round to nearest even (NaN kept)."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4")
    nan = np.isnan(a)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    r[nan] = ((u[nan] >> 16) | 0x40).astype("<u2")
    return r


def _decode_own(blob):
    if len(blob) < 8:
        raise FormatError("shorter than its 8-byte header length")
    n = struct.unpack("<Q", blob[:8])[0]
    if n > HEADER_MAX or 8 + n > len(blob):
        raise FormatError(f"header length {n} does not fit the {len(blob)} bytes")
    try:
        header = json.loads(bytes(blob[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError("__metadata__ is not an object of strings")
    data = memoryview(blob)[8 + n:]
    out = Tensors()
    out.metadata = dict(meta)
    spans = []
    for name, t in header.items():
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"tensor '{name}': needs dtype, shape, data_offsets")
        dt, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if dt not in _SIZE:
            raise FormatError(f"tensor '{name}': unknown dtype {dt!r}")
        if (not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape)
                or not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise FormatError(f"tensor '{name}': bad shape or data_offsets")
        a, b = offs
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not 0 <= a <= b <= len(data) or b - a != count * _SIZE[dt]:
            raise FormatError(f"tensor '{name}': data_offsets [{a}, {b}] do not hold "
                              f"{dt} {shape} in {len(data)} bytes")
        spans.append((a, b))
        if dt == "BF16":
            arr = bf16_to_f32(np.frombuffer(data[a:b], dtype="<u2"))
        else:
            arr = np.frombuffer(data[a:b], dtype=_NP[dt]).copy()
        out[name] = arr.reshape(shape).astype(arr.dtype.newbyteorder("="), copy=False)
        out.dtypes[name] = dt
    pos = 0
    for a, b in sorted(spans):
        if a != pos:
            raise FormatError("tensors do not cover the data section exactly")
        pos = b
    if pos != len(data):
        raise FormatError("bytes after the last tensor")
    sha = meta.get("sha256")
    if sha is not None and hashlib.sha256(data).hexdigest() != sha.lower():
        raise FormatError("sha256 of the data section does not match the metadata")
    return out


def loads(blob):
    """Decode bytes into Tensors (every check of the format done)."""
    out = _decode_own(blob)
    return out


def load(path):
    """Read and decode a file."""
    with open(path, "rb") as f:
        blob = f.read()
    if "BF16" not in blob[8:8 + 65536].decode("latin-1"):
        try:
            from safetensors.numpy import load as st_load  # optional, faster
        except ImportError:
            st_load = None
        if st_load is not None:
            own = _decode_own(blob)  # the checks and the dtypes
            fast = st_load(blob)
            for k in own:
                own[k] = fast[k]
            return own
    return _decode_own(blob)


def dumps(tensors, metadata=None, dtypes=None):
    """Encode name -> array (numpy, or anything np.asarray takes) as bytes.
    dtypes: name -> safetensors dtype to write (BF16 from float data, or a
    cast such as F16); otherwise each array's own dtype. The metadata
    (str -> str) gets "sha256" of the data section."""
    dtypes = dtypes or {}
    header = {}
    chunks = []
    pos = 0
    for name, value in tensors.items():
        arr = np.asarray(value)
        dt = dtypes.get(name) or dtype_of(arr)
        if dt not in _SIZE:
            raise ValueError(f"tensor '{name}': unknown dtype {dt!r}")
        if dt == "BF16":
            raw = f32_to_bf16(np.asarray(arr, dtype=np.float32)).tobytes()
        else:
            raw = np.ascontiguousarray(arr, dtype=_NP[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [pos, pos + len(raw)]}
        chunks.append(raw)
        pos += len(raw)
    data = b"".join(chunks)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    header = {"__metadata__": meta, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def save(path, tensors, metadata=None, dtypes=None):
    """dumps() to a file, atomically (a temporary file beside it, renamed)."""
    import os
    blob = dumps(tensors, metadata, dtypes)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
