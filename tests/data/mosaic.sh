#!/bin/bash
# `beit data mosaic` and per-pixel masks in the dataset store: --help and flag errors; a mosaic of
# the real Fashion-MNIST store (--train 2000 --test 500) checked with h5py (shapes, attributes,
# mask/image/label invariants, and the first samples of each split re-derived in Python from the
# documented recipe with its own Philox); determinism (same seed: the same content; another seed:
# different); `beit data info` (masks dataset, pixel frequencies); damaged stores (a mask value
# out of range, missing or misshapen masks, bad pixel_labels) exit 3 naming the dataset; wrong
# sources exit 3 naming the file; an existing OUT.h5 refused (exit 2, untouched) unless --force;
# store_read_masks under MPI-IO (test_pixel_labels, mpirun -np 1 and 2)
# and the writer's checks.
# usage: mosaic.sh BEIT TEST_MASKS
BEIT=$1
TM=$2
source "$(dirname "$0")/../tap.sh"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$T/o"
FM=$T/fm.h5
A=$T/o/a.h5

# ---- help and usage errors --------------------------------------------------------------------
run "$BEIT" data mosaic --help
check "mosaic --help exits 0 with usage, every flag and an example" \
    eval '[ $rc -eq 0 ] && out_has "usage: beit data mosaic" && out_has "--data FILE" && out_has "--seed S" && out_has "--train N" && out_has "--test N" && out_has "--png FILE" && out_has "example"'
run "$BEIT" data --help
check "beit data --help lists mosaic" out_has "mosaic"
usage_case() { # desc, args...
    local desc=$1
    shift
    run "$BEIT" data mosaic "$@"
    check "usage error exits 2: $desc" eval '[ $rc -eq 2 ] && [ -s "$T/err" ] && no_output "$T/o/u.h5"'
}
usage_case "no --seed" --data "$FM" "$T/o/u.h5"
usage_case "no --data" --seed 1 "$T/o/u.h5"
usage_case "no OUT.h5" --data "$FM" --seed 1
usage_case "--train 0" --data "$FM" --seed 1 --train 0 "$T/o/u.h5"
usage_case "--seed -1" --data "$FM" --seed -1 "$T/o/u.h5"
usage_case "unknown flag" --data "$FM" --seed 1 --frob 2 "$T/o/u.h5"
run "$BEIT" data mosaic --data "$T/nope.h5" --seed 1 "$T/o/u.h5"
check "missing source store: exit 3 naming it, no output" \
    eval '[ $rc -eq 3 ] && err_has "$T/nope.h5" && no_output "$T/o/u.h5"'

# ---- build ----------------------------------------------------------------------------------------
run "$BEIT" data import fashion-mnist "$FM"
check "source: import of the real Fashion-MNIST" eval '[ $rc -eq 0 ] && [ -f "$FM" ]'
run "$BEIT" data mosaic --data "$FM" --seed 7 --train 2000 --test 500 --png "$T/o/a.png" "$A"
check "mosaic --seed 7 --train 2000 --test 500 exits 0 and writes the store and the PNG" \
    eval '[ $rc -eq 0 ] && [ -f "$A" ] && [ -f "$T/o/a.png" ] && out_has "train 2000, test 500 images of 28x28x1 with masks, 11 classes"'
check "no temporary file left" eval '[ -z "$(ls -A "$T/o" | grep tmp)" ]'
run "$BEIT" data mosaic --data "$FM" --seed 7 --train 2000 --test 500 "$T/o/b.h5"
check "same seed again (another file) exits 0" eval '[ $rc -eq 0 ]'
run "$BEIT" data mosaic --data "$FM" --seed 8 --train 2000 --test 500 "$T/o/c.h5"
check "seed 8 exits 0" eval '[ $rc -eq 0 ]'

