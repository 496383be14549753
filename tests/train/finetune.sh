#!/usr/bin/env bash
# Downstream commands end to end on a Fashion-MNIST subset with a tiny BEiT: fine-tuning from a
# pre-training checkpoint (weights copied by name, the shared relative position table into
# every block), from scratch, 1 rank = 2 ranks; beit eval (1 rank = 2 ranks, exit codes),
# beit probe, beit attn; segmentation on a mosaic store; bad inputs with clear messages.
#   finetune.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

# a small pre-trained model: tokenizer (3 steps), tokens, MIM (6 steps)
$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
cat > "$T/dvae.yaml" <<YAML
task: dvae
data: {path: $T/fm.h5, subset: 512}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}
train: {epochs: 1, global_batch: 64, log_every: 1}
YAML
$BEIT dvae train -c "$T/dvae.yaml" --out "$T/dvae" --steps 3 >/dev/null 2>&1
cat > "$T/tok.yaml" <<YAML
task: tokenize
data: {path: $T/fm.h5, subset: 300}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}
tokenize: {views: 1, batch: 100}
YAML
$BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/dvae/ckpt-00000003.h5" --data "$T/fm.h5" --tokens "$T/tok.h5" >/dev/null 2>&1
MODEL="{arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64, drop_path: 0.1}"
cat > "$T/pre.yaml" <<YAML
task: pretrain
data: {path: $T/fm.h5, tokens: $T/tok.h5, subset: 300}
model: $MODEL
mask: {type: block, num_patches: 20, min_patches: 4}
train: {epochs: 1, global_batch: 32, log_every: 1}
optim: {lr: 1.0e-2, warmup_steps: 2}
YAML
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pre" --steps 6
check "a tiny pre-training checkpoint for the tests" [ "$rc" = 0 ]
PRE="$T/pre/ckpt-00000006.h5"

cat > "$T/ft.yaml" <<YAML
task: finetune
seed: 3
data: {path: $T/fm.h5, subset: 512}
aug: {crop_scale_min: 0.5}
model: $MODEL
finetune: {task: classification, layer_decay: 0.65}
train: {epochs: 1, global_batch: 32, log_every: 1}
optim: {lr: 2.0e-3, warmup_steps: 2}
YAML
# with lr 0 the first checkpoint holds the initial weights: the copy from pre-training
run $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/copy" --steps 1 --set optim.lr=0 --set optim.min_lr=0
check "finetune --init PRETRAIN: 2 per-block relative tables copied from the shared one" \
  bash -c "[ $rc = 0 ] && grep -q '2 per-block relative position tables copied' '$T/out'"
check "the encoder starts as the pre-trained one (every tensor by name; rel_pos_bias -> blocks.k.attn); new head" $PY - "$PRE" "$T/copy/ckpt-00000001.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1])["params"], h5py.File(sys.argv[2])["params"]
names = []
b.visit(lambda n: names.append(n) if isinstance(b[n], h5py.Dataset) else None)
n = 0
for k in names:
    if k.startswith(("head.", "fc_norm.")):
        continue
    src = "rel_pos_bias.relative_position_bias_table" if k.endswith("attn.relative_position_bias_table") else k
    assert np.array_equal(a[src][()], b[k][()]), k
    n += 1
assert "mask_token" not in b and "lm_head.weight" not in b and "norm.weight" not in b
assert abs(b["head.weight"][()]).max() < 1e-3  # init x 0.001
print("# %d tensors equal" % n)
PY
run $MPI -np 1 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/f1" --steps 8
check "finetune 1 rank: 8 steps, eval.json with top-1/top-5" \
  bash -c "[ $rc = 0 ] && $PY -c \"import json; e=json.load(open('$T/f1/eval.json')); assert e['n']==10000 and 0<=e['top1']<=e['top5']<=1, e\""
