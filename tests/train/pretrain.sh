#!/usr/bin/env bash
# beit pretrain end to end with a tiny tokenizer and a tiny ViT on a Fashion-MNIST subset:
# 1 rank = 2 ranks, gradient accumulation = one step, both variants and targets, synthetic
# data, NaN stop, and bad inputs (token store of another V / grid / dataset, masks larger than
# the grid, checkpoints of another model) that leave the existing checkpoints untouched.
#   pretrain.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
cat > "$T/dvae.yaml" <<YAML
task: dvae
data: {path: $T/fm.h5, subset: 512}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}
train: {epochs: 1, global_batch: 64, log_every: 1}
optim: {lr: 3.0e-3, warmup_steps: 2}
YAML
$BEIT dvae train -c "$T/dvae.yaml" --out "$T/dvae" --steps 3 >/dev/null 2>&1
cat > "$T/tok.yaml" <<YAML
task: tokenize
data: {path: $T/fm.h5, subset: 600}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}
tokenize: {views: 2, batch: 100}
YAML
run $MPI -np 2 $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/dvae/ckpt-00000003.h5" --data "$T/fm.h5" --tokens "$T/tok.h5"
check "tokenize a subset (2 views) for the test" [ "$rc" = 0 ]

cat > "$T/pre.yaml" <<YAML
task: pretrain
seed: 1
data: {path: $T/fm.h5, tokens: $T/tok.h5, subset: 600}
model: {arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3,
        vocab_size: 64, drop_path: 0.1}
mask: {type: block, num_patches: 20, min_patches: 4}
train: {epochs: 2, global_batch: 32, log_every: 1, ckpt_every: 10}
optim: {lr: 2.0e-3, warmup_steps: 3}
YAML
loss_close() { # A B N TOL: the first N losses of two runs agree within TOL relative
  $PY - "$1/metrics.jsonl" "$2/metrics.jsonl" "$3" "$4" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])][: int(sys.argv[3])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])][: int(sys.argv[3])]
assert len(a) == len(b) == int(sys.argv[3]), (len(a), len(b))
w = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"# worst relative difference {w:.2e}")
assert w <= float(sys.argv[4]), w
PY
}
run $MPI -np 1 $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --steps 20
check "1 rank: 20 steps" [ "$rc" = 0 ]
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/p2" --steps 20
check "2 ranks: 20 steps, parameters identical on both ranks at the checkpoint" \
  bash -c "[ $rc = 0 ] && grep -q 'identical on all 2 ranks' '$T/out'"
check "1 rank vs 2 ranks, same seed and global batch: 20 losses within 1e-4 relative" loss_close "$T/p1" "$T/p2" 20 1e-4
run $MPI -np 1 $BEIT pretrain -c "$T/pre.yaml" --out "$T/p3" --steps 20 --set train.micro_batch=8
check "gradient accumulation (micro_batch 8 of 32) = one step: 20 losses within 1e-4 relative" \
  bash -c "[ $rc = 0 ] && $(declare -f loss_close); PY=$PY loss_close '$T/p1' '$T/p3' 20 1e-4"
check "loss starts near ln V = 4.16 and falls" $PY -c "
import json, math; r=[json.loads(l) for l in open('$T/p1/metrics.jsonl')]
assert abs(r[0]['loss'] - math.log(64)) < 0.3, r[0]['loss']; assert r[-1]['loss'] < r[0]['loss'], (r[0]['loss'], r[-1]['loss'])
assert all('mim_acc' in x and 'lr' in x and 'images_per_s' in x for x in r)"
check "eval.json: masked-token accuracy, baseline and marginal entropy" $PY -c "
import json; e=json.load(open('$T/p1/eval.json')); assert {'mim_acc','majority_acc','marginal_entropy','loss'} <= set(e), e"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pe" --steps 6 --set train.eval_every=3
check "train.eval_every 3: eval.jsonl rows at steps 3 and 6 with masked-token accuracy; the last = eval.json" $PY -c "
import json; r=[json.loads(l) for l in open('$T/pe/eval.jsonl')]; e=json.load(open('$T/pe/eval.json'))
assert [x['step'] for x in r] == [3, 6] and all('mim_acc' in x for x in r) and r[-1]['mim_acc'] == e['mim_acc'], (r, e)"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pe2" --steps 6 --set train.eval_every=3 --set pretrain.target=pixels --set data.tokens=
check "train.eval_every without a token store to evaluate on: exit 2 naming it" \
  bash -c "[ $rc = 2 ] && grep -q 'train.eval_every = 3' '$T/err' && grep -q 'data.tokens' '$T/err'"
