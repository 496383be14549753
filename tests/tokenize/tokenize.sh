#!/usr/bin/env bash
# beit tokenize end to end: a tiny dVAE trained by the real CLI (2 steps), then
#   - 1 rank = 2 ranks bit for bit (datasets of both splits; the 2-rank run has a step where
#     one rank writes 0 rows), attributes as documented in tokens.h, tokens in [0, V)
#   - view 0 = PyTorch's argmax tokens (tools/torchref/dvae.py loading the checkpoint)
#   - views > 0: crop boxes inside the image, crop_apply = PIL's resize of the box (within one
#     grey level), their tokens = PyTorch's on those pixels
#   - tokens_read (RAM cache and per-call file reads) = h5py
#   - an existing output refused (exit 2, untouched) unless --force
#   - bad inputs: exit code and message; a killed run leaves nothing at the final path and
#     the next run starts clean
# usage: tokenize.sh BEIT SRCDIR TOK_PROBE GEN_IMAGES
BEIT=$1
SRC=$2
PROBE=$3
GENIMG=$4
. "$SRC/tests/tap.sh"

# ---- a store and a tiny tokenizer (28x28x1 -> 14x14 over V = 64) ----------------------------
run $BEIT data import fashion-mnist "$T/fm.h5"
check "fashion-mnist store imported" [ "$rc" = 0 ]
cat > "$T/dvae.yaml" <<YAML
task: dvae
seed: 3
data: {path: $T/fm.h5, subset: 256}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8], blocks_per_group: 1}
train: {epochs: 1, global_batch: 32, log_every: 1}
optim: {lr: 1.0e-2, warmup_steps: 1}
YAML
run $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dv" --steps 2
CK=$T/dv/ckpt-00000002.h5
check "tiny dVAE trained for 2 steps by beit dvae train" bash -c "[ $rc = 0 ] && [ -f '$CK' ]"

# subset 301 with batch 50: on 2 ranks the global batch is 100 and the last step has 1 image,
# so rank 0 takes part in that write with an empty selection
cat > "$T/tok.yaml" <<YAML
task: tokenize
seed: 5
data: {path: $T/fm.h5, subset: 301}
tokenize: {views: 3, batch: 50}
aug: {crop_scale_min: 0.2, crop_scale_max: 1.0, flip: true}
dvae: {image_size: 28, vocab_size: 64, widths: [4, 8]}
YAML
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK" --tokens "$T/t1.h5" --log-every 2
check "1 rank: exit 0, progress lines with images/s and ETA, total images/s" \
  bash -c "[ $rc = 0 ] && grep -q 'tokenize train: .*/301 images.*images/s, ETA' '$T/out' && grep -q 'tokenized 602 images x 3 views.*images/s' '$T/out'"
run $MPI -np 2 $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK" --tokens "$T/t2.h5"
check "2 ranks: exit 0 and the file is at its final path, no temporary left" \
  bash -c "[ $rc = 0 ] && [ -f '$T/t2.h5' ] && [ -z \"\$(ls -A '$T' | grep -F '.t2.h5.tmp.')\" ]"

check "1 rank = 2 ranks bit for bit: /train and /test tokens and crops" $PY - "$T/t1.h5" "$T/t2.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert sorted(a.keys()) == sorted(b.keys()) == ["test", "train"], (list(a), list(b))
for s in ("train", "test"):
    for d in ("tokens", "crops"):
        x, y = a[s][d][()], b[s][d][()]
        assert x.shape == y.shape and x.dtype == y.dtype, (s, d, x.shape, y.shape)
        assert x.tobytes() == y.tobytes(), (s, d, int((x != y).sum()))
PY

check "layout and attributes as in tokens.h; tokens in [0, 64); crops: view 0 the whole image, others inside it" \
  $PY - "$T/t2.h5" "$CK" "$T/fm.h5" <<'PY'
