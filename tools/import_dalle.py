#!/usr/bin/python3
"""Convert DALL-E's dVAE encoder (the BEiT paper's tokenizer) into a beit tokenizer checkpoint.

    /usr/bin/python3 tools/import_dalle.py ENCODER OUT.h5 [--image-size 112] [--force]

ENCODER is either
  - encoder.pkl as released with openai/DALL-E (a pickled torch module of the classes
    dall_e.encoder.Encoder / EncoderBlock and dall_e.utils.Conv2d): it is unpickled with those
    classes mapped onto the twin in tools/torchref/dalle_encoder.py, so the dall_e package (and
    attrs) are not needed -- only PyTorch, NumPy and h5py (Debian: python3-torch, python3-h5py);
  - or a plain state dict saved with torch.save (names blocks.input.w, ..., blocks.output.conv.b).

The dimensions (n_hid, n_blk_per_group, group_count, input channels, vocabulary) are read off
the tensor shapes and checked by loading the state dict into the twin with strict=True.
--image-size is the side the tokenizer sees (BEiT: 112, i.e. 14x14 tokens for 16-pixel patches
of 224 images); the encoder is fully convolutional, so this records a choice, not a weight.

OUT.h5 is a beit checkpoint (format 3, kind 'dalle-encoder', see include/beit/checkpoint.h):
/params/<name> float32 with the per-tensor 'checksum' attribute computed exactly as
src/io/checkpoint.c's ckpt_checksum, and the dims in the stored config (section dalle:), which
`beit tokenize` and pretrain.target tokens_online rebuild the encoder from. The root attribute
params_checksum (FNV-1a over the flat table, informational: nothing verifies it) is written
for tables up to 16 MiB; computing it in Python for the full 54M-parameter encoder would take
minutes, so larger conversions omit it (`beit data info` then shows "(none)").
"""
import argparse
import hashlib
import os
import pickle
import sys
import types

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchref"))
import dalle_encoder as twin  # noqa: E402
from weights_io import ckpt_checksum  # noqa: E402  (the same per-tensor checksum as import_torch.py)

KIND = "dalle-encoder"
FORMAT, FORMAT_VERSION = "beit-checkpoint", 3

