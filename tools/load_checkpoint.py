#!/usr/bin/python3
"""Load a beit checkpoint into PyTorch (Debian's python3-torch; timm is not needed).

    /usr/bin/python3 tools/load_checkpoint.py CKPT.h5 [--compare OUT.h5] [--save model.pt]

Reads the model's shape from the checkpoint's stored job (attribute `config`), builds the
PyTorch module of tools/torchref (BEiT/ViT for kind beit-pretrain, the dVAE for kind dvae) and
loads /params with load_state_dict(strict=True): every tensor name and shape must match.
--compare FILE: FILE holds `images` [B,C,H,W] (normalised), `mask` [B,Np] and the C forward's
`logits` [M,V] for the masked rows; the PyTorch forward must reproduce them (max abs error
<= 1e-4 * max |logit| + 1e-5; printed). --save writes the state_dict as a .pt file."""
import argparse
import os
import sys

import h5py
import numpy as np
import torch
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchref"))


def attr(f, k):
    v = f.attrs[k]
    return v.decode() if isinstance(v, bytes) else v


def build(kind, cfg):
    if kind == "dvae":
        from dvae import DVAE
        d = cfg["dvae"]
        return DVAE(d["in_chans"], tuple(d["widths"]), d["blocks_per_group"], d["vocab_size"], d["recon"])
    if kind == "beit-pretrain":
        from beit import VisionTransformerForMaskedImageModeling as M
        m = cfg["model"]
        return M(img_size=m["img_size"], patch_size=m["patch_size"], in_chans=m["in_chans"],
                 vocab_size=m["vocab_size"], embed_dim=m["embed_dim"], depth=m["depth"], num_heads=m["num_heads"],
                 mlp_hidden=int(round(m["mlp_ratio"] * m["embed_dim"])), variant=m["arch"],
                 head="pixels" if cfg["pretrain"]["target"] == "pixels" else "tokens",
                 init_values=m["layer_scale_init"] if m["layer_scale_init"] > 0 else None)
    sys.exit(f"checkpoint kind '{kind}' has no PyTorch module here")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--compare")
    ap.add_argument("--save")
    a = ap.parse_args()
    f = h5py.File(a.checkpoint, "r")
    if attr(f, "format") != "beit-checkpoint":
        sys.exit(f"{a.checkpoint}: not a beit checkpoint")
    kind = attr(f, "kind")
    cfg = yaml.safe_load(attr(f, "config"))
    model = build(kind, cfg)
    sd = {k: torch.from_numpy(f["params"][k][()]) for k in f["params"]}
    model.load_state_dict(sd, strict=True)
    model.eval()
    print(f"{a.checkpoint}: {kind}, step {int(f.attrs['step'])}, {len(sd)} tensors, "
          f"{sum(v.numel() for v in sd.values())} parameters loaded with strict=True")
    if a.compare:
        g = h5py.File(a.compare, "r")
        x = torch.from_numpy(g["images"][()])
        mask = torch.from_numpy(g["mask"][()].astype(bool))
        want = g["logits"][()]
        with torch.no_grad():
            got, _ = model(x, mask)
        got = got.numpy()
        if got.shape != want.shape:
            sys.exit(f"logits shape {got.shape} vs C {want.shape}")
        err = float(np.abs(got - want).max())
        scale = float(np.abs(want).max())
        ok = err <= 1e-4 * scale + 1e-5
        print(f"logits [{got.shape[0]}x{got.shape[1]}]: max abs difference {err:.3e} (max |logit| {scale:.3e}) "
              f"-> {'match' if ok else 'MISMATCH'}")
        if not ok:
            sys.exit(1)
    if a.save:
        torch.save(model.state_dict(), a.save)
        print("saved", a.save)


if __name__ == "__main__":
    main()