check "the log names the final test accuracy" grep -q "final test accuracy: top-1" "$T/out"
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/f2" --steps 8
check "finetune 2 ranks: identical parameters on both" bash -c "[ $rc = 0 ] && grep -q 'identical on all 2 ranks' '$T/out'"
check "1 rank vs 2 ranks, same global batch: 8 losses within 1e-4 relative" $PY - "$T/f1" "$T/f2" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
w = max(abs(x - y) / abs(x) for x, y in zip(a, b)); print("# worst", w); assert len(a) == len(b) == 8 and w <= 1e-4
PY
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/fr" --steps 4 --resume auto
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/fr" --steps 8 --resume auto
check "stopped after 4 steps and resumed to --steps 8 (--resume auto): the 8 losses equal the uninterrupted run's exactly" $PY - "$T/f2" "$T/fr" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
assert len(b) == 8 and a == b, (a, b)
PY
# train.eval_every: the test split evaluated during training, one row per evaluation in
# eval.jsonl; training is unchanged by it, and a resume drops the rows it redoes
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/fe" --steps 4 --set train.eval_every=2
check "train.eval_every 2: the log names the test accuracy at step 2" bash -c "[ $rc = 0 ] && grep -q 'step 2: test accuracy: top-1' '$T/out'"
echo '{"step": 6, "seconds": 0, "top1": 0.5}' >> "$T/fe/eval.jsonl" # a row from a run that died after ckpt 4
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/fe" --steps 8 --resume auto --set train.eval_every=2
check "eval.jsonl: rows at steps 2, 4, 6, 8 (the stale row dropped); the last = eval.json; losses = the run without it" \
  $PY - "$T/f2" "$T/fe" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
r = [json.loads(l) for l in open(sys.argv[2] + "/eval.jsonl")]
e = json.load(open(sys.argv[2] + "/eval.json"))
print("#", [(x["step"], x["top1"]) for x in r])
assert [x["step"] for x in r] == [2, 4, 6, 8], r
assert r[-1]["top1"] == e["top1"] and all(x["split"] == "test" and x["n"] == 10000 for x in r), (r[-1], e)
assert a == b, (a, b)
PY
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/scratch" --steps 3 --set finetune.layer_decay=1.0
check "finetune --init none (the no-pre-training baseline) runs" bash -c "[ $rc = 0 ] && grep -q 'init: none' '$T/out'"

# Fine-tuning learns: a tiny ViT from scratch (learned absolute position embeddings, no
# augmentation, no drop-path) on 2048 training images, 128 steps of 64 (4 epochs). Measured
# over seeds 1-3: training loss (mean of the last 10 steps / the first 10) x 0.72-0.77, test
# top-1 43-50% (chance 10%); with optim.lr=0: x 1.000 and 4% (the check fails).
cat > "$T/learn.yaml" <<YAML
task: finetune
data: {path: $T/fm.h5, subset: 2048}
aug: {enable: false}
model: {arch: vit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, drop_path: 0}
finetune: {task: classification, layer_decay: 1.0, label_smoothing: 0.1}
train: {epochs: 4, global_batch: 64, log_every: 1}
optim: {lr: 5.0e-3, warmup_steps: 4}
YAML
run $BEIT finetune -c "$T/learn.yaml" --init none --out "$T/learn" --steps 128 --set seed=1
check "fine-tuning learns: training loss (mean of the last 10 steps) < 0.85 x the first 10; test top-1 >= 30% (3x chance)" \
    bash -c "[ $rc = 0 ] && $PY -c \"
import json; r = [json.loads(l) for l in open('$T/learn/metrics.jsonl')]; e = json.load(open('$T/learn/eval.json'))
a = sum(x['loss'] for x in r[:10]) / 10; b = sum(x['loss'] for x in r[-10:]) / 10
print('# %d steps: loss %.4f -> %.4f (x %.3f); test top-1 %.2f%% on %d' % (r[-1]['step'], a, b, b / a, 100 * e['top1'], e['n']))
assert len(r) == 128 and r[-1]['step'] == 128 and b < 0.85 * a and e['n'] == 10000 and e['top1'] >= 0.30\""
run $BEIT finetune -c "$T/ft.yaml" --out "$T/noinit" --steps 1
check "finetune without --init: exit 2 saying what to give" bash -c "[ $rc = 2 ] && grep -q -- \"--init is required\" '$T/err'"

