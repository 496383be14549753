#!/usr/bin/python3
"""Export a beit checkpoint as a PyTorch state dict (Debian's python3-torch and h5py).

    /usr/bin/python3 tools/export_torch.py CKPT.h5 OUT.pth|OUT.safetensors --layout unilm|timm
        [--encoder-only] [--wrap KEY] [--force]

Reads /params of a beit checkpoint (every tensor checked against its recorded checksum) and
writes them under the names and with the buffers the upstream module's state_dict() has, so
that load_state_dict(strict=True) succeeds:

  --layout unilm   microsoft/unilm beit/: a beit-pretrain checkpoint -> modeling_pretrain's
                   VisionTransformerForMaskedImageModeling (with rel_pos_bias.relative_position_index),
                   a finetune-cls checkpoint -> modeling_finetune's VisionTransformer (with
                   blocks.<i>.attn.relative_position_index). unilm registers these index buffers
                   persistent, so its state dicts carry them.
  --layout timm    timm/models/beit.py Beit: finetune-cls checkpoints (timm no longer saves the
                   per-block index buffers). A beit-pretrain checkpoint needs --encoder-only:
                   timm's Beit has no mask_token or lm_head, so they are left out (named in the
                   output) and the encoder loads into Beit(use_shared_rel_pos_bias=True,
                   use_rel_pos_bias=False, use_abs_pos_emb=False, global_pool='', num_classes=0).

The format follows the name: .safetensors (written here: float32 tensors, int64 index buffers;
__metadata__ holds the checkpoint's kind, step, input normalisation and the model's arguments),
anything else torch.save of the state dict ({KEY: state dict} with --wrap KEY, e.g. model, as
unilm's own checkpoints). The constructor arguments of the upstream module are printed, and so
is the input normalisation the weights expect. The optimizer state is not exported.
Segmentation (finetune-seg) and dVAE checkpoints have no upstream layout here: refused."""
import argparse
import os
import sys
from collections import OrderedDict

import h5py
import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from weights_io import ckpt_checksum, fail, relative_position_index, write_safetensors  # noqa: E402


def attr(f, k):
    v = f.attrs[k]
    return v.decode() if isinstance(v, bytes) else v