import sys, hashlib, h5py, numpy as np
f, store = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[3], "r")
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
A = f.attrs
assert s(A["format"]) == "beit-tokens" and int(A["format_version"]) == 1, dict(A)
assert (int(A["vocab_size"]), int(A["grid"]), int(A["views"]), int(A["tokenizer_input"])) == (64, 14, 3, 28), dict(A)
assert (int(A["image_height"]), int(A["image_width"]), int(A["image_channels"])) == (28, 28, 1)
assert s(A["tokenizer_sha256"]) == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert s(A["dataset_uuid"]) == s(store.attrs["uuid"])
assert s(A["dataset_path"]) == sys.argv[3]
cfg = s(A["config"])
assert "task: tokenize" in cfg and "views: 3" in cfg and sys.argv[2] in cfg, cfg
assert s(A["created_by"]).startswith("beit ")
for sp in ("train", "test"):
    t, c = f[sp]["tokens"], f[sp]["crops"]
    assert t.shape == (301, 3, 14, 14) and t.dtype == np.uint16, (t.shape, t.dtype)
    assert c.shape == (301, 3, 5) and c.dtype == np.float32, (c.shape, c.dtype)
    assert int(f[sp].attrs["count"]) == 301
    t, c = t[()], c[()]
    assert t.max() < 64
    assert len(np.unique(t)) > 1, "all tokens equal"
    assert (c[:, 0] == [0, 0, 28, 28, 0]).all()
    y0, x0, h, w, fl = (c[:, 1:, k] for k in range(5))
    assert (np.floor(c) == c).all() and (y0 >= 0).all() and (x0 >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (y0 + h <= 28).all() and (x0 + w <= 28).all() and set(np.unique(fl)) <= {0.0, 1.0}
    assert 0.3 < fl.mean() < 0.7, fl.mean()
    assert (h * w / 784 < 0.999).mean() > 0.5, "crops are not random"
PY

check "view 0 = PyTorch argmax tokens of the stored images (torchref DVAE, checkpoint loaded strictly)" \
  $PY - "$SRC" "$CK" "$T/fm.h5" "$T/t1.h5" <<'PY'
import sys, h5py, numpy as np, torch
sys.path.insert(0, sys.argv[1] + "/tools/torchref")
from dvae import DVAE
ck = h5py.File(sys.argv[2], "r")
m = DVAE(1, (4, 8), 1, 64, "mse")
m.load_state_dict({k: torch.from_numpy(ck["params"][k][()]) for k in ck["params"]}, strict=True)
st, tk = h5py.File(sys.argv[3], "r"), h5py.File(sys.argv[4], "r")
total = amb = 0
for sp in ("train", "test"):
    # images_to_float multiplies by float32(1/255)
    x = torch.from_numpy(st[sp]["images"][:301].astype(np.float32) * np.float32(1 / 255)).permute(0, 3, 1, 2)
    with torch.no_grad():
        logits = m.encoder(x).double()
    # a token may differ only where the top two logits are within float32 noise of each other
    top2 = logits.topk(2, dim=1).values
    near = ((top2[:, 0] - top2[:, 1]) <= 1e-5).numpy()
    want = logits.argmax(1).numpy()
    got = tk[sp]["tokens"][:, 0].astype(np.int64)
    total += want.size
    amb += int((got != want).sum())
    assert not ((got != want) & ~near).any(), f"{sp}: {int(((got != want) & ~near).sum())} tokens differ off ties"
print(f"# {total} tokens compared, {amb} differ (all at near-ties, top-2 gap <= 1e-5)")
assert amb <= total // 1000
PY

# views > 0: the C crops of the first 40 training images vs PIL, then their tokens vs torch
check "views 1, 2: crop_apply = PIL resize(box, BILINEAR) + mirror within one grey level; tokens = PyTorch's on those pixels" \
  $PY - "$SRC" "$CK" "$T/fm.h5" "$T/t1.h5" "$PROBE" "$T" <<'PY'
import sys, subprocess, h5py, numpy as np, torch
from PIL import Image
sys.path.insert(0, sys.argv[1] + "/tools/torchref")
from dvae import DVAE
ck = h5py.File(sys.argv[2], "r")
m = DVAE(1, (4, 8), 1, 64, "mse")
m.load_state_dict({k: torch.from_numpy(ck["params"][k][()]) for k in ck["params"]}, strict=True)
st, tk, probe, T = h5py.File(sys.argv[3], "r"), h5py.File(sys.argv[4], "r"), sys.argv[5], sys.argv[6]
imgs, crops, toks = st["train/images"][:40], tk["train/crops"][:40], tk["train/tokens"][:40]
worst = 0.0
exact = n = 0
mism = amb = total = 0
open(f"{T}/img.raw", "wb").write(imgs.tobytes())
with open(f"{T}/boxes.txt", "w") as f:
    for i in range(40):
        for v in (1, 2):
            f.write(f"{i} " + " ".join(str(int(c)) for c in crops[i, v]) + "\n")
subprocess.run([probe, "crop", "28", "28", "1", "28", f"{T}/img.raw", f"{T}/boxes.txt", f"{T}/out.raw"], check=True)
allgot = np.fromfile(f"{T}/out.raw", dtype=np.float32).reshape(40, 2, 1, 28, 28)
for i in range(40):
    got = allgot[i]
    for j, v in enumerate((1, 2)):
        y0, x0, h, w, fl = (int(c) for c in crops[i, v])
        im = Image.fromarray(imgs[i][:, :, 0]).resize((28, 28), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h))
        if fl:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        ref = np.asarray(im, dtype=np.float32) / 255
        d = np.abs(got[j, 0] - ref)
        worst = max(worst, float(d.max()))
        exact += int((d < 1e-6).sum())
        n += d.size
    with torch.no_grad():
        logits = m.encoder(torch.from_numpy(got)).double()
    top2 = logits.topk(2, dim=1).values
    near = ((top2[:, 0] - top2[:, 1]) <= 1e-5).numpy()
    want = logits.argmax(1).numpy()
    mism += int(((toks[i, 1:] != want) & ~near).sum())
    amb += int((toks[i, 1:] != want).sum())
    total += want.size
