#!/usr/bin/env bash
# Training at scale, end to end with tiny models (communication and sharded
# checkpoints), for pre-training, the dVAE and fine-tuning:
#   - overlapped gradient reduction == blocking, bit for bit, at 2 and 3 ranks (the overlapped
#     runs really posted their buckets during backward: comm_overlap in metrics.jsonl);
#   - ZeRO-1 == the replicated optimizer at 2 and 3 ranks (bit for bit; tolerance 0);
#   - exact resume (pretrain and dVAE): stopped and resumed == uninterrupted, bit for bit;
#   - elastic resume 2 -> 1 and 1 -> 3 ranks, with and without ZeRO-1: losses within 1e-5
#     relative, parameters within 1e-5 absolute of the uninterrupted run; a control resumed
#     with the optimizer state zeroed fails those tolerances; a flipped bit in the state of a
#     2-rank ZeRO-1 checkpoint is refused on resume on 3 ranks (per-tensor checksums);
#   - the sharded checkpoint is one file: /params loadable by tools/load_checkpoint.py, by
#     --init and by beit eval; the optimizer state written by every rank;
#   - --resume auto skips incomplete checkpoints (no 'complete' attribute, damaged, temporary
#     files); a failed checkpoint write exits 7 and keeps the previous checkpoint.
#   dist_train.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
MODEL="{arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64, drop_path: 0.1}"
# pre-training on pixels (a real learning signal without a tokenizer); 0.01 MiB buckets:
# several buckets in this small table
cat > "$T/pre.yaml" <<YAML
task: pretrain
seed: 1
data: {path: $T/fm.h5, subset: 512}
model: $MODEL
mask: {type: block, num_patches: 20, min_patches: 4}
pretrain: {target: pixels}
train: {epochs: 2, global_batch: 30, log_every: 1, ckpt_every: 3, keep_last: 2}
optim: {lr: 3.0e-3, warmup_steps: 2, clip_grad: 0.5}
dist: {bucket_mb: 0.01}
YAML
cat > "$T/dvae.yaml" <<YAML
task: dvae
seed: 2
data: {path: $T/fm.h5, subset: 512}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}
train: {epochs: 1, global_batch: 30, log_every: 1, ckpt_every: 3}
optim: {lr: 3.0e-3, warmup_steps: 2}
dist: {bucket_mb: 0.001}
YAML
cat > "$T/ft.yaml" <<YAML
task: finetune
seed: 3
data: {path: $T/fm.h5, subset: 512}
model: $MODEL
finetune: {task: classification, layer_decay: 0.65}
train: {epochs: 1, global_batch: 30, log_every: 1}
optim: {lr: 2.0e-3, warmup_steps: 2}
dist: {bucket_mb: 0.01}
YAML

# ckpt_checksum (include/beit/checkpoint.h) in numpy, for the checks that read or change a checkpoint
cat > "$T/ckpt_checksum.py" <<'PY'
import numpy as np
def chk(x):
    with np.errstate(over="ignore"):
        z = (np.arange(x.size, dtype=np.uint64) << np.uint64(32)) | np.ascontiguousarray(x, "<f4").view("<u4").astype(np.uint64)
        z = z + np.uint64(0x9e3779b97f4a7c15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xbf58476d1ce4e5b9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94d049bb133111eb)
        return (z ^ (z >> np.uint64(31))).sum(dtype=np.uint64)
PY

. "$SRC/tests/train/lib.sh"

# ---- overlapped == blocking, bit for bit ----
for np in 2 3; do
  run $MPI -np $np $BEIT pretrain -c "$T/pre.yaml" --out "$T/ov$np" --steps 6
  check "pretrain $np ranks, overlapped: buckets posted during the backward pass" bash -c "[ $rc = 0 ] && overlapped '$T/ov$np'"
  run $MPI -np $np $BEIT pretrain -c "$T/pre.yaml" --out "$T/bl$np" --steps 6 --set dist.overlap=false
  check "pretrain $np ranks: overlapped == blocking reduction, bit for bit (metrics, parameters, AdamW state)" \
    bash -c "[ $rc = 0 ] && same '$T/ov$np' '$T/bl$np' exact optim"
done
check "the blocking runs posted nothing during backward (comm_overlap 0)" $PY -c "
import json; assert all(json.loads(l)['comm_overlap'] == 0 for l in open('$T/bl2/metrics.jsonl'))"
check "the runs' table (pixel head) has a size not divisible by 3 ranks" $PY -c "
import h5py; n = int(h5py.File('$T/ov3/ckpt-00000006.h5')['optim'].attrs['total']); print('#', n, 'floats'); assert n % 3"
run $MPI -np 3 $BEIT pretrain -c "$T/pre.yaml" --out "$T/ovm" --steps 4 --set train.micro_batch=4
check "3 ranks, micro-batches of 4 (3 backward passes per step): only the last pass posts, all buckets" \
  bash -c "[ $rc = 0 ] && overlapped '$T/ovm'"
