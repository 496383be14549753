#!/usr/bin/env bash
# beit tokenize and pretrain.target tokens_online with DALL-E's encoder (kind dalle-encoder,
# converted by tools/import_dalle.py from a random twin at n_hid 16):
#   - the token store records the tokenizer (kind, checkpoint path and sha256, Lanczos resize,
#     pixel map) and beit data info shows it
#   - view 0 and the random crops: tokens = the twin's argmax on PIL's Lanczos resize of the
#     recorded box (flipped when recorded), map_pixels applied -- BEiT's tokenizer view
#   - pretraining with tokens_online equals pretraining on the token store of the same
#     tokenizer (augmentation off: both see the whole image), loss for loss
#   - dalle.* keys of the job that disagree with the checkpoint: exit 5
# usage: tokenize_dalle.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

# ---- a 3-channel store of 40x40 images and a tiny DALL-E encoder (32x32 -> 4x4 tokens) -----------
check "a folder of 30 RGB PNGs (smooth random images)" $PY - "$T/img" <<'PY'
import os, sys, numpy as np
from PIL import Image
rng = np.random.default_rng(7)
for k in range(30):
    d = os.path.join(sys.argv[1], "c%d" % (k % 2))
    os.makedirs(d, exist_ok=True)
    base = rng.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    im = np.array(Image.fromarray(base).resize((40, 40), Image.BICUBIC)).astype(int)
    im = np.clip(im + rng.integers(-25, 26, im.shape), 0, 255).astype(np.uint8)
    Image.fromarray(im).save(os.path.join(d, "%02d.png" % k))
PY
run $BEIT data import folder "$T/img" "$T/st.h5" --size 40
check "imported into a store (40x40x3)" [ "$rc" = 0 ]
mkdir -p "$T/enc"
run $PY "$SRC/tests/models/dalle_gen.py" model "$T/enc" 16 1 64 32 1 4 pkl
run $PY "$SRC/tools/import_dalle.py" "$T/enc/encoder.pkl" "$T/dalle.h5" --image-size 32
check "a random DALL-E encoder (n_hid 16, V 64) converted for 32x32 input" [ "$rc" = 0 ]

cat > "$T/tok.yaml" <<YAML
task: tokenize
seed: 3
data: {path: $T/st.h5}
tokenize: {views: 3, batch: 8, checkpoint: $T/dalle.h5}
aug: {crop_scale_min: 0.3, crop_scale_max: 1.0, flip: true}
YAML
run $BEIT tokenize -c "$T/tok.yaml" --tokens "$T/tok.h5"
check "beit tokenize with the dalle-encoder checkpoint: exit 0, the log names kind and resize" \
  bash -c "[ $rc = 0 ] && grep -q 'dalle-encoder): 32x32x3 views (lanczos resize) -> 4x4 tokens over V = 64' '$T/out'"
run $BEIT data info "$T/tok.h5"
check "beit data info of the token store shows the tokenizer, its checkpoint and the view's resize" \
  bash -c "[ $rc = 0 ] && grep -q 'tokenizer    dalle-encoder, input 32 x 32' '$T/out' && grep -q 'checkpoint $T/dalle.h5' '$T/out' \
           && grep -q 'view: lanczos resize' '$T/out'"

check "token store attributes; every view's tokens = the twin on PIL's Lanczos view of its crop" \
  $PY - "$T/tok.h5" "$T/dalle.h5" "$T/st.h5" "$SRC" <<'PY'
