"""Shared by tools/import_torch.py and tools/export_torch.py: state dicts in and out of files
(.pth / .pt through torch, .safetensors written and read here), and beit's checkpoint layout
(format 3, include/beit/checkpoint.h) in Python.

safetensors, as specified by huggingface/safetensors (README.md "Format" and
safetensors/src/tensor.rs, read at commit 000a16f45cff0d4169ca15b67ea002895234d671):
8 bytes N (u64 little-endian), N bytes of UTF-8 JSON {name: {"dtype", "shape",
"data_offsets": [begin, end]}, optional "__metadata__": {str: str}}, padded with spaces to a
multiple of 8; then the byte buffer, tensors row-major little-endian, packed without holes,
the last end = the buffer's size. Writers sort by dtype alignment (descending) then name."""
import json
import os
import pickle
import struct
import sys

import numpy as np

BEIT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# safetensors dtype names <-> numpy (little-endian)
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
             "U8": "u1", "BOOL": "?", "U16": "<u2", "U32": "<u4", "U64": "<u8"}


def fail(msg, code=2):
    sys.stderr.write(f"{os.path.basename(sys.argv[0])}: {msg}\n")
    sys.exit(code)


# ---- safetensors ----
def read_safetensors(path):
    """{name: numpy array}, metadata dict; malformed files fail naming what is wrong"""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            fail(f"{path}: not a safetensors file (shorter than 8 bytes)", 3)
        n = struct.unpack("<Q", head)[0]
        if n > 100_000_000 or 8 + n > size:
            fail(f"{path}: not a safetensors file (header length {n} for a file of {size} bytes)", 3)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            fail(f"{path}: safetensors header is not UTF-8 JSON ({e})", 3)
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out, spans = {}, []
    for name, info in header.items():
        dt = info.get("dtype")
        if dt == "BF16":  # no numpy type: widen to float32 through the upper half of the bits
            dtype = None
        elif dt in ST_DTYPES:
            dtype = np.dtype(ST_DTYPES[dt])
        else:
            fail(f"{path}: tensor {name}: dtype {dt} not supported", 3)
        shape = [int(s) for s in info["shape"]]
        b, e = (int(x) for x in info["data_offsets"])
        numel = int(np.prod(shape)) if shape else 1
        width = 2 if dtype is None else dtype.itemsize
        if e - b != numel * width or e > len(data) or b < 0:
            fail(f"{path}: tensor {name}: data_offsets [{b}, {e}] do not fit dtype {dt} shape {shape}", 3)
        raw = np.frombuffer(data, dtype=np.uint16 if dtype is None else dtype, count=numel, offset=b)
        if dtype is None:
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        out[name] = raw.reshape(shape).copy()
        spans.append((b, e, name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            fail(f"{path}: tensor {name} starts at {b}, expected {pos} (holes or overlaps in the buffer)", 3)
        pos = e
    if pos != len(data):
        fail(f"{path}: the tensors cover {pos} of the {len(data)} buffer bytes", 3)
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: numpy array (float32 / int64 / ...)}; written to a temporary name, renamed"""
    rev = {np.dtype(v).str: k for k, v in ST_DTYPES.items()}
    items = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        a = a.astype(a.dtype.newbyteorder("<")) if a.dtype.byteorder == ">" else a
        key = np.dtype(a.dtype).str if a.dtype.itemsize > 1 else a.dtype.str
        if key not in rev:
            fail(f"{name}: dtype {a.dtype} has no safetensors name")
        items.append((name, rev[key], a))
    items.sort(key=lambda t: (-t[2].dtype.itemsize, t[0]))  # alignment descending, then name
    header, off = {}, 0
    for name, dt, a in items:
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for _, _, a in items:
            f.write(a.tobytes())
    os.replace(tmp, path)


# ---- state dicts from files ----
def load_state_dict(path, trust_pickle=False):
    """(name -> numpy array, description of the wrapping); .safetensors read here, anything else
    through torch.load (weights_only unless trust_pickle). Wrappers {"model"|"module"|"state_dict":
    {...}} and a "module." prefix on every name are removed."""
    if path.endswith(".safetensors"):
        sd, _ = read_safetensors(path)
        return sd, "safetensors"
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except FileNotFoundError:
        fail(f"{path}: no such file", 3)
    except Exception as e:  # noqa: BLE001 -- torch raises several kinds for foreign pickles
        if not trust_pickle and (isinstance(e, pickle.UnpicklingError) or "weights only" in str(e).lower()):
            fail(f"{path}: holds Python objects besides tensors (torch.load weights_only refused it: {e}); if you "
                 f"trust the file, pass --trust-pickle", 3)
        fail(f"{path}: cannot read it as a PyTorch file ({type(e).__name__}: {e})", 3)
    where = "state dict"
    for key in ("model", "module", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj, where = obj[key], f"the state dict under '{key}'"
            break
    if not isinstance(obj, dict):
        fail(f"{path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors)", 3)
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
        where += " (prefix 'module.' removed)"
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            fail(f"{path}: entry '{k}' of {where} is a {type(v).__name__}, not a tensor", 3)
        out[k] = v.detach().cpu().numpy()
    return out, where


# ---- beit's checkpoint layout ----
def _mix64(z):
    """splitmix64's finaliser on a uint64 numpy array (wrapping arithmetic)"""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def ckpt_checksum(x):
    """src/io/checkpoint.c ckpt_checksum(x, numel, 0): sum mod 2^64 of mix64(i << 32 | bits(x[i]))"""
    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    total = np.uint64(0)
    step = 1 << 22
    with np.errstate(over="ignore"):
        for lo in range(0, bits.size, step):
            i = np.arange(lo, min(lo + step, bits.size), dtype=np.uint64)
            total = total + np.sum(_mix64((i << np.uint64(32)) | bits[lo:lo + step]), dtype=np.uint64)
    return np.uint64(total)


def relative_position_index(gh, gw):
    """unilm / timm RelativePositionBias index [T, T], T = gh*gw + 1 (numpy, int64)"""
    nrd = (2 * gh - 1) * (2 * gw - 1) + 3
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    c = np.stack([ys.reshape(-1), xs.reshape(-1)])  # 2, N
    rel = (c[:, :, None] - c[:, None, :]).transpose(1, 2, 0).copy()
    rel[:, :, 0] += gh - 1
    rel[:, :, 1] += gw - 1
    rel[:, :, 0] *= 2 * gw - 1
    idx = np.zeros((gh * gw + 1,) * 2, dtype=np.int64)
    idx[1:, 1:] = rel.sum(-1)
    idx[0, 0:] = nrd - 3
    idx[0:, 0] = nrd - 2
    idx[0, 0] = nrd - 1
    return idx


def seal_program(build_dir=None):
    b = build_dir or os.path.join(BEIT_ROOT, "build")
    p = os.path.join(b, "beit-ckpt-seal")
    if not os.access(p, os.X_OK):
        fail(f"{p} not found: build beit first (ninja -C {b}), or pass --build-dir")
    return p