run $MPI -np 3 $BEIT pretrain -c "$T/pre.yaml" --out "$T/blm" --steps 4 --set train.micro_batch=4 --set dist.overlap=false
check "3 ranks, micro-batches of 4: overlapped == blocking, bit for bit" \
  bash -c "[ $rc = 0 ] && same '$T/ovm' '$T/blm' exact optim"
run $MPI -np 3 $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dov" --steps 4
check "dVAE 3 ranks, overlapped: buckets posted during the backward pass" bash -c "[ $rc = 0 ] && overlapped '$T/dov'"
run $MPI -np 3 $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dbl" --steps 4 --set dist.overlap=false
check "dVAE 3 ranks: overlapped == blocking, bit for bit" bash -c "[ $rc = 0 ] && same '$T/dov' '$T/dbl' exact optim"
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/fov" --steps 4
check "finetune 2 ranks (head first in the table), overlapped: buckets posted during backward" \
  bash -c "[ $rc = 0 ] && overlapped '$T/fov'"
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/fbl" --steps 4 --set dist.overlap=false
check "finetune 2 ranks: overlapped == blocking, bit for bit" bash -c "[ $rc = 0 ] && same '$T/fov' '$T/fbl' exact optim"

# ---- ZeRO-1 == replicated optimizer ----
for np in 2 3; do
  run $MPI -np $np $BEIT pretrain -c "$T/pre.yaml" --out "$T/z$np" --steps 6 --set dist.zero=1
  check "pretrain $np ranks, ZeRO-1: the log says the state is sharded" bash -c "[ $rc = 0 ] && grep -q 'sharded over the ranks (ZeRO-1)' '$T/out'"
  check "pretrain $np ranks: ZeRO-1 == replicated AdamW, bit for bit (tolerance 0; metrics, parameters, state)" \
    bash -c "same '$T/z$np' '$T/ov$np' exact optim"
done
run $MPI -np 3 $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dz" --steps 4 --set dist.zero=1 --set dist.overlap=false
check "dVAE 3 ranks: ZeRO-1 (blocking) == replicated (overlapped), bit for bit" bash -c "[ $rc = 0 ] && same '$T/dz' '$T/dov' exact optim"

# ---- the sharded checkpoint: one file, readable by every loader ----
check "3-rank ZeRO-1 run: its checkpoints are single files (keep_last 2: steps 3 and 6), no per-rank or temporary files" \
  bash -c "[ \"\$(ls -A '$T/z3' | grep -v -e config.yaml -e metrics.jsonl | tr '\n' ' ')\" = 'ckpt-00000003.h5 ckpt-00000006.h5 ' ]"
check "the file: complete = 1, nranks 3, /optim written by 3 ranks, flat moments over the whole table, tensors listed, checksums" $PY - "$T/z3/ckpt-00000006.h5" "$T" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); o = f["optim"]
n = int(o.attrs["total"])
assert f.attrs["complete"] == 1 and f.attrs["nranks"] == 3 and f.attrs["format_version"] == 3
assert o.attrs["writers"] == 3 and o["exp_avg_flat"].shape == (n,) and o["exp_avg_sq_flat"].shape == (n,)
assert n == sum(f["params"][k].size for k in f["params"])
v = o["exp_avg_sq_flat"][()]; assert (v > 0).mean() > 0.99, (v > 0).mean()   # every rank's shard is there
names = [l.split()[0] for l in o.attrs["tensors"].splitlines()]
assert sorted(names) == sorted(f["params"]), names
sys.path.insert(0, sys.argv[2]); from ckpt_checksum import chk
sums, m = o["checksums"][()], o["exp_avg_flat"][()]
for i, l in enumerate(o.attrs["tensors"].splitlines()):   # the 3 ranks' partial sums add up
    name, off, k = l.split(); off, k = int(off), int(k)
    assert sums[i, 0] == chk(m[off:off + k]) and sums[i, 1] == chk(v[off:off + k]), name
    assert f["params"][name].attrs["checksum"] == chk(f["params"][name][()].ravel()), name
