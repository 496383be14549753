"""PyTorch side of tests/models/weights_io.sh (Debian's python3-torch, h5py).

  make DIR SIZE          upstream-layout state dicts of random weights (unilm pre-training .pth
                         wrapped {"model": ...}, unilm fine-tuned .pth, timm .safetensors, and
                         broken ones), PNG images in class folders, MIM inputs (images + masks)
  mim DIR CKPT_LOGITS    the unilm pre-training module's MIM logits on DIR/mim_in.h5 vs beit's
  cls WEIGHTS LAYOUT STORE LOGITS MEAN STD
                         the module's class logits on the store's test images (normalised with
                         MEAN/STD) vs beit eval --logits
  strict CKPT EXPORT LAYOUT   the export loads with strict=True into the layout's module and
                         holds the checkpoint's tensors unchanged
  same A.h5 B.h5         identical tensors (names, shapes, bits) and params_checksum
SIZE: small (32x32, patch 8, D 48, depth 2, V 64, 2 classes) or vitb (ViT-B/16 224, V 8192)."""
import os
import struct
import sys
import zlib

import h5py
import numpy as np
import torch
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "torchref"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from beit_layouts import TimmBeit, randomise, unilm_finetune, unilm_pretrain  # noqa: E402
from weights_io import read_safetensors, write_safetensors  # noqa: E402

torch.set_num_threads(2)
SIZES = {"small": dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, vocab=64, ncls=2, per_class=4),
         "vitb": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, vocab=8192, ncls=2,
                      per_class=2)}


def png(path, img):
    """RGB uint8 [H, W, 3] -> PNG (filter 0 rows, zlib)"""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def module(s, which):
    kw = dict(img_size=s["img_size"], patch_size=s["patch_size"], in_chans=3, embed_dim=s["embed_dim"],
              depth=s["depth"], num_heads=s["num_heads"], mlp_hidden=4 * s["embed_dim"])
    if which == "pre":
        return unilm_pretrain(vocab_size=s["vocab"], init_values=0.1, **kw)
    return unilm_finetune(num_classes=s["ncls"], init_values=0.1, pool="mean", **kw)


def timm_module(s, pool="avg"):
    return TimmBeit(img_size=s["img_size"], patch_size=s["patch_size"], in_chans=3, num_classes=s["ncls"],
                    global_pool=pool, embed_dim=s["embed_dim"], depth=s["depth"], num_heads=s["num_heads"],
                    mlp_ratio=4.0, init_values=0.1, use_abs_pos_emb=False, use_rel_pos_bias=True)