# beit eval: one JSON line, the same on 1 and 2 ranks
CK="$T/f1/ckpt-00000008.h5"
run $MPI -np 1 $BEIT eval --checkpoint "$CK" --data "$T/fm.h5" --split test
cp "$T/out" "$T/eval1"
check "eval: exit 0, exactly one line on stdout, JSON with the documented keys" $PY - "$T/eval1" "$CK" <<'PY'
import json, sys, hashlib
lines = open(sys.argv[1]).read().splitlines(); assert len(lines) == 1, lines
e = json.loads(lines[0])
assert {"task", "split", "n", "top1", "top5", "checkpoint", "checkpoint_sha256", "config"} <= set(e), e
assert e["task"] == "classification" and e["split"] == "test" and e["n"] == 10000
assert e["checkpoint_sha256"] == hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest()
assert "task: finetune" in e["config"]
PY
check "eval agrees with the run's own eval.json (top-1)" $PY -c "
import json; a=json.load(open('$T/eval1')); b=json.load(open('$T/f1/eval.json')); assert abs(a['top1']-b['top1'])<1e-9, (a,b)"
run $MPI -np 2 $BEIT eval --checkpoint "$CK" --data "$T/fm.h5" --split test
check "eval on 2 ranks prints the identical line" cmp -s "$T/out" "$T/eval1"
run $MPI -np 3 $BEIT eval --checkpoint "$CK" --data "$T/fm.h5" --split train --batch 50
check "eval on 3 ranks, another split and batch: n = 60000" $PY -c "import json; e=json.load(open('$T/out')); assert e['n']==60000 and e['split']=='train'"
run $BEIT eval --checkpoint "$T/nonexistent.h5" --data "$T/fm.h5"
check "eval: missing checkpoint -> exit 4 naming it" bash -c "[ $rc = 4 ] && grep -q nonexistent.h5 '$T/err'"
head -c 5000 /dev/urandom > "$T/garbage.h5"
run $BEIT eval --checkpoint "$T/garbage.h5" --data "$T/fm.h5"
check "eval: a file that is not HDF5 -> exit 4" [ "$rc" = 4 ]
run $BEIT eval --checkpoint "$CK" --data "$T/none.h5"
check "eval: unreadable data -> exit 3 naming it" bash -c "[ $rc = 3 ] && grep -q none.h5 '$T/err'"
run $BEIT eval --checkpoint "$PRE" --data "$T/fm.h5"
check "eval: a pre-training checkpoint -> exit 5 (no classifier)" bash -c "[ $rc = 5 ] && grep -q 'beit-pretrain' '$T/err'"
run $BEIT eval --checkpoint "$CK" --data "$T/fm.h5" --split nosuch
check "eval: a split the store lacks -> exit 3" bash -c "[ $rc = 3 ] && grep -q nosuch '$T/err'"
$PY - "$T/fm.h5" "$T/fm5.h5" <<'PY'
import h5py, shutil, sys, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:   # 5 classes: a model/data mismatch for a 10-class head
    f.attrs["num_classes"] = np.int32(5)
    f.attrs["class_names"] = [s for s in f.attrs["class_names"][:5]]
    for s in ("train", "test"):
        lab = f[s + "/labels"][()]; lab %= 5; f[s + "/labels"][...] = lab
PY
run $BEIT eval --checkpoint "$CK" --data "$T/fm5.h5"
check "eval: data with another class count -> exit 5 naming both" bash -c "[ $rc = 5 ] && grep -q '5 classes' '$T/err'"

run env RANKS=2 BEIT="$BEIT" "$SRC/jobs/eval-checkpoints.sh" "$T/f2" "$T/fm.h5" test
check "jobs/eval-checkpoints.sh: a TSV table of the run's checkpoints from beit eval's JSON lines" \
  bash -c "[ $rc = 0 ] && head -1 '$T/out' | grep -q '^step.top1.top5' && grep -q '^8.' '$T/out' && [ \$(wc -l < '$T/f2/eval-test.jsonl') = 1 ]"

$PY - "$CK" "$T/old.h5" <<'PY'
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:  # the config as an earlier beit stored it
    c = f.attrs["config"]; c = c.decode() if isinstance(c, bytes) else c
    assert "probe_blocks: [-1]" in c
    f.attrs["config"] = c.replace("probe_blocks: [-1]", "probe_block: -1")