PY
run $PY "$SRC/tools/load_checkpoint.py" "$T/z3/ckpt-00000006.h5"
check "tools/load_checkpoint.py loads the 3-rank ZeRO-1 checkpoint with strict=True" bash -c "[ $rc = 0 ] && grep -q strict=True '$T/out'"
run $MPI -np 2 $BEIT finetune -c "$T/ft.yaml" --init "$T/z3/ckpt-00000006.h5" --out "$T/fz" --steps 3 --set dist.zero=1
check "finetune --init from it, 2 ranks with ZeRO-1" bash -c "[ $rc = 0 ] && grep -q 'init from' '$T/out'"
run $MPI -np 3 $BEIT eval --checkpoint "$T/fz/ckpt-00000003.h5" --data "$T/fm.h5"
check "beit eval of the ZeRO-1 fine-tuning checkpoint on 3 ranks" bash -c "[ $rc = 0 ] && grep -q '\"top1\"' '$T/out'"

# ---- exact resume: stop after 3 steps, resume, == uninterrupted (bit for bit) ----
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/rz" --steps 3 --set dist.zero=1
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/rz" --steps 6 --resume auto --set dist.zero=1
check "pretrain 2 ranks ZeRO-1, 3 steps + resume to --steps 6: == the uninterrupted 6 steps, bit for bit (metrics, params, state)" \
  bash -c "[ $rc = 0 ] && same '$T/rz' '$T/z2' exact optim"
run $MPI -np 3 $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dr" --steps 2
run $MPI -np 3 $BEIT dvae train -c "$T/dvae.yaml" --out "$T/dr" --steps 4 --resume auto
check "dVAE 3 ranks, 2 steps + resume to --steps 4 (from a step-2 checkpoint): == the uninterrupted 4 steps, bit for bit" \
  bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000002.h5' '$T/out' && same '$T/dr' '$T/dov' exact optim"

mkdir -p "$T/v1" && head -3 "$T/z2/metrics.jsonl" > "$T/v1/metrics.jsonl"
$PY - "$T/z2/ckpt-00000003.h5" "$T/v1/ckpt-00000003.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:   # the format_version 1 layout: per-tensor moments, no 'complete'
    o = f["optim"]
    for flat, grp in (("exp_avg_flat", "exp_avg"), ("exp_avg_sq_flat", "exp_avg_sq")):
        x = o[flat][()]
        g = o.create_group(grp)
        for line in o.attrs["tensors"].splitlines():
            name, off, n = line.split(); off, n = int(off), int(n)
            g[name] = x[off:off + n].reshape(f["params"][name].shape)
        del o[flat]
    for k in list(o.attrs): del o.attrs[k]
    f.attrs["format_version"] = 1
    del f.attrs["complete"]
PY
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/v1" --steps 6 --resume auto --set dist.zero=1
check "a format_version 1 checkpoint (per-tensor moments) resumes with ZeRO-1 on 2 ranks, bit for bit" \
  bash -c "[ $rc = 0 ] && grep -q 'resumed from .*v1/ckpt-00000003.h5' '$T/out' && same '$T/v1' '$T/z2' exact optim"

# ---- elastic resume: R -> R' ranks, the same global batch and data order ----
elastic() { # NAME NP_A ZERO_A NP_B ZERO_B REF: 3 steps on NP_A, then to step 6 on NP_B, vs REF (6 steps)
  run $MPI -np $2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/$1" --steps 3 --set dist.zero=$3
  run $MPI -np $4 $BEIT pretrain -c "$T/pre.yaml" --out "$T/$1" --steps 6 --resume auto --set dist.zero=$5
  check "elastic resume $2 -> $4 ranks (zero $3 -> $5): re-sharded; losses within 1e-5, parameters within 1e-5 of $6" \
    bash -c "[ $rc = 0 ] && grep -q 're-sharded' '$T/out' && same '$T/$1' '$T/$6' 1e-5 1e-5"
}
run $MPI -np 1 $BEIT pretrain -c "$T/pre.yaml" --out "$T/one" --steps 6
elastic e21z 2 1 1 0 ov2
elastic e21 2 0 1 1 ov2
elastic e13z 1 0 3 1 one
elastic e13 1 0 3 0 one
# control: the same 2 -> 1 resume from a copy whose optimizer state is zeroed must fail
mkdir -p "$T/ctl"
cp "$T/e21z/config.yaml" "$T/ctl/"
head -3 "$T/e21z/metrics.jsonl" > "$T/ctl/metrics.jsonl"
ctl_ok=0
$PY - "$T/e21z/ckpt-00000003.h5" "$T/ctl/ckpt-00000003.h5" "$T" <<'PY' && ctl_ok=1
import shutil, sys, h5py, numpy as np
sys.path.insert(0, sys.argv[3]); from ckpt_checksum import chk   # the copy stays a valid format 3 file
shutil.copy(sys.argv[1], sys.argv[2])
with np.errstate(over="ignore"), h5py.File(sys.argv[2], "a") as f:
    o = f["optim"]
    for k in ("exp_avg_flat", "exp_avg_sq_flat"):
        o[k][...] = 0
    sums = o["checksums"][()]
    for i, line in enumerate(o.attrs["tensors"].splitlines()):
        sums[i, :] = chk(np.zeros(int(line.split()[2]), np.float32))
    o["checksums"][...] = sums
