#!/usr/bin/env bash
# HDF5 Fletcher32 checksums on the data beit writes: the dataset store's chunks and every
# checkpoint tensor (and the flat optimizer state) carry one, so a damaged chunk fails its read:
# exit 3 for a store, exit 4 for a checkpoint, naming the dataset.
#   fletcher.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

# damage N bytes in the middle of chunk K of dataset DS (file FILE): every byte inverted
damage() {
  $PY - "$1" "$2" "$3" <<'PY'
import sys, h5py
path, ds, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(path, "r") as f:
    info = f[ds].id.get_chunk_info(k)
off, size = info.byte_offset, info.size
with open(path, "r+b") as fh:
    fh.seek(off + size // 2); b = fh.read(8)
    fh.seek(off + size // 2); fh.write(bytes(x ^ 0xFF for x in b))
print("# damaged 8 bytes of %s chunk %d (%d bytes at %d)" % (ds, k, size, off))
PY
}

run $BEIT data import fashion-mnist "$T/fm.h5"
check "a store: every dataset chunked with Fletcher32" bash -c "[ $rc = 0 ] && $PY -c \"
import h5py; f = h5py.File('$T/fm.h5', 'r')
assert all(f[s + '/' + d].fletcher32 and f[s + '/' + d].chunks for s in ('train', 'test') for d in ('images', 'labels'))\""
cat > "$T/ft.yaml" <<YAML
task: finetune
data: {path: $T/fm.h5, subset: 256}
model: {arch: vit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 1, num_heads: 3}
train: {epochs: 1, global_batch: 32}
YAML
cp "$T/fm.h5" "$T/bad.h5"
damage "$T/bad.h5" train/images 0
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/ft-bad" --steps 1 --set data.path="$T/bad.h5"
check "a damaged chunk of /train/images: exit 3 naming the file and the dataset" \
  bash -c "[ $rc = 3 ] && grep -q 'bad.h5' '$T/err' && grep -q '/train/images' '$T/err'"
cp "$T/fm.h5" "$T/bad2.h5"
damage "$T/bad2.h5" train/labels 0
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/ft-bad2" --steps 1 --set data.path="$T/bad2.h5"
check "a damaged chunk of /train/labels: exit 3 naming the dataset" bash -c "[ $rc = 3 ] && grep -q '/train/labels' '$T/err'"
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/ft-good" --steps 1
check "the undamaged store trains" [ "$rc" = 0 ]

cat > "$T/pre.yaml" <<YAML
task: pretrain
data: {path: $T/fm.h5, subset: 256}
model: {arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64}
mask: {type: block, num_patches: 20, min_patches: 4}
pretrain: {target: pixels}
train: {epochs: 1, global_batch: 32, ckpt_every: 2}
YAML
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/p" --steps 2
CK="$T/p/ckpt-00000002.h5"
check "a checkpoint written by 2 ranks: every tensor and the flat optimizer state chunked with Fletcher32" \
  bash -c "[ $rc = 0 ] && $PY -c \"
import h5py; f = h5py.File('$CK', 'r'); n = []
f.visititems(lambda k, v: n.append(k) if isinstance(v, h5py.Dataset) else None)
assert len(n) > 10 and 'optim/exp_avg_flat' in n and all(f[k].fletcher32 for k in n), [k for k in n if not f[k].fletcher32]\""
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/p" --steps 4 --resume auto
check "it resumes (2 ranks)" [ "$rc" = 0 ]
cp "$CK" "$T/badck.h5"
damage "$T/badck.h5" params/blocks.0.attn.qkv.weight 0
run $BEIT pretrain -c "$T/pre.yaml" --out "$T/r1" --steps 3 --resume "$T/badck.h5"
check "a damaged tensor: exit 4 naming the file and the tensor (its read fails, before any checksum of ours)" \
  bash -c "[ $rc = 4 ] && grep -q 'badck.h5' '$T/err' && grep -q 'cannot read tensor params/blocks.0.attn.qkv.weight' '$T/err'"
cp "$CK" "$T/badopt.h5"
damage "$T/badopt.h5" optim/exp_avg_sq_flat 0
run $MPI -np 2 $BEIT pretrain -c "$T/pre.yaml" --out "$T/r2" --steps 3 --resume "$T/badopt.h5"
check "a damaged chunk of the optimizer state: exit 4 naming /optim/exp_avg_sq_flat" \
  bash -c "[ $rc = 4 ] && grep -q 'cannot read /optim/exp_avg_sq_flat' '$T/err'"
finish