PY
run $BEIT eval --checkpoint "$T/old.h5" --data "$T/fm.h5"
check "a checkpoint whose stored config has a retired key (finetune.probe_block) still loads" [ "$rc" = 0 ]
printf 'task: probe\nfinetune: {probe_block: 3}\n' > "$T/retired.yaml"
run $BEIT check -c "$T/retired.yaml"
check "a job file with the retired key: exit 2 naming line, column and the replacement" \
  bash -c "[ $rc = 2 ] && grep -q 'retired.yaml:2:12' '$T/err' && grep -q 'finetune.probe_blocks' '$T/err'"

# bad inputs to fine-tuning
run $BEIT finetune -c "$T/ft.yaml" --init "$PRE" --out "$T/bad1" --steps 1 --set model.embed_dim=36
check "--init with a checkpoint of another shape: exit 5 naming the tensor and both shapes" \
  bash -c "[ $rc = 5 ] && grep -q 'tensor params/' '$T/err' && grep -q '24' '$T/err' && grep -q '36' '$T/err'"
run $BEIT finetune -c "$T/ft.yaml" --init "$T/dvae/ckpt-00000003.h5" --out "$T/bad2" --steps 1
check "--init with a dVAE checkpoint: exit 5" bash -c "[ $rc = 5 ] && grep -q \"'dvae'\" '$T/err'"
$PY - "$T/fm.h5" "$T/fmbad.h5" <<'PY'
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    lab = f["train/labels"][()]; lab[7] = 200; f["train/labels"][...] = lab
PY
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/bad3" --steps 2 --set data.path="$T/fmbad.h5"
check "labels out of range in the data: exit 3 naming the dataset" bash -c "[ $rc = 3 ] && grep -q 'labels' '$T/err' && grep -q fmbad.h5 '$T/err'"
run $BEIT eval --checkpoint "$CK" --data "$T/fmbad.h5" --split train
check "eval on data with a bad label: exit 3" [ "$rc" = 3 ]

# probe
cat > "$T/probe.yaml" <<YAML
task: probe
data: {path: $T/fm.h5, subset: 1000}
model: $MODEL
finetune: {probe_blocks: [1, -1]}
train: {epochs: 5, global_batch: 100}
optim: {lr: 1.0e-2, weight_decay: 1.0e-4, warmup_steps: 0}
YAML
run $MPI -np 2 $BEIT probe -c "$T/probe.yaml" --init "$PRE" --out "$T/probe"
# (24 mean-pooled channels of a 6-step model are weak features: ~25-30%, chance is 10%)
check "probe on 2 ranks: one JSON line per block with test top-1 above chance (> 15%)" $PY - "$T/out" "$T/probe" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
assert [r["block"] for r in rows] == [1, 2], rows
assert all(r["task"] == "probe" and r["n"] == 10000 and r["top1"] > 0.15 for r in rows), rows
m = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
assert len(m) == 10 and all("test_top1" in r for r in m), m
PY
cp "$T/out" "$T/probe2"
run $BEIT probe -c "$T/probe.yaml" --init "$PRE" --out "$T/probe1"
check "probe on 1 rank gives the same accuracies as on 2" bash -c "diff <(grep '^{' '$T/out') <(grep '^{' '$T/probe2')"
check "probe: eval.json holds the same rows (written whole at the end, no temporary left)" \
  bash -c "diff '$T/probe1/eval.json' <(grep '^{' '$T/probe2') && ! ls -a '$T/probe1' | grep -q tmp"
run $BEIT probe -c "$T/probe.yaml" --init "$PRE" --out "$T/probe3" --set train.eval_every=5
check "probe with train.eval_every: exit 2 naming the key" bash -c "[ $rc = 2 ] && grep -q 'train.eval_every' '$T/err'"

# attention maps: the PNG, and the maps as numbers (--h5) checked against the softmax's
# invariants and an independent PyTorch forward (tools/torchref via tools/load_checkpoint.py)
run $BEIT attn --checkpoint "$PRE" --data "$T/fm.h5" --index 0,5,2 --ref 3,3 --ref 0,6 --png "$T/attn.png" --h5 "$T/attn.h5"
check "attn on a pre-training checkpoint: a PNG of 3 rows x (image + 2 maps)" $PY - "$T/attn.png" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1]); w, h = im.size
U = 28 * 8
assert (w, h) == (3 * U + 4 * 4, 3 * U + 4 * 4), im.size  # 4-pixel gaps between and around
PY
# The code averages each head's softmax row (over CLS + 49 patch keys) over the heads and keeps
# the 49 patch keys: a map sums to 1 - cls (cls = the same average on the CLS key), below 1.
check "attn --h5: maps [3 images, 2 refs, 7, 7] float32 >= 0; every head's row sums to 1, every map to 1 - cls < 1 (within 1e-5)" \
  $PY - "$T/attn.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