def read_checkpoint(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"{path}: cannot open ({e})", 4)
    with f:
        if "format" not in f.attrs or attr(f, "format") != "beit-checkpoint":
            fail(f"{path}: not a beit checkpoint", 4)
        if int(f.attrs.get("complete", 0)) != 1 and int(f.attrs.get("format_version", 0)) >= 2:
            fail(f"{path}: incomplete checkpoint", 4)
        ver = int(f.attrs["format_version"])
        kind, cfg = attr(f, "kind"), yaml.safe_load(attr(f, "config"))
        norm = None
        if "input_mean" in f.attrs:
            norm = (list(map(float, f.attrs["input_mean"])), list(map(float, f.attrs["input_std"])))
        params = OrderedDict()
        for k in sorted(f["params"]):
            ds = f["params"][k]
            v = ds[()].astype(np.float32)
            if ver >= 3:
                rec = np.uint64(ds.attrs["checksum"])
                got = ckpt_checksum(v)
                if rec != got:
                    fail(f"{path}: tensor params/{k}: checksum mismatch (recorded {int(rec):016x}, computed "
                         f"{int(got):016x})", 4)
            if not np.all(np.isfinite(v)):
                fail(f"{path}: tensor params/{k} holds NaN or Inf", 4)
            params[k] = v
        meta = {"kind": kind, "step": int(f.attrs["step"]), "params_checksum": attr(f, "params_checksum")}
    return kind, cfg, norm, params, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--layout", choices=["unilm", "timm"], required=True)
    ap.add_argument("--encoder-only", action="store_true",
                    help="timm layout of a pre-training checkpoint: leave mask_token and lm_head out")
    ap.add_argument("--wrap", metavar="KEY", help=".pth: save {KEY: state dict} instead of the state dict")
    ap.add_argument("--force", action="store_true", help="replace an existing output")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.force:
        fail(f"{a.out} exists (pass --force to replace it)")
    kind, cfg, norm, params, meta = read_checkpoint(a.checkpoint)
    if kind not in ("beit-pretrain", "finetune-cls"):
        fail(f"{a.checkpoint}: kind '{kind}' has no upstream PyTorch layout here (beit-pretrain and finetune-cls "
             f"do)", 5)
    m = cfg["model"]
    g = m["img_size"] // m["patch_size"]
    rel = m["arch"] == "beit"
    L = m["depth"]
    sd = OrderedDict((k, v) for k, v in params.items())
    left_out = []
    index = relative_position_index(g, g)
    init_values = m["layer_scale_init"] if m["layer_scale_init"] > 0 else None
    if kind == "beit-pretrain":
        if a.layout == "timm":
            if not a.encoder_only:
                fail(f"{a.checkpoint}: a pre-training checkpoint: timm's Beit has no mask_token or lm_head; pass "
                     f"--encoder-only to export the encoder without them, or use --layout unilm")
            for k in ("mask_token", "lm_head.weight", "lm_head.bias"):
                left_out.append(k)
                del sd[k]
        if rel:
            sd["rel_pos_bias.relative_position_index"] = index  # persistent in unilm's and timm's module
        if a.layout == "unilm":
            module = (f"modeling_pretrain.VisionTransformerForMaskedImageModeling(img_size={m['img_size']}, "
                      f"patch_size={m['patch_size']}, in_chans={m['in_chans']}, vocab_size={m['vocab_size']}, "
                      f"embed_dim={m['embed_dim']}, depth={L}, num_heads={m['num_heads']}, "
                      f"mlp_ratio={m['mlp_ratio']}, qkv_bias=True, init_values={init_values}, "
                      f"use_abs_pos_emb={not rel}, use_shared_rel_pos_bias={rel}, norm_layer=partial(nn.LayerNorm, "
                      f"eps=1e-6))")
        else:
            module = (f"timm Beit(img_size={m['img_size']}, patch_size={m['patch_size']}, in_chans={m['in_chans']}, "
                      f"num_classes=0, global_pool='', embed_dim={m['embed_dim']}, depth={L}, "
                      f"num_heads={m['num_heads']}, mlp_ratio={m['mlp_ratio']}, qkv_bias=True, "
                      f"init_values={init_values}, use_abs_pos_emb={not rel}, use_rel_pos_bias=False, "
                      f"use_shared_rel_pos_bias={rel})")
    else:
        pool = cfg.get("finetune", {}).get("pool", "mean")
        ncls = params["head.bias"].shape[0]
        if rel and a.layout == "unilm":
            for i in range(L):
                sd[f"blocks.{i}.attn.relative_position_index"] = index
        if a.layout == "unilm":
            module = (f"modeling_finetune.VisionTransformer(img_size={m['img_size']}, patch_size={m['patch_size']}, "
                      f"in_chans={m['in_chans']}, num_classes={ncls}, embed_dim={m['embed_dim']}, depth={L}, "
                      f"num_heads={m['num_heads']}, mlp_ratio={m['mlp_ratio']}, qkv_bias=True, "
                      f"init_values={init_values}, use_abs_pos_emb={not rel}, use_rel_pos_bias={rel}, "
                      f"use_mean_pooling={pool == 'mean'}, norm_layer=partial(nn.LayerNorm, eps=1e-6))")
        else:
            module = (f"timm Beit(img_size={m['img_size']}, patch_size={m['patch_size']}, in_chans={m['in_chans']}, "
                      f"num_classes={ncls}, global_pool={'avg' if pool == 'mean' else 'token'!r}, "
                      f"embed_dim={m['embed_dim']}, depth={L}, num_heads={m['num_heads']}, "
                      f"mlp_ratio={m['mlp_ratio']}, qkv_bias=True, init_values={init_values}, "
                      f"use_abs_pos_emb={not rel}, use_rel_pos_bias={rel}, use_shared_rel_pos_bias=False)")
    nrm = ""
    if norm:
        nrm = f"mean {','.join(f'{x:g}' for x in norm[0])} std {','.join(f'{x:g}' for x in norm[1])}"
    if a.out.endswith(".safetensors"):
        if a.wrap:
            fail("--wrap applies to .pth files (safetensors holds one flat dict of tensors)")
        md = {"format": "pt", "beit_kind": kind, "beit_step": meta["step"], "beit_layout": a.layout,
              "beit_params_checksum": meta["params_checksum"], "module": module}
        if norm:
            md["input_mean"] = ",".join(repr(x) for x in norm[0])
            md["input_std"] = ",".join(repr(x) for x in norm[1])
        write_safetensors(a.out, sd, md)
    else:
        import torch
        tsd = OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in sd.items())
        obj = {a.wrap: tsd} if a.wrap else tsd
        tmp = os.path.join(os.path.dirname(os.path.abspath(a.out)), f".{os.path.basename(a.out)}.tmp.{os.getpid()}")
        torch.save(obj, tmp)
        os.replace(tmp, a.out)
    nbuf = sum(1 for k in sd if k.endswith("relative_position_index"))
    print(f"{a.out}: {len(sd)} entries ({len(sd) - nbuf} tensors of {a.checkpoint}, {nbuf} relative_position_index "
          f"buffers), {a.layout} layout, kind {kind}, step {meta['step']}")
    if left_out:
        print(f"  left out (--encoder-only): {', '.join(left_out)}")
    print(f"  loads with strict=True into {module}")
    print(f"  input normalisation: {nrm or 'none recorded (the data store statistics of the run that wrote it)'}")


if __name__ == "__main__":
    main()