run $PY "$SRC/tools/load_checkpoint.py" "$T/p1/ckpt-00000020.h5"
check "PyTorch loads the pre-training checkpoint with strict=True" bash -c "[ $rc = 0 ] && grep -q strict=True '$T/out'"

# the token variants learn: 20 steps logged every 5, the last logged loss (the mean of steps
# 16-20) at least 20% below the first (step 1, ~ln V). Measured over seeds 1-3: last/first
# 0.66-0.69 for arch=vit and mask.type=random (and for the default beit/block).
for v in "model.arch=vit" "mask.type=random"; do
  run $BEIT pretrain -c "$T/pre.yaml" --out "$T/v-$v" --steps 20 --log-every 5 --set "$v"
  check "variant $v learns: the last logged loss < 0.8 x the first" bash -c "[ $rc = 0 ] && $PY -c \"
import json; r = [json.loads(l) for l in open('$T/v-$v/metrics.jsonl')]
a, b = r[0]['loss'], r[-1]['loss']; print('# steps %d..%d: loss %.4f -> %.4f (x %.3f)' % (r[0]['step'], r[-1]['step'], a, b, b / a))
assert r[-1]['step'] == 20 and b < 0.8 * a\""
done
# (pixel regression of per-patch normalised pixels does not learn measurably at this size in
# 20-60 steps -- last/first 0.90-1.06 over seeds, learning rates and subsets -- so it is only run)
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/v-pixels" --steps 3 --set pretrain.target=pixels
check "variant pretrain.target=pixels runs" [ "$rc" = 0 ]
check "pixel regression with a token store: eval.json has the test pixel MSE" $PY -c "
import json, math; e=json.load(open('$T/v-pixels/eval.json')); assert e['target'] == 'pixels' and math.isfinite(e['loss']) and e['masked'] > 0, e"
# With a token store, pixel regression takes its images from the store's views, as the token
# target does: with one stored view (the whole image) and aug on, the run equals the run without
# augmentation; without the store, aug on draws its own crops and the run differs.
run $MPI -np 2 $BEIT tokenize -c "$T/tok.yaml" --checkpoint "$T/dvae/ckpt-00000003.h5" --data "$T/fm.h5" \
  --tokens "$T/tok1.h5" --set tokenize.views=1
