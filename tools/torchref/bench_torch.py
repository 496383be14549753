#!/usr/bin/python3
"""PyTorch side of tools/bench: the same models and steps as `beit bench`, on CPU,
one process, torch.set_num_threads(--threads). Debian's torch (1.13) runs its matrix products
on the system OpenBLAS (libblas.so.3) and its convolutions on its bundled oneDNN: what a
PyTorch user of this machine gets. The driver sets OPENBLAS_NUM_THREADS / OMP_NUM_THREADS to
the same count before starting this script.

    bench_torch.py mm --threads T [--n 2048] [--reps 5]
    bench_torch.py pretrain|dvae|encode --config RESOLVED.yaml --threads T --batch B --steps N

--config is a fully resolved job (`beit config -c JOB --set ...` output): the model, masking
and optimizer settings are read from it, so both sides build the same model.

  pretrain: tools/torchref/beit.py VisionTransformerForMaskedImageModeling (the twin of
            src/models/vit.c), per step: B normalised-range random images, unilm's blockwise
            masks (tests/fixtures/gen_masking.py's transcription of MaskingGenerator, driven by
            Python's random), random token targets for the masked patches, drop-path scales
            (rate drop_path * l / (L-1) per block, one draw per sample and block), forward,
            cross-entropy on the masked rows (+ masked-token accuracy, as the C task), backward,
            clip_grad_norm_(optim.clip_grad), AdamW with the reference's decay groups
            (param_rules: no decay for 1-D tensors, biases, pos_embed, cls_token).
  dvae:     tools/torchref/dvae.py DVAE, per step: B random images in [0,1], Gumbel noise,
            losses(x, g, tau = temp_start, kl_weight), backward, (clipping if optim.clip_grad
            > 0), AdamW (decay on conv weights, none on biases: the C table's rule).
  encode:   DVAE.tokens(x) (encoder forward + argmax, no grad) on the same B images each call.
  mm:       torch.mm on n x n float32 (one untimed call, then --reps timed).

The step clock covers the whole step, batch generation included (the C step's prepare()
generates its synthetic batch too). Memory: VmRSS after initialisation (model and optimizer
built), with VmHWM reset there (/proc/self/clear_refs), VmRSS after each step and VmHWM at the
end. Note that torch allocates gradients and AdamW's moments lazily in the first step, while
the C side allocates them before its loop: the growth figures count them on this side only;
the absolute peaks (hwm_kb) compare the footprints.

Prints one JSON object on stdout.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))

from beit import VisionTransformerForMaskedImageModeling, param_rules  # noqa: E402
from dvae import DVAE  # noqa: E402


def read_status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out["VmRSS"], out["VmHWM"]


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return 1
    except OSError:
        return 0


def env_info(threads):
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "requested_threads": threads,
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
            "mkldnn": torch.backends.mkldnn.is_available()}


def numbers(x):
    """YAML 1.1 (PyYAML) reads 1e-08 as a string: turn number-like strings back into floats"""
    if isinstance(x, dict):
        return {k: numbers(v) for k, v in x.items()}
    if isinstance(x, list):
        return [numbers(v) for v in x]
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def adamw_groups(named, decay_of):
    dec = [p for n, p in named if decay_of(n, p)]
    nod = [p for n, p in named if not decay_of(n, p)]
    return dec, nod


def run_steps(step, steps):
    """init is done: reset the high-water mark, then time each step"""
    hwm_reset = reset_hwm()
    rss0, _ = read_status()
    secs, rss = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        secs.append(time.perf_counter() - t0)
        rss.append(read_status()[0])
    _, hwm = read_status()
    return {"step_s": secs, "rss_kb": rss, "rss_init_kb": rss0, "hwm_kb": hwm, "hwm_reset": hwm_reset}


def bench_pretrain(cfg, a):
    from gen_masking import MaskingGenerator
    m, mk, o = cfg["model"], cfg["mask"], cfg["optim"]
    S, P, C, D, L = m["img_size"], m["patch_size"], m["in_chans"], m["embed_dim"], m["depth"]
    V, NH, H = m["vocab_size"], m["num_heads"], int(round(m["mlp_ratio"] * m["embed_dim"]))
    variant = "beit" if m["arch"] == "beit" else "vit"
    if cfg["pretrain"]["target"] != "tokens":
        sys.exit("bench_torch: only pretrain.target: tokens is benchmarked")
    torch.manual_seed(a.seed)
    model = VisionTransformerForMaskedImageModeling(
        img_size=S, patch_size=P, in_chans=C, vocab_size=V, embed_dim=D, depth=L, num_heads=NH, mlp_hidden=H,
        variant=variant, head="tokens", init_values=m["layer_scale_init"], init_std=m["init_std"])
    model.train()
    decay = {name: d for name, _, d, _ in param_rules(model)}
    dec, nod = adamw_groups(list(model.named_parameters()), lambda n, p: decay[n])
    opt = torch.optim.AdamW([{"params": dec, "weight_decay": o["weight_decay"]}, {"params": nod, "weight_decay": 0.0}],
                            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    g = S // P
    if mk["type"] != "block":
        sys.exit("bench_torch: only mask.type: block is benchmarked")
    gen = MaskingGenerator((g, g), mk["num_patches"], mk["min_patches"], mk["max_patches"] or None,
                           mk["min_aspect"], mk["max_aspect"] or None, random=random.Random(a.seed))
    B, dpr, clip = a.batch, m["drop_path"], o["clip_grad"]
    masked = []

    def step():
        opt.zero_grad()
        x = torch.randn(B, C, S, S)
        mask = torch.from_numpy(np.stack([gen().reshape(-1) for _ in range(B)])).bool()
        M = int(mask.sum())
        tgt = torch.randint(0, V, (M,))
        dp = None
        if dpr > 0:
            dp = torch.empty(L, 2, B)  # per block: the attention and the MLP branch
            for l in range(L):
                p = dpr * l / (L - 1) if L > 1 else 0.0
                dp[l] = (torch.rand(2, B) >= p).float() / (1.0 - p)
        logits, _ = model(x, mask, droppath_scales=dp)
        loss = F.cross_entropy(logits, tgt)
        with torch.no_grad():
            (logits.argmax(-1) == tgt).sum().item()
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        masked.append(M)

    r = run_steps(step, a.steps)
    r["masked_per_step"] = masked
    r["params"] = sum(p.numel() for p in model.parameters())
    return r


def dvae_model(cfg, a):
    dv = cfg["dvae"]
    torch.manual_seed(a.seed)
    return DVAE(in_chans=dv["in_chans"], widths=tuple(dv["widths"]), blocks=dv["blocks_per_group"],
                vocab=dv["vocab_size"], recon=dv["recon"])


def bench_dvae(cfg, a):
    dv, o = cfg["dvae"], cfg["optim"]
    model = dvae_model(cfg, a)
    model.train()
    dec, nod = adamw_groups(list(model.named_parameters()), lambda n, p: not n.endswith(".bias"))
    opt = torch.optim.AdamW([{"params": dec, "weight_decay": o["weight_decay"]}, {"params": nod, "weight_decay": 0.0}],
                            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    B, C, S, V = a.batch, dv["in_chans"], dv["image_size"], dv["vocab_size"]
    h = S >> (len(dv["widths"]) - 1)
    tau, klw, clip = dv["temp_start"], dv["kl_weight"], o["clip_grad"]

    def step():
        opt.zero_grad()
        x = torch.rand(B, C, S, S)
        u = torch.rand(B, V, h, h) * (1 - 2 ** -24) + 2 ** -25
        gumbel = -torch.log(-torch.log(u))
        loss = model.losses(x, gumbel, tau, klw)[0]
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()

    r = run_steps(step, a.steps)
    r["params"] = sum(p.numel() for p in model.parameters())
    return r


def bench_encode(cfg, a):
    dv = cfg["dvae"]
    model = dvae_model(cfg, a)
    model.eval()
    x = torch.rand(a.batch, dv["in_chans"], dv["image_size"], dv["image_size"])
    out = []

    def step():
        out.append(int(model.tokens(x).sum()))

    r = run_steps(step, a.steps)
    r["token_sum"] = out[-1]
    return r


def bench_mm(a):
    n = a.n
    x, y = torch.rand(n, n) - 0.5, torch.rand(n, n) - 0.5
    torch.mm(x, y)
    gf = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        torch.mm(x, y)
        gf.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"n": n, "gflops": gf}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["pretrain", "dvae", "encode", "mm"])
    ap.add_argument("--config", help="resolved job YAML (beit config -c JOB ...)")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.what == "mm":
        r = bench_mm(a)
    else:
        if not a.config:
            ap.error("--config is required for " + a.what)
        with open(a.config) as f:
            cfg = numbers(yaml.safe_load(f))
        r = {"pretrain": bench_pretrain, "dvae": bench_dvae, "encode": bench_encode}[a.what](cfg, a)
        r["batch"] = a.batch
    r["bench"] = a.what
    r["env"] = env_info(a.threads)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
