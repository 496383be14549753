#!/usr/bin/env bash
# HDF5 Fletcher32 checksums on the dataset store's chunks: a damaged chunk fails its read, exit 3
# naming the store and the dataset (in training and in `beit data info --verify`).
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
run $BEIT data info --verify "$T/bad.h5"
check "data info --verify on the damaged store: exit 3 naming /train/images" bash -c "[ $rc = 3 ] && grep -q '/train/images' '$T/err'"
run $BEIT finetune -c "$T/ft.yaml" --init none --out "$T/ft-good" --steps 1
check "the undamaged store trains" [ "$rc" = 0 ]

finish
