#!/bin/bash
# `beit data`: --help and flag errors of every subcommand; the Fashion-MNIST importer on small
# synthetic IDX .gz sets (good, and damaged in each way: exit 3, message naming the file and
# the problem, nothing left at the output path); an existing output refused unless --force;
# `beit data info` on non-store files; `beit data info --verify` on a good store and on one with
# a changed pixel.
# usage: data_cli.sh BEIT GEN_IDX
BEIT=$1
GEN=$2
source "$(dirname "$0")/../tap.sh"
PY=/usr/bin/python3

# ---- help and usage errors --------------------------------------------------------------------
for sub in "" "import" "import fashion-mnist" "import folder" "info"; do
    # shellcheck disable=SC2086
    run "$BEIT" data $sub --help
    check "beit data $sub --help exits 0 with usage and an example" \
        eval '[ $rc -eq 0 ] && out_has "usage: beit data" && grep -qi "example" "$T/out"'
done
run "$BEIT" data import fashion-mnist --help
check "fashion-mnist --help lists --src, --expect-counts and --force" \
    eval 'out_has "--src DIR" && out_has "--expect-counts" && out_has "--force               replace an existing OUT.h5 (without it: exit 2, file untouched)"'
run "$BEIT" data import folder --help
check "folder --help lists --size, --split-name, --test-fraction, --force" \
    eval 'out_has "--size S" && out_has "--split-name" && out_has "--test-fraction" && out_has "--force"'

usage_case() { # desc, args...
    local desc=$1
    shift
    run "$BEIT" data "$@"
    check "usage error exits 2: $desc" eval '[ $rc -eq 2 ] && [ -s "$T/err" ]'
}
usage_case "no subcommand"
usage_case "unknown subcommand" frobnicate
usage_case "unknown dataset kind" import cifar10 "$T/x.h5"
usage_case "unknown flag (fashion-mnist)" import fashion-mnist --bogus 1 "$T/x.h5"
usage_case "unknown flag (folder)" import folder "$T" "$T/x.h5" --size 8 --frob
usage_case "unknown flag (info)" info --verbose "$T/x.h5"
usage_case "missing OUT.h5" import fashion-mnist
usage_case "folder without --size" import folder "$T" "$T/x.h5"
usage_case "folder --size 0" import folder "$T" "$T/x.h5" --size 0
usage_case "folder --test-fraction 1.5" import folder "$T" "$T/x.h5" --size 8 --test-fraction 1.5
usage_case "bad --expect-counts" import fashion-mnist --expect-counts lots "$T/x.h5"
usage_case "flag without value" import fashion-mnist "$T/x.h5" --src
run "$BEIT" data import fashion-mnist --bogus 1 "$T/x.h5"
check "unknown flag message names the flag" err_has "unknown flag --bogus"

# ---- synthetic IDX sets ---------------------------------------------------------------------------
mkdir -p "$T/good" "$T/o"
"$GEN" "$T/good" good
run "$BEIT" data import fashion-mnist --src "$T/good" --expect-counts 100:30 "$T/o/small.h5"
check "synthetic set (100/30) imports with --expect-counts 100:30" eval '[ $rc -eq 0 ] && [ -f "$T/o/small.h5" ]'
check "no temporary file left after a good import" eval '[ -z "$(ls -A "$T/o" | grep tmp)" ]'
run "$PY" - "$T/o/small.h5" <<'EOF'
import sys, h5py, numpy as np
# independent reimplementation of tests/synth.h's formulas
def pixel(i, p):
    x = ((i * 2654435761) & 0xffffffff) ^ ((p * 40503 + 17) & 0xffffffff)
    x ^= x >> 13
    x = (x * 0x5bd1e995) & 0xffffffff
    x ^= x >> 15
    return x & 0xff
f = h5py.File(sys.argv[1], "r")
for split, n in (("train", 100), ("test", 30)):
    im, lb = f[split + "/images"], f[split + "/labels"]
    assert im.shape == (n, 28, 28, 1) and im.dtype == np.uint8, (im.shape, im.dtype)
    assert lb.shape == (n,) and lb.dtype == np.uint8
    want = np.array([[pixel(i, p) for p in range(784)] for i in range(n)], np.uint8).reshape(n, 28, 28, 1)
    assert (im[...] == want).all(), split + " pixels differ"
    assert (lb[...] == np.array([(i * 7 + 3) % 10 for i in range(n)])).all(), split + " labels differ"
    assert f[split].attrs["count"] == n
