#!/usr/bin/python3
"""Import PyTorch BEiT weights as a beit checkpoint (Debian's python3-torch and h5py).

    /usr/bin/python3 tools/import_torch.py WEIGHTS.pth|WEIGHTS.safetensors OUT.h5
        [--num-heads N] [--img-size S] [--layer-scale-init X] [--ln-eps E] [--target tokens|pixels]
        [--mean M,M,M] [--std S,S,S] [--trust-pickle] [--build-dir DIR] [--force]

Takes state dicts with unilm's BEiT names (microsoft/unilm beit/: modeling_pretrain.py for
pre-training checkpoints, modeling_finetune.py for fine-tuned ones) or timm's (timm/models/beit.py
Beit, the same names): plain, or wrapped as {"model": ...}, {"module": ...}, {"state_dict": ...}.

  * lm_head + mask_token -> kind beit-pretrain (shared rel_pos_bias table, final norm; ready for
    beit finetune --init, beit probe --init and beit attn);
  * head -> kind finetune-cls (per-block relative tables, or a shared table copied into every
    block, which computes the same; fc_norm = mean pooling, norm = CLS pooling; ready for
    beit eval, beit attn, and beit finetune --init of a job with as many classes).

The model's shape comes from the tensors: embed_dim (cls_token), patch size and channels
(patch_embed.proj.weight), depth (blocks.*), the patch grid and so img_size (the relative
tables' rows (2g-1)^2+3, or pos_embed's tokens g^2+1), heads (the relative tables' columns),
mlp_ratio (mlp.fc1), LayerScale (gamma_1/gamma_2 present), vocabulary (lm_head), classes (head).
What the shapes cannot tell comes from flags:
  --num-heads N         heads when the model has no relative table (default embed_dim / 64)
  --img-size S          only checked against the tensors (default: derived)
  --layer-scale-init X  model.layer_scale_init stored for gamma models (default 0.1; only a
                        fresh initialisation reads it, the imported gammas are kept)
  --ln-eps E            the LayerNorm eps of the weights: beit's is 1e-6 (unilm's and timm's
                        BEiT); another value is refused
  --target T            lm_head predicts visual tokens (default) or pixels
  --mean, --std         input normalisation the weights expect, per channel, on pixels in [0, 1]
                        (default 0.5,0.5,0.5 and 0.5,0.5,0.5: unilm's and timm's BEiT);
                        recorded in the checkpoint, used by every beit command that feeds it
relative_position_index buffers are not imported: beit rebuilds them from the grid, and an index
that differs from the rebuilt one is an error. Any tensor without a place in beit's model is an
error naming it. The output is a format-3 checkpoint (per-tensor checksums, the job derived from
the shapes in attribute config, params_checksum written by build/beit-ckpt-seal after it loaded
the file as beit does), written to a temporary name and renamed when complete."""
import argparse
import math
import os
import re
import subprocess
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from weights_io import ckpt_checksum, fail, load_state_dict, relative_position_index, seal_program  # noqa: E402

BLOCK_KEYS = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight",
              "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
              "mlp.fc2.bias"]
BLOCK_OPTIONAL = ["gamma_1", "gamma_2", "attn.relative_position_bias_table", "attn.relative_position_index",
                  "attn.k_bias"]
TOP_KEYS = ["cls_token", "mask_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
            "rel_pos_bias.relative_position_bias_table", "rel_pos_bias.relative_position_index", "norm.weight",
            "norm.bias", "fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias", "lm_head.weight",
            "lm_head.bias"]


def floats(s, what):
    try:
        v = [float(x) for x in s.split(",")]
    except ValueError:
        fail(f"{what} {s}: expected comma-separated numbers")
    if not v or len(v) > 4 or not all(math.isfinite(x) for x in v):
        fail(f"{what} {s}: expected 1..4 finite numbers, one per channel")
    return v