def make(d, size):
    s = SIZES[size]
    torch.manual_seed(0)
    pre, ft = randomise(module(s, "pre"), 1), randomise(module(s, "ft"), 2)
    torch.save({"model": pre.state_dict()}, f"{d}/unilm_pre.pth")
    torch.save(ft.state_dict(), f"{d}/unilm_ft.pth")
    if size == "small":
        tm = randomise(timm_module(s), 3)
        write_safetensors(f"{d}/timm_ft.safetensors", {k: v.numpy() for k, v in tm.state_dict().items()})
        bad = dict(ft.state_dict())
        bad["blocks.1.attn.extra_scale"] = torch.ones(3)
        torch.save(bad, f"{d}/bad_extra.pth")
        bad = dict(ft.state_dict())
        bad["blocks.0.attn.relative_position_index"] = bad["blocks.0.attn.relative_position_index"].flip(0)
        torch.save(bad, f"{d}/bad_index.pth")
    S, n = s["img_size"], s["per_class"]
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:S, 0:S]
    imgs = []
    for c in range(s["ncls"]):
        os.makedirs(f"{d}/img/class{c}", exist_ok=True)
        for i in range(n):
            base = 127 + 100 * np.sin((xx * (c + 1) + yy * (i + 1)) / S * 6.28)[..., None] * np.array([1, .6, -.8])
            img = np.clip(base + rng.normal(0, 20, (S, S, 3)), 0, 255).astype(np.uint8)
            png(f"{d}/img/class{c}/{i:02d}.png", img)
            imgs.append(img)
    Np = (S // s["patch_size"]) ** 2
    mask = np.zeros((2, Np), np.uint8)
    mask[0, rng.choice(Np, Np // 3, replace=False)] = 1
    mask[1, rng.choice(Np, Np // 2, replace=False)] = 1
    with h5py.File(f"{d}/mim_in.h5", "w") as f:
        f["images"] = np.stack(imgs[:2])
        f["mask"] = mask


def compare(got, want, what):
    err = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    ok = got.shape == want.shape and err <= 1e-4 * scale
    print(f"{what}: logits {list(want.shape)}, max abs difference {err:.3e}, max |logit| {scale:.3e}, relative "
          f"{err / scale:.2e} -> {'match' if ok else 'MISMATCH'}")
    return ok


def normalise(img, mean, std):
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


def mim(d, logits):
    sd = torch.load(f"{d}/unilm_pre.pth")["model"]
    size = "vitb" if sd["cls_token"].shape[-1] == 768 else "small"
    pre = module(SIZES[size], "pre")
    pre.load_state_dict(sd, strict=True)
    pre.eval()
    with h5py.File(f"{d}/mim_in.h5") as f:
        img, mask = f["images"][()], torch.from_numpy(f["mask"][()].astype(bool))
    with torch.no_grad():
        got, _ = pre(normalise(img, [0.5] * 3, [0.5] * 3), mask)
    with h5py.File(logits) as f:
        want = f["logits"][()]
    return compare(want, got.numpy(), f"MIM ({size}, unilm pre-training layout)")


def load_any(path):
    if path.endswith(".safetensors"):
        return {k: torch.from_numpy(v) for k, v in read_safetensors(path)[0].items()}
    sd = torch.load(path)
    return sd.get("model", sd)


def cls(weights, layout, store, logits, mean, std):
    sd = load_any(weights)
    D = sd["cls_token"].shape[-1]
    size = "vitb" if D == 768 else "small"
    s = SIZES[size]
    m = timm_module(s) if layout == "timm" else module(s, "ft")
    m.load_state_dict(sd, strict=True)
    m.eval()
    with h5py.File(store) as f:
        img, lab = f["test/images"][()], f["test/labels"][()]
    with torch.no_grad():
        got = m(normalise(img, [float(x) for x in mean.split(",")], [float(x) for x in std.split(",")])).numpy()
    with h5py.File(logits) as f:
        want, wl = f["logits"][()], f["labels"][()]
    if not np.array_equal(wl, lab):
        print("labels differ from the store's")
        return False
    return compare(want, got, f"classification ({size}, {layout} layout, {img.shape[0]} images)")


def twin_for(cfg, kind, layout, encoder_only):
    m = cfg["model"]
    kw = dict(img_size=m["img_size"], patch_size=m["patch_size"], in_chans=m["in_chans"], embed_dim=m["embed_dim"],
              depth=m["depth"], num_heads=m["num_heads"])
    iv = m["layer_scale_init"] if m["layer_scale_init"] > 0 else None
    hid = int(round(m["mlp_ratio"] * m["embed_dim"]))
    if kind == "beit-pretrain" and layout == "unilm":
        return unilm_pretrain(vocab_size=m["vocab_size"], mlp_hidden=hid, variant=m["arch"], init_values=iv, **kw)
    if kind == "beit-pretrain":
        return TimmBeit(num_classes=0, global_pool="", mlp_ratio=m["mlp_ratio"], init_values=iv,
                        use_abs_pos_emb=m["arch"] == "vit", use_shared_rel_pos_bias=m["arch"] == "beit", **kw)
    return None


def strict(ckpt, export, layout, encoder_only=False):
    with h5py.File(ckpt) as f:
        cfg = yaml.safe_load(f.attrs["config"])
        kind = f.attrs["kind"]
        params = {k: f["params"][k][()] for k in f["params"]}
    sd = load_any(export)
    m = twin_for(cfg, kind, layout, encoder_only)
    if m is None:
        mm = cfg["model"]
        ncls = params["head.bias"].shape[0]
        iv = mm["layer_scale_init"] if mm["layer_scale_init"] > 0 else None
        kw = dict(img_size=mm["img_size"], patch_size=mm["patch_size"], in_chans=mm["in_chans"],
                  embed_dim=mm["embed_dim"], depth=mm["depth"], num_heads=mm["num_heads"])
        pool = cfg["finetune"]["pool"]
        if layout == "unilm":
            m = unilm_finetune(num_classes=ncls, mlp_hidden=int(round(mm["mlp_ratio"] * mm["embed_dim"])),
                               variant=mm["arch"], init_values=iv, pool=pool, **kw)
        else:
            m = TimmBeit(num_classes=ncls, global_pool="avg" if pool == "mean" else "token", mlp_ratio=mm["mlp_ratio"],
                         init_values=iv, use_abs_pos_emb=mm["arch"] == "vit", use_rel_pos_bias=mm["arch"] == "beit",
                         **kw)
    m.load_state_dict(sd, strict=True)
    msd = m.state_dict()
    same = all(np.array_equal(msd[k].numpy(), v) for k, v in params.items() if k in msd)
    missing = [k for k in params if k not in msd]
    expect_missing = {"mask_token", "lm_head.weight", "lm_head.bias"} if encoder_only else set()
    ok = same and set(missing) == expect_missing
    nbuf = sum(1 for k in sd if k.endswith("relative_position_index"))
    print(f"{export}: load_state_dict(strict=True) into the {layout} module of a {kind} checkpoint: {len(sd)} "
          f"entries ({nbuf} index buffers); tensors identical: {same}; left out: {sorted(missing)} -> "
          f"{'ok' if ok else 'FAIL'}")
    return ok


def same(a, b):
    fa, fb = h5py.File(a), h5py.File(b)
    na, nb = sorted(fa["params"]), sorted(fb["params"])
    eq = na == nb and all(fa["params"][k][()].tobytes() == fb["params"][k][()].tobytes()
                          and fa["params"][k].shape == fb["params"][k].shape for k in na)
    ca, cb = fa.attrs["params_checksum"], fb.attrs["params_checksum"]
    print(f"{len(na)} vs {len(nb)} tensors, identical bits: {eq}; params_checksum {ca} vs {cb}")
    return eq and ca == cb


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(*args)
        ok = True
    elif cmd == "strict" and len(args) == 4:
        ok = strict(*args[:3], encoder_only=args[3] == "--encoder-only")
    else:
        ok = {"mim": mim, "cls": cls, "strict": strict, "same": same}[cmd](*args)
    sys.exit(0 if ok else 1)
