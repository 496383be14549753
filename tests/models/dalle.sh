#!/usr/bin/env bash
# DALL-E's encoder (include/beit/dalle.h) against its PyTorch twin (tools/torchref/dalle_encoder.py):
#   - tools/import_dalle.py converts a pickled encoder (classes under dall_e.*, unpickled
#     without that package) and a plain state dict into a dalle-encoder checkpoint whose
#     per-tensor checksums beit verifies (beit data info --verify) and which it describes
#   - small configs (n_hid 16): the C logits = the twin's within 1e-4 relative, tokens equal;
#     36x36 input (pooling 36 -> 18 -> 9 -> 4, floor mode)
#   - max-pool 2x2 on odd and tiny sizes = torch's MaxPool2d(2)
#   - official shapes (n_hid 256, 2 blocks per group, V 8192) at 112x112, 4 images: tokens =
#     the twin's argmax except near-ties (top two logits within 1e-5 relative), counted
#   - PIL's Lanczos resize: image_resample_lanczos = Image.resize(LANCZOS, box) byte for byte,
#     crop_apply_resize(RESIZE_LANCZOS) = those bytes / 255 (flipped when asked)
#   - bad inputs: a file that is not DALL-E's encoder, a damaged tensor
# usage: dalle.sh DALLE_PROBE SRCDIR BEIT
PROBE=$1
SRC=$2
BEIT=$3
. "$SRC/tests/tap.sh"
GEN="$PY $SRC/tests/models/dalle_gen.py"
IMP="$PY $SRC/tools/import_dalle.py"

# ---- small config, pickled module ---------------------------------------------------------------
mkdir -p "$T/s"
run $GEN model "$T/s" 16 2 64 32 3 1 pkl
check "twin: a random n_hid 16 encoder pickled with its classes as dall_e.encoder/dall_e.utils" \
  bash -c "[ $rc = 0 ] && grep -q 'dall_e.encoder' '$T/s/encoder.pkl' -a"
run $IMP "$T/s/encoder.pkl" "$T/s/ck.h5" --image-size 32
check "import_dalle.py converts the pickle without the dall_e package ($(head -c 160 "$T/out"))" \
  bash -c "[ $rc = 0 ] && [ -f '$T/s/ck.h5' ] && ! $PY -c 'import dall_e' 2>/dev/null"
run $BEIT data info --verify "$T/s/ck.h5"
check "beit data info --verify: kind dalle-encoder, the dalle dims, every checksum verified" \
  bash -c "[ $rc = 0 ] && grep -q 'kind *dalle-encoder' '$T/out' && grep -q 'dalle.n_hid = 16' '$T/out' \
           && grep -q 'dalle.image_size = 32' '$T/out' && grep -q 'blocks.group_2.block_1.id_path.w' '$T/out'"
run "$PROBE" encode "$T/s/ck.h5" "$T/s/x.raw" 3 "$T/s/l.raw" "$T/s/t.raw"
SUM=$($PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['params_checksum'])" "$T/s/ck.h5")
check "C params_checksum of the loaded table = the converter's ($SUM)" \
  bash -c "[ $rc = 0 ] && grep -q 'params_checksum $SUM' '$T/out'"
run $GEN compare "$T/s" "$T/s/l.raw" "$T/s/t.raw" 1e-4
check "n_hid 16, 32x32: logits within 1e-4 relative and tokens = the twin's ($(cat "$T/out"))" [ "$rc" = 0 ]

# ---- small config, state dict, 36x36 (odd pooled sides) ---------------------------------------
mkdir -p "$T/o"
run $GEN model "$T/o" 16 1 64 36 2 2 sd
run $IMP "$T/o/encoder.pkl" "$T/o/ck.h5" --image-size 36
check "import_dalle.py converts a state dict (1 block per group)" [ "$rc" = 0 ]
run "$PROBE" encode "$T/o/ck.h5" "$T/o/x.raw" 2 "$T/o/l.raw" "$T/o/t.raw"
run $GEN compare "$T/o" "$T/o/l.raw" "$T/o/t.raw" 1e-4
check "n_hid 16, 36x36 (36 -> 18 -> 9 -> 4): logits and tokens = the twin's ($(cat "$T/out"))" [ "$rc" = 0 ]

# ---- max-pool on finite odd sizes ---------------------------------------------------------------
check "maxpool2d 2x2 = torch MaxPool2d(2) on 7x5, 6x9, 2x2, 3x3 and 13x13 maps (floor mode)" $PY - "$PROBE" "$T" <<'PY'
import sys, subprocess, numpy as np, torch
probe, T = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
for (B, C, H, W) in [(2, 3, 7, 5), (1, 2, 6, 9), (3, 1, 2, 2), (1, 4, 3, 3), (2, 2, 13, 13)]:
    x = rng.standard_normal((B, C, H, W)).astype("<f4")
    x[0, 0, 0, :2] = 1.5  # a tie inside a window
    x.tofile(f"{T}/p.raw")
    subprocess.run([probe, "pool", str(B), str(C), str(H), str(W), f"{T}/p.raw", f"{T}/q.raw"], check=True)
    want = torch.nn.MaxPool2d(kernel_size=2)(torch.from_numpy(x)).numpy()
    got = np.fromfile(f"{T}/q.raw", dtype="<f4").reshape(want.shape)
    assert np.array_equal(got, want), (B, C, H, W)
PY