tr = np.array([[pixel(i, p) for p in range(784)] for i in range(100)], np.float64) / 255
assert abs(f.attrs["mean"][0] - tr.mean()) < 1e-9 and abs(f.attrs["std"][0] - tr.std()) < 1e-9
assert f.attrs["num_classes"] == 10 and list(f.attrs["class_names"])[9] == "Ankle boot"
print("python: values, labels, counts and mean/std of the synthetic store match")
EOF
check "h5py: synthetic store holds the generated pixels, labels, counts, mean/std" eval '[ $rc -eq 0 ]'

run "$BEIT" data import fashion-mnist --src "$T/good" "$T/o/strict.h5"
check "default --expect-counts: 100 train images rejected (exit 3, expected 60000)" \
    eval '[ $rc -eq 3 ] && err_has "train-images-idx3-ubyte.gz: 100 images (expected 60000" && no_output "$T/o/strict.h5"'

bad_case() { # case, file, message
    local c=$1 file=$2 msg=$3
    mkdir -p "$T/$c"
    "$GEN" "$T/$c" "$c"
    run "$BEIT" data import fashion-mnist --src "$T/$c" --expect-counts 100:30 "$T/o/$c.h5"
    check "damaged set '$c': exit 3, names $file: \"$msg\", no output or temp file" \
        eval '[ $rc -eq 3 ] && err_has "$T/$c/$file: $msg" && no_output "$T/o/$c.h5"'
}
bad_case truncated train-images-idx3-ubyte.gz "gzip stream truncated (unexpected end of file) after"
bad_case corrupt train-images-idx3-ubyte.gz "gzip stream corrupted ("
bad_case crc train-labels-idx1-ubyte.gz "gzip stream corrupted (incorrect data check)"
bad_case magic t10k-images-idx3-ubyte.gz "bad magic number 0x00000802 (expected 0x00000803"
bad_case count t10k-labels-idx1-ubyte.gz "29 labels but $T/count/t10k-images-idx3-ubyte.gz has 30 images (expected equal counts)"
bad_case dims train-images-idx3-ubyte.gz "images are 32x32 (expected 28x28"
bad_case label train-labels-idx1-ubyte.gz "label 12 at index 57 (expected 0..9)"
bad_case extra train-labels-idx1-ubyte.gz "5 bytes of extra data after the 100 labels (expected the file to end)"
bad_case notgz t10k-labels-idx1-ubyte.gz "not a gzip file"
bad_case missing t10k-labels-idx1-ubyte.gz "cannot open: No such file"

# a real 4.4 MB .gz damaged in the middle: zlib stops partway through the data
mkdir -p "$T/realbad"
"$GEN" "$T/realbad" good
cp /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz "$T/realbad/"
f="$T/realbad/t10k-images-idx3-ubyte.gz"
size=$(stat -c %s "$f")
printf '\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none
run "$BEIT" data import fashion-mnist --src "$T/realbad" --expect-counts any "$T/o/realbad.h5"
check "real t10k images with 16 bytes overwritten mid-file: exit 3, gzip stream corrupted" \
    eval '[ $rc -eq 3 ] && err_has "$f: gzip stream corrupted" && no_output "$T/o/realbad.h5"'
cp /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz "$T/realbad/"
head -c $((size - 1000)) /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >"$f"
run "$BEIT" data import fashion-mnist --src "$T/realbad" --expect-counts any "$T/o/realbad.h5"
check "real t10k images missing their last 1000 bytes: exit 3, truncated" \
    eval '[ $rc -eq 3 ] && err_has "$f: gzip stream truncated" && no_output "$T/o/realbad.h5"'

# ---- an existing OUT.h5: refused unless --force, on every rank count ---------------------------------
uuid_of() { "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$1"; }
S=$T/o/small.h5
uuid1=$(uuid_of "$S")
sha1=$(sha256sum <"$S")
run "$BEIT" data import fashion-mnist --src "$T/good" --expect-counts 100:30 "$S"
check "import into an existing store: exit 2, names it, its uuid, untouched, --force" \
    eval '[ $rc -eq 2 ] && err_has "beit data import fashion-mnist: $S already exists: a beit dataset store (uuid $uuid1). It was left untouched; pass --force to replace it."'
check "the refused import left the store byte-identical (sha256, uuid)" \
    eval '[ "$(sha256sum <"$S")" = "$sha1" ] && [ "$(uuid_of "$S")" = "$uuid1" ]'