maps, cls, sums = f["maps"][()], f["cls"][()], f["row_sums"][()]
assert maps.shape == (3, 2, 7, 7) and maps.dtype == np.float32, (maps.shape, maps.dtype)
assert cls.shape == (3, 2) and sums.shape == (3, 2, 3), (cls.shape, sums.shape)
assert list(f.attrs["index"]) == [0, 5, 2] and list(f.attrs["ref_y"]) == [3, 0] and list(f.attrs["ref_x"]) == [3, 6]
assert f.attrs["layer"] == 2 and f.attrs["head"] == -1
e1, e2 = float(np.abs(sums - 1).max()), float(np.abs(maps.sum((2, 3)) + cls - 1).max())
print("# head rows: |sum - 1| <= %.1e; maps: |sum + cls - 1| <= %.1e; cls in [%.4f, %.4f]" % (e1, e2, cls.min(), cls.max()))
assert e1 <= 1e-5 and e2 <= 1e-5 and maps.min() >= 0 and 0 < cls.min() and cls.max() < 1
PY
check "attn --h5: the maps equal a PyTorch forward of the checkpoint (within 1e-5), and the two references' maps differ (by more than 100x that difference)" \
  $PY - "$SRC" "$PRE" "$T/fm.h5" "$T/attn.h5" <<'PY'
import sys, h5py, numpy as np, torch, yaml
src, ck_path, data, h5 = sys.argv[1:5]
sys.path.insert(0, src + "/tools")
from load_checkpoint import attr, build
f = h5py.File(h5, "r")
maps, idx, ry, rx, layer = f["maps"][()], list(f.attrs["index"]), f.attrs["ref_y"], f.attrs["ref_x"], int(f.attrs["layer"])
ck = h5py.File(ck_path, "r")
model = build(attr(ck, "kind"), yaml.safe_load(attr(ck, "config")))
model.load_state_dict({k: torch.from_numpy(ck["params"][k][()]) for k in ck["params"]}, strict=True)
model.eval()
d = h5py.File(data, "r")   # the whole 28x28 image, normalised with the store's statistics
img = np.stack([d["test/images"][i] for i in idx]).astype(np.float32) / 255
x = (img - d.attrs["mean"].astype(np.float32)) / d.attrs["std"].astype(np.float32)
keep = {"attn": [], "blocks": []}
with torch.no_grad():
    model.forward_features(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), None, keep=keep)
att = keep["attn"][layer - 1].numpy()   # [B, heads, T, T]
g = maps.shape[2]
want = np.stack([att[:, :, 1 + y * g + xx, 1:].mean(1).reshape(-1, g, g) for y, xx in zip(ry, rx)], 1)
err, apart = float(np.abs(want - maps).max()), float(np.abs(maps[:, 0] - maps[:, 1]).max())
print("# vs PyTorch: max abs difference %.2e; between the references: %.2e (values up to %.3f)" % (err, apart, maps.max()))
assert err <= 1e-5 and apart > 100 * max(err, 1e-8)
PY
run $BEIT attn --checkpoint "$CK" --data "$T/fm.h5" --index 4 --ref 2,2 --layer 1 --head 0 --png "$T/attn2.png" --h5 "$T/attn2.h5"
check "attn on a fine-tuned checkpoint, block 1, head 0: a PNG, and that head's map sums to 1 - cls (within 1e-5)" \
  bash -c "[ $rc = 0 ] && [ -s '$T/attn2.png' ] && $PY -c \"
import h5py, numpy as np
f = h5py.File('$T/attn2.h5', 'r'); m, c = f['maps'][()], f['cls'][()]
assert m.shape == (1, 1, 7, 7) and f.attrs['head'] == 0 and f.attrs['layer'] == 1
assert abs(float(m.sum() + c.sum()) - 1) <= 1e-5 and 0 < c.min() < 1\""
run $BEIT attn --checkpoint "$CK" --data "$T/fm.h5" --index 4 --ref 2,2
check "attn without --png or --h5: exit 2 saying what is required" bash -c "[ $rc = 2 ] && grep -q -- '--png (or --h5)' '$T/err'"
run $BEIT attn --checkpoint "$CK" --data "$T/fm.h5" --index 4 --ref 9,2 --png "$T/attn3.png"
check "attn: a reference outside the 7x7 grid -> exit 2 naming the grid" bash -c "[ $rc = 2 ] && grep -q '7x7' '$T/err'"