check "tokenize with 1 view" [ "$rc" = 0 ]
PXA="--steps 6 --set pretrain.target=pixels --set aug.enable=true --set aug.type=pad_crop --set aug.padding=2 --set aug.flip=true"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pv-store" $PXA --set data.tokens="$T/tok1.h5"
check "pixel regression on the store's views says so" bash -c "[ $rc = 0 ] && grep -q 'pixel targets on the 1 stored view per image' '$T/out'"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pv-noaug" --steps 6 --set pretrain.target=pixels --set data.tokens= --set aug.enable=false
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/pv-fresh" $PXA --set data.tokens=
check "pixel targets: 1 stored view + aug = no aug (6 losses equal); fresh crops differ" $PY -c "
import json
l = lambda d: [json.loads(x)['loss'] for x in open('$T/' + d + '/metrics.jsonl')]
a, b, c = l('pv-store'), l('pv-noaug'), l('pv-fresh'); print('#', a[-1], b[-1], c[-1])
assert len(a) == len(b) == len(c) == 6 and a == b and a != c"
# Pixel regression learns without the per-patch normalisation (the targets keep each patch's
# brightness, which the visible patches predict): batch 64, lr 1e-2, 60 steps; the mean loss
# of the last 10 steps < 0.8 x the first 10. Measured over seeds 1-3: x 0.62-0.64 (block
# masks), x 0.46-0.50 (random masks) on crops drawn on the fly; on the token store's 2 views
# (seed 1): x 0.69 (block), x 0.54 (random); with optim.lr=0: x 0.99-1.07 (the checks fail).
for v in block random; do
  run $BEIT pretrain -c "$T/pre.yaml" --out "$T/px-$v" --steps 60 --set pretrain.target=pixels \
    --set pretrain.pixel_norm_per_patch=false --set mask.type=$v --set train.global_batch=64 \
    --set train.epochs=20 --set optim.lr=1e-2
  check "pixel regression learns ($v masks): the mean loss of the last 10 of 60 steps < 0.8 x the first 10" bash -c "[ $rc = 0 ] && $PY -c \"
import json; r = [json.loads(l) for l in open('$T/px-$v/metrics.jsonl')]
a = sum(x['loss'] for x in r[:10]) / 10; b = sum(x['loss'] for x in r[-10:]) / 10
print('# steps 1-10: loss %.4f; steps 51-60: %.4f (x %.3f)' % (a, b, b / a))
assert [x['step'] for x in r] == list(range(1, 61)) and b < 0.8 * a\""
done
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/syn" --steps 2 --set data=synthetic --set data.tokens=
check "data: synthetic runs without a store" [ "$rc" = 0 ]

# bad inputs: nothing already written is lost
before=$(sha256sum "$T/p1/ckpt-00000020.h5")
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --set model.vocab_size=128
check "token store with another V: exit 5 naming both" bash -c "[ $rc = 5 ] && grep -q 'V = 64' '$T/err' && grep -q '128' '$T/err'"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --set model.patch_size=7 --set mask.num_patches=6 --set mask.min_patches=2
check "token store with another grid: exit 5" bash -c "[ $rc = 5 ] && grep -q 'grid' '$T/err'"
$BEIT data import fashion-mnist "$T/fm2.h5" >/dev/null 2>&1
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --set data.path="$T/fm2.h5"
check "token store of another dataset (uuid): exit 5" bash -c "[ $rc = 5 ] && grep -q 'dataset' '$T/err'"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --set mask.num_patches=50
check "more masked patches than the 7x7 grid: exit 2 naming the grid" bash -c "[ $rc = 2 ] && grep -q '49' '$T/err'"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --resume "$T/dvae/ckpt-00000003.h5"
check "resume from a dVAE checkpoint: exit 5" [ "$rc" = 5 ]
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --resume auto --set model.embed_dim=36
check "resume from a checkpoint of another shape: exit 5 naming the tensor" \
  bash -c "[ $rc = 5 ] && grep -q 'tensor params/' '$T/err'"
check "the run's checkpoint is untouched by the failed runs" bash -c "[ \"\$(sha256sum '$T/p1/ckpt-00000020.h5')\" = '$before' ]"
# weights of 1e25 overflow float32 at once: the run must stop, not train on Inf
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/nan" --set model.init_std=1e25 --steps 5
check "NaN/Inf: exit 6 naming the step and the loss" bash -c "[ $rc = 6 ] && grep -q 'step 1: the loss is' '$T/err'"
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/p1" --steps 2
check "a new run into a directory with checkpoints, without --resume: exit 2, nothing overwritten" \
  bash -c "[ $rc = 2 ] && grep -q -- '--resume auto' '$T/err' && [ \"\$(sha256sum '$T/p1/ckpt-00000020.h5')\" = '$before' ] && [ \$(wc -l < '$T/p1/metrics.jsonl') = 20 ]"
finish