run "$PY" - "$A" "$T/o/b.h5" "$T/o/c.h5" "$FM" "$T/o/a.png" <<'EOF'
import sys, h5py, numpy as np
from PIL import Image
a_path, b_path, c_path, fm_path, png_path = sys.argv[1:]
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)

# independent Philox4x32-10 and rng_stream/rng_below, as documented in include/beit/rng.h
M = 0xffffffff
def philox(key, ctr):
    k0, k1 = key
    c0, c1, c2, c3 = ctr
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M, (p0 >> 32) ^ c3 ^ k1, p0 & M
        k0, k1 = (k0 + 0x9E3779B9) & M, (k1 + 0xBB67AE85) & M
    return [c0, c1, c2, c3]
class Stream:
    def __init__(self, seed, purpose, a, b):
        self.key = [(seed & M) ^ ((purpose * 0x85EBCA6B) & M),
                    (seed >> 32) ^ ((purpose * 0xC2B2AE35) & M) ^ 0x27D4EB2F]
        self.ctr, self.buf = [a & M, a >> 32, b, 0], []
    def u32(self):
        if not self.buf:
            self.buf = philox(self.key, self.ctr)
            self.ctr[3] += 1
        return self.buf.pop(0)
    def below(self, n):
        if n <= 1: return 0
        limit = 2**64 - 1 - ((2**64 - 1) % n)
        while True:
            x = (self.u32() << 32) | self.u32()
            if x < limit: return x % n
RNG_MOSAIC = 10

def recipe(src_im, src_lb, seed, split_id, i):
    r = Stream(seed, RNG_MOSAIC, split_id, i)
    k = 1 + r.below(4)
    img, mask = np.zeros((28, 28), np.uint8), np.zeros((28, 28), np.uint8)
    for _ in range(k):
        s, x, y = r.below(len(src_lb)), r.below(15), r.below(15)
        g = src_im[s, :, :, 0].astype(np.int32).reshape(14, 2, 14, 2).sum(axis=(1, 3))
        g = (g + 2) // 4
        fg = g >= 32
        img[y:y + 14, x:x + 14][fg] = g[fg]
        mask[y:y + 14, x:x + 14][fg] = src_lb[s] + 1
    cnt = np.bincount(mask.ravel(), minlength=11)
    label = 0 if cnt[1:].sum() == 0 else 1 + int(np.argmax(cnt[1:]))
    return img, mask, label, k

fa, fb, fc, fm = (h5py.File(p, "r") for p in (a_path, b_path, c_path, fm_path))
names = ["background"] + list(fm.attrs["class_names"])
A = fa.attrs
check(A["format"] == "beit-dataset" and int(A["format_version"]) == 1 and int(A["pixel_labels"]) == 1,
      "format beit-dataset, format_version 1 (unchanged), pixel_labels 1")
check(int(A["num_classes"]) == 11 and list(A["class_names"]) == names,
      "num_classes 11, class_names = background + the 10 Fashion-MNIST names")
