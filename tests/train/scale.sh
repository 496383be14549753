#!/usr/bin/env bash
# Scale: more ranks than cores (mpirun --oversubscribe) and a global batch of 250 that no rank
# count here divides, so the ranks' slices differ in size (the loss is the mean over the global
# batch whatever the split). Tiny pre-training on pixels, 6 steps, against 1 rank:
#   - 4 ranks (slices 62/63), 7 ranks (35/36, in micro-batches of 16), and 4 ranks with ZeRO-1:
#     losses and gradient norms within 1e-5 relative, parameters within 1e-5 absolute;
#   - elastic resume 4 -> 3 ranks (3 steps on 4, then to step 6 on 3; with and without
#     ZeRO-1): the same tolerances;
#   - control: a 1-rank run of another seed misses them (the comparison can fail).
#   scale.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
. "$SRC/tests/train/lib.sh"
t0=$SECONDS

$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
# 1000 images, 4 steps of 250 per epoch: the schedule spans 8 steps, the runs stop at 6
cat > "$T/pre.yaml" <<YAML
task: pretrain
seed: 1
data: {path: $T/fm.h5, subset: 1000}
model: {arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64, drop_path: 0.1}
mask: {type: block, num_patches: 20, min_patches: 4}
pretrain: {target: pixels}
train: {epochs: 2, global_batch: 250, log_every: 1, ckpt_every: 3}
optim: {lr: 3.0e-3, warmup_steps: 2, clip_grad: 0.5}
dist: {bucket_mb: 0.01}
YAML

run $MPI -np 1 $BEIT pretrain -c "$T/pre.yaml" --out "$T/one" --steps 6
check "reference: 1 rank, global batch 250, 6 steps" bash -c "[ $rc = 0 ] && [ -f '$T/one/ckpt-00000006.h5' ]"

scaled() { # NAME NP DESC SET...: 6 steps on NP ranks vs the 1-rank run
  local name=$1 np=$2 desc=$3
  shift 3
  run $MPI -np $np $BEIT pretrain -c "$T/pre.yaml" --out "$T/$name" --steps 6 "$@"
  check "$np ranks$desc, global batch 250 (slices of unequal size): losses within 1e-5 relative, parameters within 1e-5 of 1 rank" \
    bash -c "[ $rc = 0 ] && grep -q 'global batch 250 on $np ranks' '$T/out' && same '$T/$name' '$T/one' 1e-5 1e-5"
}
scaled r4 4 ""
scaled r7 7 " (micro-batches of 16)" --set train.micro_batch=16
scaled r4z 4 " with ZeRO-1" --set dist.zero=1

elastic() { # NAME ZERO: 3 steps on 4 ranks, then --resume auto to step 6 on 3 ranks
  run $MPI -np 4 $BEIT pretrain -c "$T/pre.yaml" --out "$T/$1" --steps 3 --set dist.zero=$2
  run $MPI -np 3 $BEIT pretrain -c "$T/pre.yaml" --out "$T/$1" --steps 6 --resume auto --set dist.zero=$2
  check "elastic resume 4 -> 3 ranks (zero $2), global batch 250: re-sharded; losses within 1e-5 relative, parameters within 1e-5 of 1 rank" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000003.h5 at step 3' '$T/out' && grep -q 're-sharded' '$T/out' &&
             same '$T/$1' '$T/one' 1e-5 1e-5"
}
elastic e43 0
elastic e43z 1

# control: another seed on 1 rank must miss the tolerances on an assertion (not on another error)
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/ctl" --steps 6 --seed 2
check "control: a run of another seed misses those tolerances (the check can fail)" \
  bash -c "[ $rc = 0 ] && same '$T/ctl' '$T/one' 1e-5 1e-5 >'$T/ctl.txt' 2>&1; grep -q '^# worst relative' '$T/ctl.txt' && grep -q AssertionError '$T/ctl.txt'"
echo "# $((SECONDS - t0)) s"
finish