PY
check "control: a copy of the 2-rank checkpoint with its optimizer state zeroed was made" [ $ctl_ok = 1 ]
run $MPI -np 1 $BEIT pretrain -c "$T/pre.yaml" --out "$T/ctl" --steps 6 --resume auto
# the comparison must fail on a tolerance (an AssertionError), not on a missing file or another error
check "control: resuming with the optimizer state zeroed misses those tolerances (the check can fail)" \
  bash -c "[ $rc = 0 ] && [ -f '$T/ctl/ckpt-00000006.h5' ] && same '$T/ctl' '$T/ov2' 1e-5 1e-5 2>&1 | grep -q AssertionError"

# ---- a silently changed value is refused on resume, whatever the rank count ----
D="$T/flip"
mkdir -p "$D"
cp "$T/e21z/config.yaml" "$D/"
head -3 "$T/e21z/metrics.jsonl" > "$D/metrics.jsonl"
$PY - "$T/e21z/ckpt-00000003.h5" "$D/ckpt-00000003.h5" <<'PY'
import shutil, sys, h5py, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:   # one bit of one moment, the value stays finite
    x = f["optim/exp_avg_sq_flat"][()]
    x[x.size // 2:x.size // 2 + 1].view(np.uint32)[0] ^= 1
    f["optim/exp_avg_sq_flat"][...] = x
PY
run $MPI -np 3 $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 3 --resume auto --set dist.zero=1
check "a 2-rank ZeRO-1 checkpoint with one flipped bit in exp_avg_sq: resume on 3 ranks (ZeRO-1) exits 4 naming it" \
  bash -c "[ $rc = 4 ] && grep -q 'ckpt-00000003.h5: tensor exp_avg_sq of .*: checksum mismatch' '$T/err'"

# ---- incomplete checkpoints are never resumed from ----
D="$T/inc"
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 3 --set dist.zero=1
$PY - "$D/ckpt-00000003.h5" "$D/ckpt-00000009.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "a") as f:   # as if the write had stopped before its last attribute
    f.attrs["step"] = 9
    del f.attrs["complete"]
PY
head -c 3000 "$D/ckpt-00000003.h5" > "$D/ckpt-00000008.h5"   # damaged (truncated)
cp "$D/ckpt-00000003.h5" "$D/.ckpt-00000010.h5.tmp.12345"    # a killed run's temporary file
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 6 --resume auto --set dist.zero=1
check "--resume auto skips ckpt-9 (no 'complete'), ckpt-8 (damaged) and the temporary file: resumes from step 3" \
  bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000003.h5 at step 3' '$T/out' && grep -q 'ignoring .*ckpt-00000009.h5' '$T/err'"
check "... and continues exactly like the uninterrupted run (bit for bit)" \
  bash -c "same '$D' '$T/z2' exact optim"
check "the stale temporary checkpoint file was removed after the next successful write" [ ! -e "$D/.ckpt-00000010.h5.tmp.12345" ]
run $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 1 --resume "$D/ckpt-00000009.h5"
check "--resume with the incomplete file named: exit 4 saying it is incomplete" bash -c "[ $rc = 4 ] && grep -q 'incomplete checkpoint' '$T/err'"
run $BEIT eval --checkpoint "$D/ckpt-00000009.h5" --data "$T/fm.h5"
check "beit eval refuses it too (exit 4)" [ "$rc" = 4 ]

# ---- a checkpoint write that fails: exit 7, the previous checkpoint intact, no temporary file ----
D="$T/fail"
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 3 --set dist.zero=1
before=$(sha256sum "$D/ckpt-00000003.h5")
mkdir "$D/ckpt-00000006.h5"   # the final name is taken by a directory: the rename fails
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$D" --steps 6 --resume auto --set dist.zero=1
check "failed checkpoint write on 2 ranks: exit 7 naming the file, previous checkpoint intact, temporary file removed" \
  bash -c "[ $rc = 7 ] && grep -q 'cannot write checkpoint .*ckpt-00000006.h5' '$T/err' && [ \"\$(sha256sum '$D/ckpt-00000003.h5')\" = '$before' ] && [ -z \"\$(ls -A '$D' | grep tmp)\" ]"
finish
