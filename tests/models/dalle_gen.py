"""Helper of dalle.sh: random DALL-E encoders (tools/torchref/dalle_encoder.py) and their
reference outputs.

    dalle_gen.py model OUT_DIR N_HID N_BLK VOCAB S B SEED {pkl|sd}
        OUT_DIR/encoder.pkl  the twin with random weights (biases too), pickled as
                             torch.save(module) with its classes registered under
                             dall_e.encoder / dall_e.utils -- the names the released
                             encoder.pkl refers to (pkl) -- or its state dict (sd)
        OUT_DIR/x.raw        float32 [B,3,S,S]: smooth random images plus noise, on k/255
        OUT_DIR/logits.npy   the twin's logits [B,V,h,h] of map_pixels(x)
    dalle_gen.py compare OUT_DIR LOGITS.raw TOKENS.raw LOGIT_TOL
        the C logits within LOGIT_TOL * max|logit| (LOGIT_TOL < 0: skip) and tokens = the
        twin's argmax except at near-ties (top two logits within 1e-5 relative), which are
        counted and printed; exit 1 on any other difference
"""
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "torchref"))
import dalle_encoder as twin  # noqa: E402


def register_as_dall_e():
    """Make pickle record the twin's classes as dall_e.encoder.* / dall_e.utils.Conv2d."""
    pkg, enc, utl = (types.ModuleType(n) for n in ("dall_e", "dall_e.encoder", "dall_e.utils"))
    pkg.__path__ = []
    for cls, mod in ((twin.Encoder, enc), (twin.EncoderBlock, enc), (twin.Conv2d, utl)):
        cls.__module__ = mod.__name__
        setattr(mod, cls.__name__, cls)
    pkg.encoder, pkg.utils = enc, utl
    sys.modules.update({"dall_e": pkg, "dall_e.encoder": enc, "dall_e.utils": utl})


def model(out, n_hid, n_blk, vocab, S, B, seed, fmt):
    torch.manual_seed(seed)
    enc = twin.Encoder(n_hid=n_hid, n_blk_per_group=n_blk, vocab_size=vocab)
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith(".b"):
                p.normal_(std=0.05)
    enc.eval()
    g = torch.Generator().manual_seed(seed + 1)
    base = torch.rand(B, 3, 8, 8, generator=g)
    x = F.interpolate(base, size=(S, S), mode="bilinear", align_corners=False)
    x = (x + 0.15 * torch.randn(B, 3, S, S, generator=g)).clamp(0, 1)
    x = torch.round(x * 255) / 255
    with torch.no_grad():
        logits = enc(twin.map_pixels(x))
    if fmt == "pkl":
        register_as_dall_e()
        torch.save(enc, os.path.join(out, "encoder.pkl"))
    else:
        torch.save(enc.state_dict(), os.path.join(out, "encoder.pkl"))
    x.numpy().astype("<f4").tofile(os.path.join(out, "x.raw"))
    np.save(os.path.join(out, "logits.npy"), logits.numpy())
    print(f"twin: {sum(p.numel() for p in enc.parameters())} parameters, logits {tuple(logits.shape)}")


def compare(out, logits_raw, tokens_raw, tol):
    ref = np.load(os.path.join(out, "logits.npy"))
    B, V, h, w = ref.shape
    got = np.fromfile(logits_raw, dtype="<f4").reshape(B, V, h, w)
    tok = np.fromfile(tokens_raw, dtype="<i4").reshape(B, h, w)
    scale = float(np.abs(ref).max())
    err = float(np.abs(got - ref).max())
    ok = True
    if tol >= 0 and not err <= tol * scale:
        print(f"# logits: max abs difference {err:.3g} > {tol} * max|logit| {scale:.3g}")
        ok = False
    top2 = np.sort(ref, axis=1)[:, -2:]  # [B,2,h,w]
    gap = top2[:, 1] - top2[:, 0]
    near = gap <= 1e-5 * np.maximum(np.abs(top2[:, 1]), np.abs(top2[:, 0]))
    want = ref.argmax(axis=1)
    diff = tok != want
    bad = int((diff & ~near).sum())
    print(f"positions {tok.size}, tokens equal {int((~diff).sum())}, near-ties {int(near.sum())} "
          f"(of which differ {int((diff & near).sum())}), other differences {bad}; logits max abs difference "
          f"{err:.3g} (max|logit| {scale:.3g})")
    if bad:
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "model":
        a = sys.argv[2:]
        model(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]), a[7])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    else:
        sys.exit(__doc__)
