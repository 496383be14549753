"""Train the fine-tuning recipe of a small from-scratch BEiT in PyTorch (tools/torchref/beit.py) on
the first 5000 Fashion-MNIST training images and report the test accuracy: a cross-check that
`beit finetune` learns like PyTorch does with the same model, init, AdamW, schedule and data.

    /usr/bin/python3 tools/torchref/finetune_crosscheck.py      # needs data/fmnist.h5
    beit finetune -c jobs/fmnist/finetune-scratch.yaml --init none --out /tmp/x --set data.subset=5000 \\
        --set train.epochs=3 --set train.global_batch=64 --set model.embed_dim=64 --set model.depth=4 \\
        --set model.num_heads=4 --set optim.lr=1e-3 --set aug.enable=false --set finetune.label_smoothing=0 \\
        --set optim.warmup_steps=23 --set model.drop_path=0

Measured 2026-11-27: PyTorch 43.6% test top-1, beit 44.3% (different random draws; same recipe).
"""
import sys, math, h5py, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, __import__("os").path.dirname(__file__))
import beit
torch.manual_seed(0); torch.set_num_threads(1)
f = h5py.File(sys.argv[1] if len(sys.argv) > 1 else "data/fmnist.h5")
mean, std = float(f.attrs["mean"][0]), float(f.attrs["std"][0])
X = torch.tensor(f["train/images"][:5000], dtype=torch.float32).permute(0, 3, 1, 2) / 255.
Y = torch.tensor(f["train/labels"][:5000].astype(np.int64))
Xt = torch.tensor(f["test/images"][()], dtype=torch.float32).permute(0, 3, 1, 2) / 255.
Yt = torch.tensor(f["test/labels"][()].astype(np.int64))
X = (X - mean) / std; Xt = (Xt - mean) / std
m = beit.VisionTransformerFinetune(28, 4, 1, 10, 64, 4, 4, 256, variant="beit", init_values=0.1, pool="mean")
for n, p in m.named_parameters():
    if p.dim() >= 2 and "relative_position" not in n: nn.init.trunc_normal_(p, std=.02)
    elif n.endswith("bias") : nn.init.zeros_(p)
with torch.no_grad():
    m.head.weight.mul_(0.001)
    for i, b in enumerate(m.blocks):
        b.attn.proj.weight.div_(math.sqrt(2 * (i + 1))); b.mlp.fc2.weight.div_(math.sqrt(2 * (i + 1)))
dec = [p for n, p in m.named_parameters() if not (p.dim() == 1 or n.endswith(".bias") or n in ("cls_token", "pos_embed"))]
nod = [p for n, p in m.named_parameters() if (p.dim() == 1 or n.endswith(".bias") or n in ("cls_token", "pos_embed"))]
opt = torch.optim.AdamW([{"params": dec, "weight_decay": 0.05}, {"params": nod, "weight_decay": 0.}], lr=1e-3)
G, steps, warm = 64, 234, 23
step = 0
for ep in range(3):
    perm = torch.randperm(5000)
    for s in range(5000 // G):
        lr = 1e-3 * step / warm if step < warm else 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * (step - warm) / (steps - warm)))
        for g in opt.param_groups: g["lr"] = lr
        idx = perm[s * G:(s + 1) * G]
        loss = F.cross_entropy(m(X[idx]), Y[idx])
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 80 == 0: print(step, float(loss))
with torch.no_grad():
    acc = sum((m(Xt[i:i + 500]).argmax(1) == Yt[i:i + 500]).sum().item() for i in range(0, 10000, 500)) / 10000
print("torch test acc", acc)