# ---- PIL's Lanczos ---------------------------------------------------------------------------
check "image_resample_lanczos = PIL Image.resize(LANCZOS, box) byte for byte; crop_apply_resize = bytes/255" \
  $PY - "$PROBE" "$T" <<'PY'
import sys, subprocess, numpy as np
from PIL import Image
probe, T = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(1)
LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
cases = 0
for (H, W, C, S) in [(150, 200, 3, 112), (50, 40, 3, 112), (224, 224, 3, 112), (64, 64, 1, 28), (112, 112, 3, 112)]:
    m = 3
    base = rng.integers(0, 256, (m, H // 4 + 1, W // 4 + 1, C)).astype(np.uint8)
    im = np.stack([np.array(Image.fromarray(b.squeeze(-1) if C == 1 else b).resize((W, H), Image.BILINEAR))
                   .reshape(H, W, C) for b in base])
    im = np.clip(im.astype(int) + rng.integers(-20, 21, im.shape), 0, 255).astype(np.uint8)
    im.tofile(f"{T}/im.raw")
    boxes = [(0, 0.0, 0.0, float(W), float(H), 0), (1, 3.0, 5.0, W - 7.0, H - 2.0, 1),
             (2, 1.5, 2.25, W * 0.6, H * 0.7, 0), (0, 0.0, 0.0, min(W, H) / 3, min(W, H) / 3, 1)]
    with open(f"{T}/boxes.txt", "w") as f:
        for b in boxes:
            f.write("%d %r %r %r %r %d\n" % b)
    subprocess.run([probe, "resize", str(H), str(W), str(C), str(S), f"{T}/im.raw", f"{T}/boxes.txt",
                    f"{T}/out.raw"], check=True)
    raw = np.fromfile(f"{T}/out.raw", dtype=np.uint8)
    rec = S * S * C + 4 * C * S * S
    assert raw.size == rec * len(boxes), raw.size
    for k, (i, x0, y0, x1, y1, flip) in enumerate(boxes):
        pil = Image.fromarray(im[i].squeeze(-1) if C == 1 else im[i])
        want = np.array(pil.resize((S, S), LANCZOS, box=(x0, y0, x1, y1))).reshape(S, S, C)
        got = raw[k * rec:k * rec + S * S * C].reshape(S, S, C)
        d = np.abs(got.astype(int) - want.astype(int))
        assert d.max() == 0, ((H, W, C, S), (x0, y0, x1, y1), int(d.max()), int((d > 0).sum()))
        f = raw[k * rec + S * S * C:(k + 1) * rec].view("<f4").reshape(C, S, S)
        w = want.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        if flip:
            w = w[:, :, ::-1]
        assert np.abs(f - w).max() <= 1e-7, ((H, W, C, S), (x0, y0, x1, y1), float(np.abs(f - w).max()))
        cases += 1
print(f"# {cases} boxes equal")
PY

# ---- the official shapes at 112x112 -------------------------------------------------------------
mkdir -p "$T/b"
run $GEN model "$T/b" 256 2 8192 112 4 3 pkl
check "twin at the official shapes (n_hid 256, 2 blocks per group, V 8192): $(head -c 120 "$T/out")" [ "$rc" = 0 ]
run $IMP "$T/b/encoder.pkl" "$T/b/ck.h5"
check "import_dalle.py converts it ($(head -c 200 "$T/out"))" \
  bash -c "[ $rc = 0 ] && grep -q 'n_hid 256, 4 groups x 2 blocks' '$T/out' && grep -q '14x14 tokens' '$T/out'"
run $BEIT data info --verify "$T/b/ck.h5"
check "beit data info --verify of the 54M-parameter checkpoint" bash -c "[ $rc = 0 ] && grep -q 'dalle.vocab_size = 8192' '$T/out'"
run "$PROBE" encode "$T/b/ck.h5" "$T/b/x.raw" 4 "$T/b/l.raw" "$T/b/t.raw"
TIME=$(grep seconds_per_image "$T/out")
check "C encoder on 4 images at 112x112 ($TIME)" [ "$rc" = 0 ]
echo "# $TIME"
run $GEN compare "$T/b" "$T/b/l.raw" "$T/b/t.raw" 1e-3
check "112x112, 4 images: tokens = the twin's argmax except counted near-ties ($(cat "$T/out"))" [ "$rc" = 0 ]

# ---- bad inputs -----------------------------------------------------------------------------------
$PY -c "import torch; torch.save({'conv.weight': torch.zeros(2, 3, 3, 3)}, '$T/notdalle.pt')"
run $IMP "$T/notdalle.pt" "$T/bad.h5"
check "a state dict that is not DALL-E's encoder: non-zero exit naming the file and the missing tensor" \
  bash -c "[ $rc != 0 ] && grep -q 'notdalle.pt: no tensor blocks.input.w' '$T/err' && [ ! -f '$T/bad.h5' ]"
cp "$T/s/ck.h5" "$T/damaged.h5"
$PY -c "
import h5py, sys
f = h5py.File('$T/damaged.h5', 'r+'); d = f['params/blocks.group_3.block_2.res_path.conv_2.w']; a = d[()]; a.flat[5] += 1.0; d[...] = a"
run $BEIT data info --verify "$T/damaged.h5"
check "a damaged tensor: exit 4 naming the file and the tensor" \
  bash -c "[ $rc = 4 ] && grep -q 'damaged.h5' '$T/err' && grep -q 'blocks.group_3.block_2.res_path.conv_2.w' '$T/err'"
finish