def grid_of_table(rows, name):
    """g with (2g-1)^2 + 3 = rows"""
    r = rows - 3
    s = int(round(math.sqrt(r))) if r > 0 else -1
    if s < 1 or s * s != r or s % 2 == 0:
        fail(f"tensor {name}: {rows} rows is not (2g-1)^2 + 3 for a square patch grid g x g", 5)
    return (s + 1) // 2


def shape_of(sd, k):
    return tuple(sd[k].shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights")
    ap.add_argument("out")
    ap.add_argument("--num-heads", type=int)
    ap.add_argument("--img-size", type=int)
    ap.add_argument("--layer-scale-init", type=float, default=0.1)
    ap.add_argument("--ln-eps", type=float, default=1e-6)
    ap.add_argument("--target", choices=["tokens", "pixels"], default="tokens")
    ap.add_argument("--mean", default="0.5,0.5,0.5")
    ap.add_argument("--std", default="0.5,0.5,0.5")
    ap.add_argument("--trust-pickle", action="store_true", help="torch.load without weights_only")
    ap.add_argument("--build-dir", help="beit's build directory (default: build/ of this repository)")
    ap.add_argument("--force", action="store_true", help="replace an existing OUT.h5")
    a = ap.parse_args()
    if os.path.exists(a.out) and not a.force:
        fail(f"{a.out} exists (pass --force to replace it)")
    if a.ln_eps != 1e-6:
        fail(f"--ln-eps {a.ln_eps}: beit's LayerNorms use eps 1e-6 (as unilm's and timm's BEiT); weights trained "
             f"with another eps would not compute the same")
    if not a.layer_scale_init > 0:
        fail(f"--layer-scale-init {a.layer_scale_init}: must be > 0")
    mean, std = floats(a.mean, "--mean"), floats(a.std, "--std")
    if len(mean) != len(std) or min(std) <= 0:
        fail("--mean and --std need the same number of values, std > 0")
    seal = seal_program(a.build_dir)

    sd, where = load_state_dict(a.weights, a.trust_pickle)
    src = f"{a.weights}: {where}"

    # ---- every name must have a place ----
    blocks = {}
    for k in sd:
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", k)
        if m:
            if m.group(2) not in BLOCK_KEYS + BLOCK_OPTIONAL:
                fail(f"{src}: tensor {k} {shape_of(sd, k)} has no place in a beit model (a block holds "
                     f"{', '.join(BLOCK_KEYS + BLOCK_OPTIONAL[:3])})", 5)
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
        elif k not in TOP_KEYS:
            fail(f"{src}: tensor {k} {shape_of(sd, k)} has no place in a beit model (beit's BEiT has "
                 f"{', '.join(TOP_KEYS)} and blocks.<i>.*)", 5)
    has = lambda k: k in sd  # noqa: E731
    for need in ("cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias"):
        if not has(need):
            fail(f"{src}: no tensor {need}: not a BEiT state dict", 5)
    L = len(blocks)
    if L == 0 or sorted(blocks) != list(range(L)):
        fail(f"{src}: blocks {sorted(blocks)}: expected blocks 0..{L - 1} without gaps", 5)

    # ---- shapes ----
    D = shape_of(sd, "cls_token")[-1]
    if shape_of(sd, "cls_token") != (1, 1, D):
        fail(f"{src}: cls_token has shape {shape_of(sd, 'cls_token')}, expected [1, 1, D]", 5)
    pw = shape_of(sd, "patch_embed.proj.weight")
    if len(pw) != 4 or pw[0] != D or pw[2] != pw[3]:
        fail(f"{src}: patch_embed.proj.weight has shape {pw}, expected [{D}, C, P, P]", 5)
    C, P = pw[1], pw[2]
    H = shape_of(sd, "blocks.0.mlp.fc1.weight")[0] if "mlp.fc1.weight" in blocks[0] else 0
    shared = has("rel_pos_bias.relative_position_bias_table")
    per_block = [("attn.relative_position_bias_table" in blocks[i]) for i in range(L)]
    if any(per_block) and not all(per_block):
        fail(f"{src}: only blocks {[i for i in range(L) if per_block[i]]} have a relative position table "
             f"(beit needs every block to have one, or none)", 5)
    per_block = all(per_block)
    abs_pos = has("pos_embed")
    if (shared or per_block) and abs_pos:
        fail(f"{src}: both absolute positions (pos_embed) and relative position tables: beit's models use one or "
             f"the other (model.arch beit or vit)", 5)
    if shared and per_block:
        fail(f"{src}: both a shared relative position table (rel_pos_bias) and per-block tables: beit's models "
             f"have one kind", 5)
    if not (shared or per_block or abs_pos):
        fail(f"{src}: no position information (pos_embed or relative_position_bias_table): not a BEiT/ViT beit "
             f"can run", 5)
    table = "rel_pos_bias.relative_position_bias_table" if shared else "blocks.0.attn.relative_position_bias_table"
    if shared or per_block:
        rows, NH = shape_of(sd, table)
        g = grid_of_table(rows, table)
        if a.num_heads is not None and a.num_heads != NH:
            fail(f"--num-heads {a.num_heads}: the relative position table {table} has {NH} heads")
    else:
        T = shape_of(sd, "pos_embed")[1]
        g = int(round(math.sqrt(T - 1)))
        if shape_of(sd, "pos_embed") != (1, g * g + 1, D):
            fail(f"{src}: pos_embed has shape {shape_of(sd, 'pos_embed')}, expected [1, g*g + 1, {D}] (a square "
                 f"grid)", 5)
        NH = a.num_heads if a.num_heads is not None else D // 64
    if NH < 1 or D % NH:
        fail(f"{D} channels do not split into {NH} heads: pass --num-heads")
    S = g * P
    if a.img_size is not None and a.img_size != S:
        fail(f"--img-size {a.img_size}: the tensors give a {g}x{g} patch grid of {P}-pixel patches = {S}")
    if len(mean) != C:
        fail(f"--mean/--std give {len(mean)} channels, the patch embedding takes {C}")

    gamma = ["gamma_1" in blocks[i] for i in range(L)]
    if any(gamma) and not all(gamma):
        fail(f"{src}: only some blocks have LayerScale (gamma_1/gamma_2); beit needs all or none", 5)
    gamma = all(gamma)

    is_pre = has("lm_head.weight") or has("mask_token")
    is_cls = has("head.weight")
    if is_pre and is_cls:
        fail(f"{src}: both a pre-training head (lm_head/mask_token) and a classifier (head)", 5)
    if not is_pre and not is_cls:
        fail(f"{src}: neither lm_head + mask_token (pre-training) nor head (classification): beit needs one to "
             f"know which model this is", 5)
    want = {"cls_token": (1, 1, D), "patch_embed.proj.weight": (D, C, P, P), "patch_embed.proj.bias": (D,)}
    for i in range(L):
        b = f"blocks.{i}."
        want.update({b + "norm1.weight": (D,), b + "norm1.bias": (D,), b + "attn.qkv.weight": (3 * D, D),
                     b + "attn.q_bias": (D,), b + "attn.v_bias": (D,), b + "attn.proj.weight": (D, D),
                     b + "attn.proj.bias": (D,), b + "norm2.weight": (D,), b + "norm2.bias": (D,),
                     b + "mlp.fc1.weight": (H, D), b + "mlp.fc1.bias": (H,), b + "mlp.fc2.weight": (D, H),
                     b + "mlp.fc2.bias": (D,)})
        if gamma:
            want.update({b + "gamma_1": (D,), b + "gamma_2": (D,)})
    rows = (2 * g - 1) ** 2 + 3
    if abs_pos:
        want["pos_embed"] = (1, g * g + 1, D)
    kind = "beit-pretrain" if is_pre else "finetune-cls"
    cfg = {"task": "pretrain" if is_pre else "finetune"}
    if is_pre:
        if per_block:
            fail(f"{src}: a pre-training state dict with per-block relative tables; beit's pre-training model "
                 f"shares one table (rel_pos_bias)", 5)
        if not has("lm_head.weight") or not has("mask_token"):
            fail(f"{src}: a pre-training state dict needs both lm_head and mask_token (found only "
                 f"{'lm_head' if has('lm_head.weight') else 'mask_token'})", 5)
        V = shape_of(sd, "lm_head.weight")[0]
        if a.target == "pixels" and V != P * P * C:
            fail(f"--target pixels: lm_head has {V} outputs, a {P}x{P}x{C} patch has {P * P * C} values")
        want.update({"mask_token": (1, 1, D), "norm.weight": (D,), "norm.bias": (D,), "lm_head.weight": (V, D),
                     "lm_head.bias": (V,)})
        if shared:
            want["rel_pos_bias.relative_position_bias_table"] = (rows, NH)
        for k in ("fc_norm.weight", "head.weight"):
            if has(k):
                fail(f"{src}: tensor {k} in a pre-training state dict: beit's pre-training model has no place "
                     f"for it", 5)
    else:
        NC = shape_of(sd, "head.weight")[0]
        want.update({"head.weight": (NC, D), "head.bias": (NC,)})
        if NC < 2:
            fail(f"{src}: head has {NC} outputs (beit's classifier needs at least 2 classes)", 5)
        if has("fc_norm.weight") and has("norm.weight"):
            fail(f"{src}: both fc_norm and norm: beit pools either the mean of the patch tokens (fc_norm) or the "
                 f"CLS token (norm)", 5)
        pool = "mean" if has("fc_norm.weight") else "cls"
        if not has("fc_norm.weight") and not has("norm.weight"):
            fail(f"{src}: no fc_norm (mean pooling) or norm (CLS pooling) before the head", 5)
        want.update({"fc_norm.weight": (D,), "fc_norm.bias": (D,)} if pool == "mean"
                    else {"norm.weight": (D,), "norm.bias": (D,)})
        if shared or per_block:
            for i in range(L):
                want[f"blocks.{i}.attn.relative_position_bias_table"] = (rows, NH)
        cfg["finetune"] = {"task": "classification", "pool": pool}
        cfg["data"] = {"num_classes": NC}

    # ---- the buffers: rebuilt, compared ----
    idx = relative_position_index(g, g)
    index_names = [k for k in sd if k.endswith("relative_position_index")]
    for k in index_names:
        got = sd[k]
        if got.shape != idx.shape or not np.array_equal(got.astype(np.int64), idx):
            fail(f"{src}: buffer {k} {got.shape} differs from the relative position index beit builds for a {g}x{g} "
                 f"grid {idx.shape}: these tables would be read in another order", 5)
    for i in range(L):
        k = f"blocks.{i}.attn.k_bias"
        if has(k) and (shape_of(sd, k) != (D,) or np.any(sd[k] != 0)):
            fail(f"{src}: {k} is not zero: BEiT's key projection has no bias (timm keeps a zero buffer)", 5)

    # ---- the tensors of beit's model ----
    out = {}
    for k, shp in want.items():
        srck = k
        if k.endswith("attn.relative_position_bias_table") and shared:
            srck = "rel_pos_bias.relative_position_bias_table"  # the shared table into every block
        if srck not in sd:
            fail(f"{src}: no tensor {srck}: beit's {kind} model needs it {list(shp)}", 5)
        if tuple(sd[srck].shape) != shp:
            fail(f"{src}: tensor {srck} has shape {list(sd[srck].shape)}, beit's model (derived from the other "
                 f"tensors) expects {list(shp)}", 5)
        v = sd[srck]
        if not np.issubdtype(v.dtype, np.floating):
            fail(f"{src}: tensor {srck} is {v.dtype}, expected floating point", 5)
        v = v.astype(np.float32)
        if not np.all(np.isfinite(v)):
            fail(f"{src}: tensor {srck} holds NaN or Inf", 5)
        out[k] = v
    used = set(want) | set(index_names) | {f"blocks.{i}.attn.k_bias" for i in range(L)}
    if shared and not is_pre:
        used.add("rel_pos_bias.relative_position_bias_table")
    left = [k for k in sd if k not in used]
    if left:
        fail(f"{src}: tensor {left[0]} {shape_of(sd, left[0])} has no place in beit's {kind} model of these "
             f"shapes" + (f" (and {len(left) - 1} more)" if len(left) > 1 else ""), 5)

    # ---- the job stored with the weights ----
    mlp_ratio = H / D
    if round(mlp_ratio * D) != H:
        fail(f"mlp hidden width {H} is not representable as model.mlp_ratio * {D}")
    model = {"arch": "vit" if abs_pos else "beit", "img_size": S, "patch_size": P, "in_chans": C, "embed_dim": D,
             "depth": L, "num_heads": NH, "mlp_ratio": repr(mlp_ratio),
             "layer_scale_init": repr(a.layer_scale_init) if gamma else "0.0"}
    if is_pre:
        model["vocab_size"] = V
        cfg["pretrain"] = {"target": a.target}
    lines = [f"# imported by tools/import_torch.py from {os.path.basename(a.weights)}: model.* derived from the "
             f"tensor shapes", f"task: {cfg['task']}", "seed: 0", "model:"]
    lines += [f"  {k}: {v}" for k, v in model.items()]
    for sec in ("pretrain", "finetune", "data"):
        if sec in cfg:
            lines.append(f"{sec}:")
            lines += [f"  {k}: {v}" for k, v in cfg[sec].items()]
    config = "\n".join(lines) + "\n"

    tmp = os.path.join(os.path.dirname(os.path.abspath(a.out)), f".{os.path.basename(a.out)}.tmp.{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = "beit-checkpoint"
            f.attrs["format_version"] = np.int64(3)
            f.attrs["kind"] = kind
            f.attrs["step"] = np.int64(0)
            f.attrs["seed"] = np.int64(0)
            f.attrs["nranks"] = np.int64(1)
            f.attrs["params_checksum"] = "(written by beit-ckpt-seal)"
            f.attrs["config"] = config
            f.attrs["created_by"] = f"tools/import_torch.py from {os.path.abspath(a.weights)} ({where})"
            f.attrs["input_mean"] = np.array(mean, dtype=np.float64)
            f.attrs["input_std"] = np.array(std, dtype=np.float64)
            g_ = f.create_group("params")
            for k, v in out.items():
                ds = g_.create_dataset(k, data=v, dtype="<f4")
                ds.attrs["checksum"] = ckpt_checksum(v)
            f.attrs["complete"] = np.int64(1)
        r = subprocess.run([seal, tmp], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"beit refused the imported checkpoint (exit {r.returncode}): {r.stderr.strip()}", r.returncode)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    nparam = sum(v.size for v in out.values())
    print(f"{a.out}: {kind}, {len(out)} tensors, {nparam} parameters from {src}")
    print(f"  model: arch {model['arch']}, {S}x{S}x{C}, patch {P}, embed_dim {D}, depth {L}, {NH} heads, mlp_ratio "
          f"{mlp_ratio:g}, LayerScale {'yes' if gamma else 'no'}"
          + (f", vocab {V}" if is_pre else f", {NC} classes, {cfg['finetune']['pool']} pooling")
          + (", the shared relative table copied into every block" if shared and not is_pre else ""))
    print(f"  input normalisation: mean {','.join(f'{x:g}' for x in mean)} std {','.join(f'{x:g}' for x in std)}")
    print(f"  skipped {len(index_names)} relative_position_index buffers (identical to beit's)")
    print("  " + r.stdout.strip())
    sets = " ".join(f"--set model.{k}={v}" for k, v in model.items() if k != "vocab_size")
    print(f"  a fine-tuning job for it: {sets}")


if __name__ == "__main__":
    main()