# segmentation on a mosaic store
$BEIT data mosaic --data "$T/fm.h5" --seed 5 --train 600 --test 200 "$T/mosaic.h5" >/dev/null 2>&1
cat > "$T/seg.yaml" <<YAML
task: finetune
data: {path: $T/mosaic.h5}
aug: {crop_scale_min: 0.5}
model: $MODEL
finetune: {task: segmentation, seg_blocks: [1, 2, 2], decoder_dim: 8, layer_decay: 0.65}
train: {epochs: 1, global_batch: 32, log_every: 1}
optim: {lr: 2.0e-3, warmup_steps: 2}
YAML
run $MPI -np 1 $BEIT finetune -c "$T/seg.yaml" --init "$PRE" --out "$T/s1" --steps 5
check "segmentation fine-tuning (taps 1, 2, 2): eval.json with mIoU and pixel accuracy" \
  bash -c "[ $rc = 0 ] && $PY -c \"import json; e=json.load(open('$T/s1/eval.json')); assert e['task']=='segmentation' and e['n']==200 and 0<=e['miou']<=1 and 0<e['pixel_acc']<=1, e\""
run $MPI -np 2 $BEIT finetune -c "$T/seg.yaml" --init "$PRE" --out "$T/s2" --steps 5
check "segmentation, 1 rank vs 2 ranks: 5 losses within 1e-4 relative" $PY - "$T/s1" "$T/s2" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
w = max(abs(x - y) / abs(x) for x, y in zip(a, b)); print("# worst", w); assert len(a) == len(b) == 5 and w <= 1e-4
PY
SCK="$T/s1/ckpt-00000005.h5"
run $MPI -np 2 $BEIT eval --checkpoint "$SCK" --data "$T/mosaic.h5" --png "$T/seg.png"
check "eval of a segmentation checkpoint: miou and pixel_acc, the run's own numbers, a PNG (image | truth | prediction)" $PY - "$T/out" "$T/s1/eval.json" "$T/seg.png" <<'PY'
import json, sys
from PIL import Image
e = json.loads(open(sys.argv[1]).read()); r = json.load(open(sys.argv[2]))
assert e["task"] == "segmentation" and e["n"] == 200 and abs(e["miou"] - r["miou"]) < 1e-9, (e, r)
im = Image.open(sys.argv[3]); assert im.size == (3 * 112 + 4 * 2, 8 * 112 + 9 * 2), im.size
PY
run $BEIT eval --checkpoint "$SCK" --data "$T/fm.h5"
check "eval: a segmentation checkpoint on a store without pixel labels -> exit 5" bash -c "[ $rc = 5 ] && grep -q 'pixel labels' '$T/err'"
run $BEIT finetune -c "$T/seg.yaml" --init "$CK" --out "$T/bad4" --steps 1
check "a classification checkpoint passed to a segmentation job: exit 5 naming its kind" \
  bash -c "[ $rc = 5 ] && grep -q \"'finetune-cls'\" '$T/err' && grep -q segmentation '$T/err'"
run $BEIT finetune -c "$T/seg.yaml" --init none --out "$T/bad5" --steps 1 --set data.path="$T/fm.h5"
check "a segmentation job on a store without masks: exit 5" bash -c "[ $rc = 5 ] && grep -q 'mosaic' '$T/err'"
$PY - "$T/mosaic.h5" "$T/mosbad.h5" <<'PY'
import h5py, shutil, sys
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:
    m = f["train/masks"][3]; m[10, 10] = 42; f["train/masks"][3] = m
PY
run $BEIT finetune -c "$T/seg.yaml" --init none --out "$T/bad6" --steps 2 --set data.path="$T/mosbad.h5"
check "pixel labels out of range: exit 3 naming /train/masks" bash -c "[ $rc = 3 ] && grep -q '/train/masks' '$T/err'"

finish
