#!/usr/bin/env bash
# The paper-scale job files end to end at a tiny size: an ImageNet-style tree of random 64x64
# JPEGs (gen_images random) -> beit data import imagenet -> dvae -> tokenize -> pretrain-base ->
# finetune-base -> eval -> attn, plus probe-base and segment-base (on a generated store with
# per-pixel labels), every stage FROM jobs/imagenet/*.yaml on 2 ranks; --set changes only sizes,
# widths, depth, batch and the paths (the tokenizer at 32 with 4 groups gives the 4x4 grid of
# a 64/16 ViT, as 112 gives the 14x14 of 224/16), --steps 2. The resolved configs are checked
# to keep the job files' recipe values.
#   imagenet_chain.sh BEIT SRCDIR GEN_IMAGES
BEIT=$1
SRC=$2
GEN=$3
. "$SRC/tests/tap.sh"
J="$SRC/jobs/imagenet"
t0=$(date +%s)
DV="--set dvae.image_size=32 --set dvae.widths=[8,8,8,8]"
M="--set model.img_size=64 --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2"
SZ="--set train.global_batch=4 --set train.micro_batch=0"
# recipe RUN WANT KEY...: the values of "section.key"s in the run's resolved config
# (RUN/config.yaml), space-separated, equal WANT
recipe() {
  local got
  got=$($PY -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1] + '/config.yaml'))
print(' '.join(str(c[k.split('.')[0]][k.split('.')[1]]) for k in sys.argv[2:]))" "$1" "${@:3}")
  echo "# $1: $got"
  [ "$got" = "$2" ]
}

"$GEN" "$T/in" random 64 4 2 2
run $BEIT data import imagenet "$T/in" "$T/in.h5" --size 64
check "import imagenet: train 8, test 4 (val/) in one store" \
  bash -c "[ $rc = 0 ] && grep -qF 'train 8, test 4 images of 64x64x3, 2 classes' '$T/out'"

run $MPI -np 2 $BEIT dvae train -c "$J/dvae.yaml" --out "$T/dvae" --set data.path="$T/in.h5" $DV $SZ --steps 2
check "dvae.yaml, 2 steps: a checkpoint and the eval on the test split" \
  bash -c "[ $rc = 0 ] && [ -f '$T/dvae/ckpt-00000002.h5' ] && grep -q \"eval on 'test'\" '$T/out'"
check "the dVAE ran the job's recipe (logit-Laplace, KL 6.6, V 8192, 2 blocks per group)" \
  recipe "$T/dvae" "logit_laplace 6.6 8192 2" dvae.recon dvae.kl_weight dvae.vocab_size dvae.blocks_per_group

run $MPI -np 2 $BEIT tokenize -c "$J/tokenize.yaml" --checkpoint "$T/dvae/ckpt-00000002.h5" --data "$T/in.h5" \
  --tokens "$T/tok.h5" $DV
check "tokenize.yaml: 10 views of a 4x4 grid over 8192 for both splits" $PY - "$T/tok.h5" <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f["train/tokens"].shape == (8, 10, 4, 4) and f["test/tokens"].shape == (4, 10, 4, 4), f["train/tokens"].shape
assert int(f.attrs["vocab_size"]) == 8192 and int(f.attrs["views"]) == 10
PY

run $MPI -np 2 $BEIT pretrain -c "$J/pretrain-base.yaml" --out "$T/pre" --set data.path="$T/in.h5" \
  --set data.tokens="$T/tok.h5" $M --set mask.num_patches=6 --set mask.min_patches=2 $SZ --steps 2
check "pretrain-base.yaml, 2 steps: checkpoint, masked-token eval on the test split" \
  bash -c "[ $rc = 0 ] && [ -f '$T/pre/ckpt-00000002.h5' ] && grep -q \"eval on 'test'\" '$T/out'"
check "pre-training kept the job's recipe (lr 1.5e-3, clip 3, drop path 0.1, LayerScale 0.1, patch 16)" \
  recipe "$T/pre" "0.0015 3.0 0.1 0.1 16" optim.lr optim.clip_grad model.drop_path model.layer_scale_init model.patch_size
PRE="$T/pre/ckpt-00000002.h5"