# ---- unpickling encoder.pkl without the dall_e package ----------------------------------------
CLASS_MAP = {
    ("dall_e.encoder", "Encoder"): twin.Encoder,
    ("dall_e.encoder", "EncoderBlock"): twin.EncoderBlock,
    ("dall_e.utils", "Conv2d"): twin.Conv2d,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in CLASS_MAP:
            return CLASS_MAP[(module, name)]
        if module == "dall_e" or module.startswith("dall_e."):
            raise pickle.UnpicklingError(f"{module}.{name}: not a class of DALL-E's encoder this converter maps "
                                         f"(it maps {', '.join(m + '.' + n for m, n in CLASS_MAP)})")
        return super().find_class(module, name)


def _load(f, **kw):
    return _Unpickler(f, **kw).load()


# pickle with the mapping: what torch.load uses of a pickle module is Unpickler (subclassed by
# torch to add its own find_class rules, which then call ours) and load
_pickle_module = types.ModuleType("dalle_pickle")
_pickle_module.__dict__.update({k: v for k, v in pickle.__dict__.items() if not k.startswith("__")})
_pickle_module.Unpickler = _Unpickler
_pickle_module.load = _load


def torch_load(path):
    """torch.load with the class mapping. Some torch releases (e.g. Debian's 1.13) ignore the
    pickle_module argument and always use torch.serialization's global `pickle`, so that global
    is pointed at the mapping module for the duration of the call."""
    saved = torch.serialization.pickle
    torch.serialization.pickle = _pickle_module
    try:
        return torch.load(path, map_location="cpu", pickle_module=_pickle_module)
    finally:
        torch.serialization.pickle = saved


def load_state_dict(path):
    try:
        obj = torch_load(path)
    except Exception as e:  # noqa: BLE001 -- any failure: name the file
        sys.exit(f"{path}: cannot load it as a torch file: {e}")
    if isinstance(obj, torch.nn.Module):
        sd = obj.state_dict()
    elif isinstance(obj, dict) and obj and all(torch.is_tensor(v) for v in obj.values()):
        sd = obj
    else:
        sys.exit(f"{path}: holds a {type(obj).__name__}, expected DALL-E's Encoder module or its state dict")
    return {k: v.detach().to(torch.float32).contiguous() for k, v in sd.items()}


def dims_of(sd, path):
    def need(name):
        if name not in sd:
            sys.exit(f"{path}: no tensor {name}: not DALL-E's encoder")
        return sd[name]
    w_in, w_out = need("blocks.input.w"), need("blocks.output.conv.w")
    if w_in.dim() != 4 or w_in.shape[2:] != (7, 7):
        sys.exit(f"{path}: blocks.input.w has shape {tuple(w_in.shape)}, expected [n_hid, channels, 7, 7]")
    groups = 0
    while any(k.startswith(f"blocks.group_{groups + 1}.") for k in sd):
        groups += 1
    blocks = 0
    while f"blocks.group_1.block_{blocks + 1}.res_path.conv_1.w" in sd:
        blocks += 1
    d = dict(group_count=groups, n_hid=int(w_in.shape[0]), n_blk_per_group=blocks, in_chans=int(w_in.shape[1]),
             vocab_size=int(w_out.shape[0]))
    if groups != twin.Encoder.group_count or blocks < 1:
        sys.exit(f"{path}: {groups} groups of {blocks} blocks; DALL-E's encoder has {twin.Encoder.group_count} "
                 f"groups of >= 1 blocks")
    return d


# ---- beit's checksums (src/io/checkpoint.c ckpt_checksum, src/core/params.c params_checksum) --


def params_checksum(arrays):
    """FNV-1a over the raw bytes of the flat table (tensors in table order)."""
    h, prime, mask = 1469598103934665603, 1099511628211, 0xFFFFFFFFFFFFFFFF
    for a in arrays:
        for b in np.ascontiguousarray(a, dtype="<f4").tobytes():
            h = ((h ^ b) * prime) & mask
    return h


def table_order(d):
    """The tensor order of the C parameter table (src/models/dalle.c dalle_build)."""
    names = ["blocks.output.conv"]
    G, nb = d["group_count"], d["n_blk_per_group"]
    for g in range(G, 0, -1):
        for i in range(nb, 0, -1):
            p = f"blocks.group_{g}.block_{i}"
            names += [f"{p}.res_path.conv_4", f"{p}.res_path.conv_3", f"{p}.res_path.conv_2",
                      f"{p}.res_path.conv_1"]
            cin = d["n_hid"] << (g - 2 if i == 1 and g > 1 else g - 1)
            if cin != d["n_hid"] << (g - 1):
                names.append(f"{p}.id_path")
    names.append("blocks.input")
    return [n + s for n in names for s in (".w", ".b")]


def config_yaml(d, image_size, src, sha):
    lines = [f"# DALL-E encoder converted by tools/import_dalle.py from {src} (sha256 {sha})",
             "task: tokenize", "dalle:"]
    for k in ("group_count", "n_hid", "n_blk_per_group", "in_chans", "vocab_size"):
        lines.append(f"  {k}: {d[k]}")
    lines.append(f"  image_size: {image_size}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("encoder", help="encoder.pkl (pickled module) or a state dict saved with torch.save")
    ap.add_argument("out", help="the beit checkpoint to write (.h5)")
    ap.add_argument("--image-size", type=int, default=112, help="input side of the tokenizer (default 112)")
    ap.add_argument("--force", action="store_true", help="overwrite OUT")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.force:
        sys.exit(f"{a.out}: exists (use --force to overwrite)")
    sd = load_state_dict(a.encoder)
    d = dims_of(sd, a.encoder)
    down = 1 << (d["group_count"] - 1)
    if a.image_size < down:
        sys.exit(f"--image-size {a.image_size}: smaller than 2^(group_count-1) = {down}")
    # the twin at these dims must take the state dict exactly (names and shapes)
    enc = twin.Encoder(n_hid=d["n_hid"], n_blk_per_group=d["n_blk_per_group"], input_channels=d["in_chans"],
                       vocab_size=d["vocab_size"])
    try:
        enc.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        sys.exit(f"{a.encoder}: does not match DALL-E's encoder at n_hid {d['n_hid']}, {d['n_blk_per_group']} "
                 f"blocks per group: {e}")
    order = table_order(d)
    if sorted(order) != sorted(sd):
        sys.exit(f"{a.encoder}: tensor names differ from the expected table: "
                 f"{sorted(set(order) ^ set(sd))[:5]}")
    for k, v in sd.items():
        if not torch.isfinite(v).all():
            sys.exit(f"{a.encoder}: tensor {k} holds NaN or Inf")
    sha = hashlib.sha256(open(a.encoder, "rb").read()).hexdigest()
    arrays = [sd[k].numpy() for k in order]
    nbytes = sum(x.nbytes for x in arrays)

    tmp = os.path.join(os.path.dirname(os.path.abspath(a.out)), "." + os.path.basename(a.out) + f".tmp.{os.getpid()}")
    S = h5py.string_dtype("utf-8")  # as beit writes its strings (src/io/h5attr.c)
    try:
        with h5py.File(tmp, "w") as f:
            A = f.attrs
            A.create("format", FORMAT, dtype=S)
            A.create("format_version", np.int64(FORMAT_VERSION))
            A.create("kind", KIND, dtype=S)
            A.create("step", np.int64(0))
            A.create("seed", np.int64(0))
            A.create("nranks", np.int64(1))
            if nbytes <= 16 << 20:
                A.create("params_checksum", "%016x" % params_checksum(arrays), dtype=S)
            A.create("config", config_yaml(d, a.image_size, os.path.basename(a.encoder), sha), dtype=S)
            A.create("created_by", "tools/import_dalle.py", dtype=S)
            A.create("source_sha256", sha, dtype=S)
            g = f.create_group("params")
            for k, x in zip(order, arrays):
                ds = g.create_dataset(k, data=x.astype("<f4"))
                ds.attrs.create("checksum", np.uint64(ckpt_checksum(x)), dtype="<u8")
            A.create("complete", np.int64(1))  # last: a file without it is incomplete
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    n = sum(x.size for x in arrays)
    h = a.image_size >> (d["group_count"] - 1)
    print(f"{a.out}: {KIND}, n_hid {d['n_hid']}, {d['group_count']} groups x {d['n_blk_per_group']} blocks, "
          f"{d['in_chans']} channels, vocabulary {d['vocab_size']}, {len(arrays)} tensors ({n} floats); "
          f"input {a.image_size}x{a.image_size} -> {h}x{h} tokens")


if __name__ == "__main__":
    main()