check((int(A["height"]), int(A["width"]), int(A["channels"])) == (28, 28, 1), "28x28x1")
check("seed 7" in A["source"] and fm.attrs["uuid"] in A["source"], f"source names the seed and the source uuid: {A['source']}")
for split, sid, n in (("train", 0, 2000), ("test", 1, 500)):
    im, lb, mk = fa[split]["images"], fa[split]["labels"], fa[split]["masks"]
    check(im.shape == (n, 28, 28, 1) and lb.shape == (n,) and mk.shape == (n, 28, 28) and int(fa[split].attrs["count"]) == n,
          f"/{split}: images {im.shape}, labels {lb.shape}, masks {mk.shape}, count {fa[split].attrs['count']}")
    check(mk.dtype == np.uint8 and mk.chunks == (1024 if n > 1024 else n, 28, 28) and mk.chunks[0] == im.chunks[0]
          and mk.compression == "gzip" and mk.compression_opts == 4 and mk.shuffle,
          f"/{split}/masks uint8, chunks {mk.chunks} like the images {im.chunks}, shuffle + deflate 4")
    I, L, K = im[...][..., 0], lb[...], mk[...]
    check(K.max() <= 10, f"/{split}: mask values in 0..10 (max {K.max()})")
    check(bool((I[K > 0] >= 32).all()), f"/{split}: every foreground mask pixel has image value >= 32 (min {I[K > 0].min()})")
    check(bool((I[K == 0] == 0).all()), f"/{split}: every background mask pixel is black")
    cnt = np.stack([np.bincount(m.ravel(), minlength=11) for m in K])
    want = np.where(cnt[:, 1:].sum(1) == 0, 0, 1 + np.argmax(cnt[:, 1:], axis=1))
    check(np.array_equal(L, want), f"/{split}: every label is the majority mask class (ties lowest; none -> 0)")
    check(len(set(L.tolist()) - {0}) == 10, f"/{split}: all 10 garment classes occur as labels")
    src_im, src_lb = fm[split]["images"][...], fm[split]["labels"][...]
    ok, ks = True, []
    for i in list(range(40)) + [n - 1]:
        ri, rm, rl, k = recipe(src_im, src_lb, 7, sid, i)
        ks.append(k)
        ok &= np.array_equal(ri, I[i]) and np.array_equal(rm, K[i]) and rl == L[i]
    check(ok, f"/{split}: samples 0..39 and {n - 1} equal the recipe re-derived in Python (image, mask, label)")
    check(set(ks) == {1, 2, 3, 4}, f"/{split}: the re-derived samples use 1, 2, 3 and 4 garments ({sorted(set(ks))})")
    B, Cc = fb[split], fc[split]
    check(all(np.array_equal(fa[split][d][...], B[d][...]) for d in ("images", "labels", "masks")),
          f"/{split}: the same seed gives identical images, labels and masks")
    check(not np.array_equal(I, Cc["images"][...][..., 0]) and not np.array_equal(K, Cc["masks"][...]),
          f"/{split}: seed 8 gives other images and masks")
x = fa["train"]["images"][...].astype(np.float64) / 255
check(abs(A["mean"][0] - x.mean()) < 1e-9 and abs(A["std"][0] - x.std()) < 1e-9,
      f"mean/std {A['mean'][0]:.6f}/{A['std'][0]:.6f} equal numpy's over the train images (1e-9)")
same_attrs = all(str(fa.attrs[k]) == str(fb.attrs[k]) for k in fa.attrs if k != "uuid")
check(same_attrs and fa.attrs["uuid"] != fb.attrs["uuid"], "same seed: every attribute equal but the uuid")
png = Image.open(png_path)
check(png.size == (8 * 112 + 9 * 4, 4 * 112 + 5 * 4) and png.mode == "RGB", f"PNG grid of 16 image/mask pairs: {png.size} {png.mode}")
p = np.asarray(png)
K0, I0 = fa["train"]["masks"][0], fa["train"]["images"][0, :, :, 0]
check(all((p[4 + 4 * yy + 1, 4 + 4 * xx + 1] == I0[yy, xx]).all() for yy in range(28) for xx in range(28))
      and all((p[4 + 4 * yy + 1, 4 + 112 + 4 + 4 * xx + 1] == 0).all() == (K0[yy, xx] == 0) for yy in range(28) for xx in range(28)),
      "PNG: tile 1 is train image 0 (x4), tile 2 is black exactly where its mask is background")
with open(sys.argv[1] + ".freq", "w") as f:
    K = fa["train"]["masks"][...]
    f.write("%.3f\n" % (100.0 * (K == 0).mean()))
EOF
pass_through <"$T/out"
check "python/h5py check script ran to the end" eval '[ $rc -eq 0 ]'