import hashlib, os, sys, h5py, numpy as np, torch
from PIL import Image
sys.path.insert(0, os.path.join(sys.argv[4], "tools", "torchref"))
import dalle_encoder as twin
f, ck, st = (h5py.File(p, "r") for p in sys.argv[1:4])
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
A = f.attrs
assert s(A["tokenizer_kind"]) == "dalle-encoder", dict(A)
assert s(A["tokenizer_checkpoint"]) == sys.argv[2]
assert s(A["tokenizer_resize"]) == "lanczos"
assert "0.8 x + 0.1" in s(A["tokenizer_pixel_map"])
assert s(A["tokenizer_sha256"]) == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert (int(A["vocab_size"]), int(A["grid"]), int(A["tokenizer_input"])) == (64, 4, 32)
enc = twin.Encoder(n_hid=16, n_blk_per_group=1, vocab_size=64)
enc.load_state_dict({k: torch.from_numpy(ck["params"][k][()]) for k in ck["params"]}, strict=True)
LANCZOS = getattr(Image, "Resampling", Image).LANCZOS
images = st["train"]["images"][()]
tok, crops = f["train"]["tokens"][()], f["train"]["crops"][()]
N, K = tok.shape[:2]
views = []
for i in range(N):
    for v in range(K):
        y0, x0, h, w, flip = crops[i, v]
        im = Image.fromarray(images[i]).resize((32, 32), LANCZOS, box=(x0, y0, x0 + w, y0 + h))
        a = np.asarray(im).astype(np.float32) / np.float32(255)
        if flip:
            a = a[:, ::-1]
        views.append(a.transpose(2, 0, 1).copy())
x = torch.from_numpy(np.stack(views))
with torch.no_grad():
    logits = enc(twin.map_pixels(x))
want = logits.argmax(1).numpy().reshape(N, K, 4, 4)
top2 = torch.topk(logits, 2, dim=1).values.numpy().reshape(N, K, 2, 4, 4)
near = (top2[:, :, 0] - top2[:, :, 1]) <= 1e-5 * np.abs(top2[:, :, 0])
diff = tok != want
assert not (diff & ~near).any(), (int(diff.sum()), int(near.sum()))
assert (crops[:, 0] == np.array([0, 0, 40, 40, 0])).all() and (crops[:, 1:, 2] < 40).any()
print(f"# {N} images x {K} views: {int((~diff).sum())}/{diff.size} tokens equal, near-ties {int(near.sum())}")
PY

# ---- pretraining: tokens_online = the token store of the same tokenizer -------------------------
cat > "$T/tok1.yaml" <<YAML
task: tokenize
data: {path: $T/st.h5}
tokenize: {views: 1, batch: 8, checkpoint: $T/dalle.h5}
YAML
run $BEIT tokenize -c "$T/tok1.yaml" --tokens "$T/tok1.h5"
cat > "$T/pre.yaml" <<YAML
task: pretrain
seed: 2
data: {path: $T/st.h5, tokens: $T/tok1.h5}
model: {arch: beit, img_size: 32, patch_size: 8, in_chans: 3, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64}
mask: {type: block, num_patches: 6, min_patches: 2}
aug: {enable: false}
tokenize: {checkpoint: $T/dalle.h5}
train: {epochs: 1, global_batch: 10, log_every: 1, ckpt_every: 100}
optim: {lr: 2.0e-3, warmup_steps: 1}
YAML
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pt" --steps 3
check "pretrain on the DALL-E token store: 3 steps" [ "$rc" = 0 ]
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/po" --steps 3 --set pretrain.target=tokens_online
check "pretrain with tokens_online from the dalle-encoder checkpoint: 3 steps, the log names it" \
  bash -c "[ $rc = 0 ] && grep -q 'tokens_online: dalle-encoder tokenizer' '$T/out'"
check "tokens_online = token store: the same losses and accuracies, step for step" $PY - "$T/pt" "$T/po" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
a = [(r["loss"], r["mim_acc"]) for r in a if "loss" in r]
b = [(r["loss"], r["mim_acc"]) for r in b if "loss" in r]
assert len(a) == len(b) == 3 and a == b, (a, b)
print("# losses", [x for x, _ in a])
PY

# ---- the job's dalle.* keys must describe the checkpoint ----------------------------------------
run $BEIT tokenize -c "$T/tok.yaml" --tokens "$T/bad.h5" --set dalle.image_size=112
check "dalle.image_size 112 with a 32x32 tokenizer: exit 5 naming both" \
  bash -c "[ $rc = 5 ] && grep -q 'dalle.image_size = 112, but the tokenizer $T/dalle.h5 takes 32x32' '$T/err' && [ ! -f '$T/bad.h5' ]"
finish