# PIL rounds its horizontal pass to bytes and works in fixed point: +-1 grey level in places
print(f"# pixels: {exact}/{n} equal to PIL's, worst difference {worst * 255:.3f} grey levels; "
      f"tokens: {total} compared, {amb} differ (at near-ties only)")
assert worst <= 1 / 255 + 1e-6, worst * 255
assert exact >= 0.8 * n, (exact, n)
assert mism == 0 and amb <= total // 1000, (mism, amb)
PY

check "tokens_read (whole split cached in RAM) = h5py, random (index, view) pairs with repeats" \
  $PY - "$PROBE" "$T/t2.h5" <<'PY'
import sys, subprocess, h5py, numpy as np
f = h5py.File(sys.argv[2], "r")
for split, budget in (("train", "1073741824"), ("test", "1073741824"), ("train", "0"), ("test", "0")):
    out = subprocess.run([sys.argv[1], "read", sys.argv[2], split, budget, "200", "11"], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert len(out) == 200
    t, c = f[split]["tokens"][()], f[split]["crops"][()]
    for line in out:
        head, toks, crop = line.split("|")
        i, v = map(int, head.split())
        assert [int(x) for x in toks.split()] == t[i, v].reshape(-1).tolist(), (split, budget, i, v)
        assert [float(x) for x in crop.split()] == c[i, v].tolist(), (split, budget, i, v)
print("# cached and per-call file reads both match")
PY

run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK" --tokens "$T/t3.h5" --seed 6
check "another seed: view 0 tokens unchanged, the crops of views 1, 2 differ" $PY - "$T/t1.h5" "$T/t3.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert (a["train/tokens"][:, 0] == b["train/tokens"][:, 0]).all()
assert (a["train/crops"][:, 1:] != b["train/crops"][:, 1:]).any(axis=-1).mean() > 0.9
PY

# ---- an existing token store: refused unless --force -------------------------------------------
TOK="$BEIT tokenize -c $T/tok.yaml --checkpoint $CK"
fmuuid=$($PY -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$T/fm.h5")
SHA1=$(sha256sum < "$T/t1.h5")
run $TOK --tokens "$T/t1.h5"
check "tokenize into an existing token store: exit 2 naming it, what it is and --force" \
  bash -c "[ $rc = 2 ] && grep -qF 'beit tokenize: $T/t1.h5 already exists: a beit token store (of dataset uuid $fmuuid). It was left untouched; pass --force to replace it.' '$T/err'"
check "  ... and the token store is byte-identical" bash -c "[ \"\$(sha256sum < '$T/t1.h5')\" = '$SHA1' ]"
run $MPI -np 2 $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/nockpt.h5" --tokens "$T/t1.h5"
check "2 ranks: exit 2 before the (missing) checkpoint is read, one message, the file byte-identical" \
  bash -c "[ $rc = 2 ] && [ \"\$(grep -c 'already exists' '$T/err')\" = 1 ] && ! grep -qF nockpt '$T/err' && [ \"\$(sha256sum < '$T/t1.h5')\" = '$SHA1' ]"
run $TOK --tokens "$T/fm.h5"
check "tokenize onto the dataset store: exit 2, 'a beit dataset store (uuid ...)'" \
  bash -c "[ $rc = 2 ] && grep -qF '$T/fm.h5 already exists: a beit dataset store (uuid $fmuuid)' '$T/err'"
run $TOK --tokens "$T/t3.h5" --force
check "--force replaces it: exit 0, the seed-5 crops of t1 now in t3 (it held seed 6's)" $PY - "$T/t1.h5" "$T/t3.h5" <<'PY'
import sys, h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
assert a["train/crops"][()].tobytes() == b["train/crops"][()].tobytes()
PY
check "  ... exit 0" bash -c "[ $rc = 0 ]"

# ---- bad inputs ---------------------------------------------------------------------------------
run $TOK --tokens "$T/bad.h5" --set dvae.vocab_size=32
check "job's dvae.vocab_size 32 vs the checkpoint's 64: exit 5 naming both" \
  bash -c "[ $rc = 5 ] && grep -q 'dvae.vocab_size = 32.*vocab_size 64' '$T/err'"
check "  ... and nothing written" no_output "$T/bad.h5"
run $TOK --tokens "$T/bad.h5" --set 'dvae.widths=[4,8,8]'
check "job's grid 7x7 (3 widths) vs the checkpoint's 14x14: exit 5 naming both" \
  bash -c "[ $rc = 5 ] && grep -q '7x7 token grid.*gives 14x14' '$T/err' && [ ! -e '$T/bad.h5' ]"
cat > "$T/plain.yaml" <<YAML
task: tokenize
data: {path: $T/fm.h5, subset: 20}
YAML
run $BEIT tokenize -c "$T/plain.yaml" --checkpoint "$CK" --tokens "$T/plain.h5"
check "a job that sets no dvae.* keys takes the checkpoint's (defaults are not compared): exit 0" \
  bash -c "[ $rc = 0 ] && [ -f '$T/plain.h5' ]"

"$GENIMG" "$T/rgb" mixed
$BEIT data import folder "$T/rgb" "$T/rgb.h5" --size 28 >/dev/null 2>&1
run $TOK --tokens "$T/bad.h5" --data "$T/rgb.h5"
check "3-channel dataset for a 1-channel tokenizer: exit 5" \
  bash -c "[ $rc = 5 ] && grep -q 'rgb.h5: images have 3 channels.*in_chans 1' '$T/err' && [ ! -e '$T/bad.h5' ]"
"$GENIMG" "$T/gray" gray
$BEIT data import folder "$T/gray" "$T/small.h5" --size 8 >/dev/null 2>&1
run $TOK --tokens "$T/bad.h5" --data "$T/small.h5"
check "8x8 images for a 28x28 tokenizer: exit 5" \
  bash -c "[ $rc = 5 ] && grep -q 'images are 8x8, smaller than the tokenizer input 28x28' '$T/err' && [ ! -e '$T/bad.h5' ]"
run $TOK --tokens "$T/bad.h5" --data "$T/none.h5"
check "missing dataset file: exit 3 naming it" \
  bash -c "[ $rc = 3 ] && grep -qF '$T/none.h5' '$T/err' && [ ! -e '$T/bad.h5' ]"
run $TOK --tokens "$T/bad.h5" --set data.split=nosuch
check "missing split: exit 3 naming it" bash -c "[ $rc = 3 ] && grep -q \"no split 'nosuch'\" '$T/err'"
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/nockpt.h5" --tokens "$T/bad.h5"
check "missing checkpoint: exit 4 naming it" bash -c "[ $rc = 4 ] && grep -qF '$T/nockpt.h5' '$T/err'"
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/fm.h5" --tokens "$T/bad.h5"
check "an HDF5 file that is not a checkpoint: exit 4" bash -c "[ $rc = 4 ] && grep -q 'not a beit checkpoint' '$T/err'"
$PY - "$CK" "$T" <<'PY'
import sys, shutil, h5py, numpy as np
def put(f, name, text):  # checkpoints hold fixed-length, NUL-terminated strings
    b = text.encode()
    t = h5py.h5t.C_S1.copy()
    t.set_size(len(b) + 1)
    t.set_strpad(h5py.h5t.STR_NULLTERM)
    del f.attrs[name]
    f.attrs.create(name, np.array(b, dtype=f"S{len(b) + 1}"), dtype=h5py.Datatype(t))
shutil.copy(sys.argv[1], sys.argv[2] + "/pre.h5")
with h5py.File(sys.argv[2] + "/pre.h5", "r+") as f:
    put(f, "kind", "beit-pretrain")
shutil.copy(sys.argv[1], sys.argv[2] + "/big.h5")
with h5py.File(sys.argv[2] + "/big.h5", "r+") as f:
    cfg = f.attrs["config"]
    cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
    assert "vocab_size: 64" in cfg
    put(f, "config", cfg.replace("vocab_size: 64", "vocab_size: 70000"))
PY
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/pre.h5" --tokens "$T/bad.h5"
check "a checkpoint of kind beit-pretrain: exit 5 naming the kind" \
  bash -c "[ $rc = 5 ] && grep -q \"kind 'beit-pretrain', expected a tokenizer\" '$T/err'"
run $BEIT tokenize -c "$T/plain.yaml" --checkpoint "$T/big.h5" --tokens "$T/bad.h5"
check "a tokenizer with V = 70000 (> uint16): exit 5" \
  bash -c "[ $rc = 5 ] && grep -q 'vocab_size 70000 does not fit.*65535' '$T/err'"
run $BEIT tokenize -c "$T/dvae.yaml" --checkpoint "$CK" --tokens "$T/bad.h5"
check "a job of another task: exit 2" bash -c "[ $rc = 2 ] && grep -q 'task: tokenize' '$T/err'"
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK"
check "no token store path: exit 2 naming data.tokens" bash -c "[ $rc = 2 ] && grep -q 'data.tokens' '$T/err'"
run $TOK --tokens "$T/fm.h5/sub/t.h5"
check "an output path that cannot be created: exit 7" bash -c "[ $rc = 7 ] && grep -qF '$T/fm.h5/sub/t.h5' '$T/err'"
check "no temporary files left by the failures above" bash -c "[ -z \"\$(ls -A '$T' | grep -F '.tmp.')\" ]"

# ---- interrupted runs ---------------------------------------------------------------------------
cp "$T/t1.h5" "$T/k.h5"
OLD=$(md5sum < "$T/k.h5")
wait_tmp() { # wait until a temporary of k.h5 exists (the run is writing)
  for _ in $(seq 1 300); do
    ls -A "$T" | grep -qF '.k.h5.tmp.' && return 0
    sleep 0.1
  done
  return 1
}
# the whole of Fashion-MNIST (70000 images x 3 views) takes far longer than the wait
$MPI -np 2 $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK" --tokens "$T/k.h5" --set data.subset=0 --force \
  >"$T/kill.out" 2>&1 &
MPID=$!
wait_tmp
started=$?
sleep 1
for p in $(pgrep -P $MPID); do kill -KILL "$p"; done
wait $MPID
check "SIGKILL of both ranks while writing: the previous file at the final path is untouched" \
  bash -c "[ $started = 0 ] && [ \"\$(md5sum < '$T/k.h5')\" = '$OLD' ]"
check "  ... and only the dot-prefixed temporary is left" bash -c "ls -A '$T' | grep -qF '.k.h5.tmp.'"
run $TOK --tokens "$T/k.h5" --force
check "the next run succeeds, removes the stale temporary and replaces the file" \
  bash -c "[ $rc = 0 ] && grep -q 'removed .*\.k\.h5\.tmp\.' '$T/err' && [ -z \"\$(ls -A '$T' | grep -F '.k.h5.tmp.')\" ] && [ \"\$(md5sum < '$T/k.h5')\" != '$OLD' ]"
check "  ... with the same datasets as before" $PY - "$T/t1.h5" "$T/k.h5" <<'PY'
import sys, h5py
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for s in ("train", "test"):
    for d in ("tokens", "crops"):
        assert a[s][d][()].tobytes() == b[s][d][()].tobytes()
PY
rm -f "$T/k.h5"
$BEIT tokenize -c "$T/tok.yaml" --checkpoint "$CK" --tokens "$T/k.h5" --set data.subset=0 >/dev/null 2>&1 &
BPID=$!
wait_tmp
sleep 0.5
kill -TERM $BPID
wait $BPID
trc=$?
check "SIGTERM while writing: the process dies by the signal, its temporary is removed, nothing at the final path" \
  bash -c "[ $trc = 143 ] && [ ! -e '$T/k.h5' ] && [ -z \"\$(ls -A '$T' | grep -F '.k.h5.tmp.')\" ]"

# ---- beit data info: the token store and the tokenizer's checkpoint ----
run $BEIT data info --verify "$T/t1.h5"
check "data info --verify on the token store: exit 0, vocabulary, splits, every row checked" \
  bash -c "[ $rc = 0 ] && grep -q 'beit token store' '$T/out' && grep -q 'vocabulary 64' '$T/out' && grep -q 'train (301)' '$T/out' && grep -q '^verified: 2 splits read whole' '$T/out'"
cp "$T/t1.h5" "$T/tbad.h5"
$PY - "$T/tbad.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "a") as f:   # a token outside the vocabulary, deep in the split
    x = f["test/tokens"][7]; x[1, 2, 3] = 64; f["test/tokens"][7] = x
PY
run $BEIT data info --verify "$T/tbad.h5"
check "data info --verify on a token store with a token >= vocab_size: exit 3 naming split, sample and view" \
  bash -c "[ $rc = 3 ] && grep -q 'tbad.h5: /test/tokens sample 7 view 1 holds 64, outside the vocabulary' '$T/err'"
run $BEIT data info "$CK"
check "data info on the dVAE checkpoint: kind, step, format 3, tensors with checksums" \
  bash -c "[ $rc = 0 ] && grep -q 'kind         dvae' '$T/out' && grep -q 'step         2' '$T/out' && grep -q 'version 3' '$T/out' && grep -q 'checksum [0-9a-f]\{16\}' '$T/out'"
run $BEIT data info --verify "$CK"
check "data info --verify on it: exit 0, every checksum matches" \
  bash -c "[ $rc = 0 ] && grep -q 'every checksum matches' '$T/out'"
cp "$CK" "$T/ckbad.h5"
NAME=$($PY - "$T/ckbad.h5" <<'PY'
import h5py, sys, numpy as np
with h5py.File(sys.argv[1], "a") as f:   # one bit of one moment; the value stays finite
    x = f["optim/exp_avg_flat"][()]; x[x.size // 3:x.size // 3 + 1].view(np.uint32)[0] ^= 1
    f["optim/exp_avg_flat"][...] = x
    for l in f["optim"].attrs["tensors"].splitlines():
        n, off, k = l.split()
        if int(off) <= x.size // 3 < int(off) + int(k): print(n)
PY
)
run $BEIT data info --verify "$T/ckbad.h5"
check "data info --verify on a checkpoint with one flipped bit in exp_avg: exit 4 naming the tensor" \
  bash -c "[ $rc = 4 ] && grep -q 'ckbad.h5: tensor exp_avg of $NAME: checksum mismatch' '$T/err'"
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/ckbad.h5" --tokens "$T/k2.h5"
check "tokenize with that checkpoint (parameters intact, moments not read): exit 0" bash -c "[ $rc = 0 ]"
$PY - "$T/ckbad.h5" <<'PY'
import h5py, sys, numpy as np
with h5py.File(sys.argv[1], "a") as f:
    k = sorted(f["params"])[0]; x = f["params"][k][()]; x.reshape(-1)[:1].view(np.uint32)[0] ^= 1; f["params"][k][...] = x
    print(k, file=open(sys.argv[1] + ".name", "w"))
PY
run $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/ckbad.h5" --tokens "$T/k3.h5"
check "tokenize with one flipped bit in a parameter of the tokenizer: exit 4 naming it, nothing written" \
  bash -c "[ $rc = 4 ] && grep -q \"ckbad.h5: tensor params/\$(cat '$T/ckbad.h5.name'): checksum mismatch\" '$T/err' && [ ! -e '$T/k3.h5' ]"
finish