# ---- info ------------------------------------------------------------------------------------------
run "$BEIT" data info "$A"
check "info exits 0" eval '[ $rc -eq 0 ]'
check "info: the masks layout line and the header line" \
    eval 'grep -qE "^ +/train/masks +uint8 +\[2000,28,28\] +chunks \[1024,28,28\] +shuffle\+deflate\(4\)" "$T/out" && out_has "masks        28 x 28 per-pixel class, uint8 (pixel_labels = 1)"'
bg=$(cat "$A.freq" 2>/dev/null)
check "info: pixel frequency table; train background ${bg}% as h5py counts it (3 decimals)" \
    eval 'out_has "pixels per class" && grep -qE "^ +0 +background +[0-9]+ +[0-9]+$" "$T/out" && [ -n "$bg" ] && grep -qE "^ +0 +background +${bg}% +[0-9.]+%$" "$T/out"'
run "$BEIT" data info "$FM"
check "info of a store without masks: no masks lines" eval '[ $rc -eq 0 ] && ! out_has "pixels per class" && ! out_has "masks"'

# ---- an existing OUT.h5 ---------------------------------------------------------------------------
B=$T/o/b.h5
uuid_of() { "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$1"; }
uuid1=$(uuid_of "$B")
sha1=$(sha256sum <"$B")
run "$BEIT" data mosaic --data "$FM" --seed 7 --train 2000 --test 500 "$B"
check "mosaic into an existing store: exit 2 naming it, its uuid and --force" \
    eval '[ $rc -eq 2 ] && err_has "beit data mosaic: $B already exists: a beit dataset store (uuid $uuid1). It was left untouched; pass --force to replace it."'
check "the refused mosaic left the store byte-identical (sha256, uuid)" \
    eval '[ "$(sha256sum <"$B")" = "$sha1" ] && [ "$(uuid_of "$B")" = "$uuid1" ]'
echo "not a store" >"$T/o/plain.txt"
run "$BEIT" data mosaic --data "$FM" --seed 7 "$T/o/plain.txt"
check "mosaic onto another file: exit 2, 'a file', the file untouched" \
    eval '[ $rc -eq 2 ] && err_has "$T/o/plain.txt already exists: a file. It was left untouched" && [ "$(cat "$T/o/plain.txt")" = "not a store" ]'
run "$BEIT" data mosaic --data "$FM" --seed 7 "$T/o"
check "mosaic onto a directory: exit 2 (not even --force replaces it)" \
    eval '[ $rc -eq 2 ] && err_has "$T/o is a directory (expected the path of the file to write)"'
run "$BEIT" data mosaic --data "$FM" --seed 7 --train 2000 --test 500 --force "$B"
run2() { "$PY" -c "import h5py,sys; a, b = h5py.File(sys.argv[1],'r'), h5py.File(sys.argv[2],'r'); assert (a['train/masks'][...] == b['train/masks'][...]).all()" "$1" "$2"; }
check "--force replaces it: exit 0, a new uuid, the same masks as seed 7, no temporary file" \
    eval '[ $rc -eq 0 ] && [ "$(uuid_of "$B")" != "$uuid1" ] && run2 "$A" "$B" && [ -z "$(ls -A "$T/o" | grep -F .tmp.)" ]'

# ---- damaged stores ------------------------------------------------------------------------------
damage() { # name, python code acting on h5py file f
    cp "$A" "$T/o/$1.h5"
    "$PY" -c "import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'r+'); $2; f.close()" "$T/o/$1.h5"
}
damage bad "f['train/masks'][1234, 5, 6] = 200"
run "$BEIT" data info "$T/o/bad.h5"
check "a mask value 200: info exits 3 naming /train/masks, the sample and the value" \
    eval '[ $rc -eq 3 ] && err_has "$T/o/bad.h5: /train/masks sample 1234 has pixel label 200 outside [0, 11)"'