run "$BEIT" data import fashion-mnist --src "$T/nothere" "$S"
check "the check comes before the sources are read (a missing --src: still exit 2)" eval '[ $rc -eq 2 ] && err_has "already exists"'
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
run mpirun -np 2 "$BEIT" data import fashion-mnist --src "$T/good" --expect-counts 100:30 "$S"
check "under mpirun -np 2: exit 2, one message (rank 0), the store untouched" \
    eval '[ $rc -eq 2 ] && [ "$(grep -c "already exists" "$T/err")" = 1 ] && [ "$(sha256sum <"$S")" = "$sha1" ]'
"$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'w'); f['x']=[1,2]" "$T/o/foreign.h5"
run "$BEIT" data import fashion-mnist --src "$T/good" --expect-counts 100:30 "$T/o/foreign.h5"
check "import onto another HDF5 file: exit 2, 'an HDF5 file'" \
    eval '[ $rc -eq 2 ] && err_has "$T/o/foreign.h5 already exists: an HDF5 file. It was left untouched"'
run "$BEIT" data import fashion-mnist --src "$T/good" --expect-counts 100:30 --force "$S"
check "--force replaces it: exit 0, a new uuid, no temporary file" \
    eval '[ $rc -eq 0 ] && [ "$(uuid_of "$S")" != "$uuid1" ] && [ -z "$(ls -A "$T/o" | grep -F .tmp.)" ]'
sha2=$(sha256sum <"$S")
run "$BEIT" data import fashion-mnist --src "$T/nothere" --expect-counts 100:30 --force "$S"
check "a failed --force import (missing sources): exit 3, the old store kept byte-identical" \
    eval '[ $rc -eq 3 ] && [ "$(sha256sum <"$S")" = "$sha2" ] && [ -z "$(ls -A "$T/o" | grep -F .tmp.)" ]'

# ---- info on things that are not stores -------------------------------------------------------------
run "$BEIT" data info "$T/none.h5"
check "info on a missing file: exit 3, names it" eval '[ $rc -eq 3 ] && err_has "$T/none.h5: cannot open: No such file"'
echo hello >"$T/text.h5"
run "$BEIT" data info "$T/text.h5"
check "info on a text file: exit 3, not an HDF5 file" eval '[ $rc -eq 3 ] && err_has "$T/text.h5: not an HDF5 file"'
"$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'w'); f['x']=[1,2]; f.attrs['format']='something-else'" "$T/other.h5"
run "$BEIT" data info "$T/other.h5"
check "info on another HDF5 file: exit 3, format is not beit-dataset" \
    eval '[ $rc -eq 3 ] && err_has "$T/other.h5: attribute '"'"'format'"'"' is \"something-else\" (expected \"beit-dataset\")"'
"$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'w'); f['x']=[1,2]" "$T/plain.h5"
run "$BEIT" data info "$T/plain.h5"
check "info on an HDF5 file without attributes: exit 3, not a beit dataset store" \
    eval '[ $rc -eq 3 ] && err_has "$T/plain.h5: not a beit dataset store"'
run "$BEIT" data info "$T/o/small.h5"
check "info on the synthetic store: exit 0, layout and counts" \
    eval '[ $rc -eq 0 ] && out_has "/train/images" && out_has "[100,28,28,1]" && out_has "samples per class"'
run "$BEIT" data info --verify "$T/o/small.h5"
check "info --verify on the synthetic store: exit 0, every block read, mean/std match the images" \
    eval '[ $rc -eq 0 ] && out_has "verified: every image and label block read" && out_has "mean/std match"'
cp "$T/o/small.h5" "$T/changed.h5"
"$PY" - "$T/changed.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "a") as f:   # one pixel of the stats split changed: the mean no longer fits
    x = f["train/images"][0]; x[0, 0, 0] ^= 0x80; f["train/images"][0] = x
PY
run "$BEIT" data info "$T/changed.h5"
check "info (no --verify) on a store with one changed pixel: exit 0 (not read)" eval '[ $rc -eq 0 ]'
run "$BEIT" data info --verify "$T/changed.h5"
check "info --verify on it: exit 3, names the file and the attribute mean" \
    eval '[ $rc -eq 3 ] && err_has "$T/changed.h5: attributes '"'"'mean'"'"'[0]" && err_has "the store changed after it was written"'

finish