run $MPI -np 2 $BEIT finetune -c "$J/finetune-base.yaml" --init "$PRE" --out "$T/ft" --set data.path="$T/in.h5" $M $SZ --steps 2
check "finetune-base.yaml, 2 steps from the pre-training checkpoint: eval.json on the 4 test images" \
  bash -c "[ $rc = 0 ] && $PY -c \"import json; e = json.load(open('$T/ft/eval.json')); assert e['n'] == 4 and e['split'] == 'test', e\""
check "fine-tuning kept the job's recipe (layer decay 0.65, smoothing 0.1, lr 4e-3, mean pool, 20 warm-up epochs)" \
  recipe "$T/ft" "0.65 0.1 0.004 mean 20.0" finetune.layer_decay finetune.label_smoothing optim.lr finetune.pool optim.warmup_epochs

run $MPI -np 2 $BEIT eval --checkpoint "$T/ft/ckpt-00000002.h5" --data "$T/in.h5"
check "beit eval of the fine-tuned checkpoint: the test split, the same top-1 as the run's eval.json" \
  $PY -c "import json; a = json.loads(open('$T/out').read()); b = json.load(open('$T/ft/eval.json')); assert a['split'] == 'test' and a['n'] == 4 and a['top1'] == b['top1'], (a, b)"

# peak resident memory (kB) of a command run without mpirun (stdout and stderr to $T/out, $T/err)
maxrss_kb() {
  $PY -c "import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=open('$T/out', 'w'), stderr=open('$T/err', 'w'))
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if r.returncode == 0 else -1)" "$@"
}
# the model allocates activations for the whole batch (ViT-B/224: ~150 MB per image): a batch
# above the data (here 4096 images for 4) cost 1.1 GB for this tiny model before it was capped
kb=$(maxrss_kb $BEIT eval --checkpoint "$T/ft/ckpt-00000002.h5" --data "$T/in.h5" --batch 4096)
check "beit eval --batch 4096 on 4 images allocates for 4 (peak RSS $kb kB < 200 MB)" \
  bash -c "[ $kb -gt 0 ] && [ $kb -lt 200000 ]"

run $BEIT attn --checkpoint "$PRE" --data "$T/in.h5" --index 0,1 --ref 1,1 --ref 2,3 --png "$T/attn.png"
check "beit attn of the pre-trained model: a PNG" bash -c "[ $rc = 0 ] && [ -s '$T/attn.png' ]"

run $MPI -np 2 $BEIT probe -c "$J/probe-base.yaml" --init "$PRE" --out "$T/probe" --set data.path="$T/in.h5" $M \
  --set finetune.probe_blocks=[1,2] $SZ --set train.epochs=1
check "probe-base.yaml (blocks 1, 2 of the tiny encoder, 1 epoch): one result per block" \
  bash -c "[ $rc = 0 ] && [ \$(grep -c '\"task\": \"probe\"' '$T/out') = 2 ]"

kb=$(maxrss_kb $BEIT probe -c "$J/probe-base.yaml" --init "$PRE" --out "$T/probe1" --set data.path="$T/in.h5" $M \
  --set finetune.probe_blocks=[2] --set train.global_batch=4096 --set train.micro_batch=4096 --set train.epochs=1)
check "beit probe with train.micro_batch 4096 on 8 images allocates for 8 (peak RSS $kb kB < 200 MB)" \
  bash -c "[ $kb -gt 0 ] && [ $kb -lt 200000 ]"

"$GEN" "$T/seg.h5" segstore 64 8 4 5
run $MPI -np 2 $BEIT finetune -c "$J/segment-base.yaml" --init "$PRE" --out "$T/seg" --set data.path="$T/seg.h5" $M \
  --set finetune.seg_blocks=[1,2,1,2] $SZ --steps 2
check "segment-base.yaml, 2 steps on a 64x64 store with per-pixel labels: mIoU in eval.json" \
  bash -c "[ $rc = 0 ] && $PY -c \"import json; e = json.load(open('$T/seg/eval.json')); assert e['task'] == 'segmentation' and 0 <= e['miou'] <= 1, e\""
check "segmentation kept the job's recipe (layer decay 0.65, lr 7e-4, 1500 warm-up steps)" \
  recipe "$T/seg" "0.65 0.0007 1500" finetune.layer_decay optim.lr optim.warmup_steps
echo "# the chain took $(($(date +%s) - t0)) s"
finish