run "$TM" read "$T/o/bad.h5" train
check "a mask value 200: store_read_masks exits 3 with the same message" \
    eval '[ $rc -eq 3 ] && err_has "/train/masks sample 1234 has pixel label 200 outside [0, 11)"'
run "$TM" read "$T/o/bad.h5" test
check "the undamaged split of that store reads (exit 0)" eval '[ $rc -eq 0 ] && out_has "read 500 masks of test"'
damage nomask "del f['test/masks']"
run "$BEIT" data info "$T/o/nomask.h5"
check "pixel_labels 1 without /test/masks: exit 3 naming it" \
    eval '[ $rc -eq 3 ] && err_has "$T/o/nomask.h5: dataset /test/masks is missing"'
damage shape "del f['test/masks']; f['test'].create_dataset('masks', data=np.zeros((500, 28, 27), np.uint8))"
run "$BEIT" data info "$T/o/shape.h5"
check "/test/masks of shape [500,28,27]: exit 3 naming it and the expected shape" \
    eval '[ $rc -eq 3 ] && err_has "dataset /test/masks has shape [500,28,27] (expected [500,28,28]"'
damage pl "f.attrs['pixel_labels'] = np.int32(2)"
run "$BEIT" data info "$T/o/pl.h5"
check "pixel_labels = 2: exit 3 naming the attribute" eval '[ $rc -eq 3 ] && err_has "invalid attribute '"'"'pixel_labels'"'"'"'
damage nopl "del f.attrs['pixel_labels']"
run "$BEIT" data info "$T/o/nopl.h5"
check "pixel_labels removed: the store opens without masks (masks dataset ignored)" \
    eval '[ $rc -eq 0 ] && ! out_has "pixels per class"'

# ---- wrong sources -------------------------------------------------------------------------------
run "$BEIT" data mosaic --data "$A" --seed 1 "$T/o/w.h5"
check "a mosaic (11 classes) as source: exit 3 naming the file and the expected store, no output" \
    eval '[ $rc -eq 3 ] && err_has "$A: the source store holds 28x28x1 images of 11 classes (expected a 28x28x1 store with 10 classes" && no_output "$T/o/w.h5"'
"$PY" - "$FM" "$T/rgb.h5" <<'EOF'
import sys, h5py, numpy as np
src, dst = sys.argv[1:]
s = h5py.File(src, "r")
with h5py.File(dst, "w") as f:
    for k, v in s.attrs.items():
        f.attrs[k] = v
    f.attrs["channels"] = np.int32(3)
    f.attrs["mean"] = np.zeros(3)
    f.attrs["std"] = np.ones(3)
    for sp in ("train", "test"):
        g = f.create_group(sp)
        g.attrs["count"] = np.int64(20)
        g["images"] = np.repeat(s[sp]["images"][:20], 3, axis=3)
        g["labels"] = s[sp]["labels"][:20]
EOF
run "$BEIT" data mosaic --data "$T/rgb.h5" --seed 1 "$T/o/w.h5"
check "a 28x28x3 source: exit 3 naming the file and the expected store, no output" \
    eval '[ $rc -eq 3 ] && err_has "$T/rgb.h5: the source store holds 28x28x3 images of 10 classes (expected a 28x28x1 store" && no_output "$T/o/w.h5"'

# ---- store_read_masks under MPI-IO, the writer's checks -----------------------------------------
run "$TM" make "$T/m.h5"
check "synthetic store with masks written (train 1000, test 37, 40x40x3, 7 classes)" eval '[ $rc -eq 0 ] && [ -f "$T/m.h5" ]'
for np in 1 2; do
    run mpirun --oversubscribe -np $np "$TM" check "$T/m.h5"
    pass_through <"$T/out"
    check "mpirun -np $np test_pixel_labels check exits 0" eval '[ $rc -eq 0 ]'
done
run "$TM" errors "$T/o"
pass_through <"$T/out"
check "test_pixel_labels errors exits 0" eval '[ $rc -eq 0 ]'

finish
