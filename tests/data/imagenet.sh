#!/bin/bash
# `beit data import imagenet`: ROOT/train and ROOT/val class-folder trees (gen_images.c,
# mode imagenet) into one store: both splits, one class index for both, val/ -> test (or
# --val-split), mean/std over train only; a class present in one tree and missing in the other
# named in an exit-3 error (either side, both sides); a flat val/ and a missing val/ refused;
# an existing output refused unless --force (untouched, then replaced with a new uuid).
# usage: imagenet.sh BEIT GEN_IMAGES
BEIT=$1
GEN=$2
source "$(dirname "$0")/../tap.sh"
mkdir -p "$T/o"
uuid_of() { "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$1"; }

"$GEN" "$T/in" imagenet
run "$BEIT" data import imagenet "$T/in" "$T/o/in.h5" --size 8
check "train/ + val/ import (exit 0), one log line with both counts" \
    eval '[ $rc -eq 0 ] && out_has "wrote $T/o/in.h5: train 14, test 4 images of 8x8x3, 3 classes"'
run "$PY" - "$T/o/in.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
check(sorted(f.keys()) == ["test", "train"], f"both splits in one store: {sorted(f.keys())}")
check(list(f.attrs["class_names"]) == ["cat", "dog", "zebra"] and int(f.attrs["num_classes"]) == 3,
      "class_names: the sorted class folders")
tr, te = f["train/labels"][...], f["test/labels"][...]
check(list(tr) == [0, 0, 1, 1] + [2] * 10, f"train labels by the sorted classes {list(tr)}")
check(list(te) == [0, 1, 2, 2], f"test labels use the same index (cat 0, dog 1, zebra 2): {list(te)}")
im = f["test/images"][...]
check(im.shape == (4, 8, 8, 3) and (im[0] == [10, 20, 30]).all() and (im[2] == [1, 2, 3]).all()
      and (im[3] == [4, 5, 6]).all() and np.abs(im[1].astype(int) - 60).max() <= 2,
      "val images in class then name order, exact (PNG) / within JPEG loss (gray JPEG -> RGB)")
x = f["train/images"][...].astype(np.float64) / 255
m, s = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)
allx = np.concatenate([x, im.astype(np.float64) / 255]).reshape(-1, 3)
check(np.allclose(f.attrs["mean"], m, atol=1e-9) and np.allclose(f.attrs["std"], s, atol=1e-9)
      and not np.allclose(f.attrs["mean"], allx.mean(0), atol=1e-3) and f.attrs["stats_split"] == "train",
      "mean/std over train only (not train + test), stats_split train")
check(f["train"].attrs["count"] == 14 and f["test"].attrs["count"] == 4 and len(f.attrs["uuid"]) == 36,
      "counts 14 / 4 and a uuid")
EOF
pass_through <"$T/out"
check "h5py check script ran to the end" eval '[ $rc -eq 0 ]'
run "$BEIT" data info --verify "$T/o/in.h5"
check "beit data info --verify: the store verifies (mean/std from train recomputed)" \
    eval '[ $rc -eq 0 ] && out_has "train (14) test (4)"'

run "$BEIT" data import imagenet "$T/in" "$T/o/val.h5" --size 8 --val-split val
run "$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); assert sorted(f.keys())==['train','val'], list(f.keys())" "$T/o/val.h5"
check "--val-split val: splits train and val" eval '[ $rc -eq 0 ]'
run "$BEIT" data import imagenet "$T/in" "$T/o/bad.h5" --size 8 --val-split train
check "--val-split train: exit 2" eval '[ $rc -eq 2 ] && err_has "--val-split '"'train'"'" && no_output "$T/o/bad.h5"'

# class lists that differ: named, exit 3, nothing written
cp -r "$T/in" "$T/nodog" && rm -r "$T/nodog/val/dog"
run "$BEIT" data import imagenet "$T/nodog" "$T/o/nodog.h5" --size 8
check "a class of train/ missing from val/: exit 3 naming it, no output" \
    eval '[ $rc -eq 3 ] && err_has "$T/nodog: train/ and val/ have different class folders: 1 class of train/ missing from val/: dog (expected the same class folders in both" && no_output "$T/o/nodog.h5"'
cp -r "$T/in" "$T/extra" && mkdir "$T/extra/val/horse" && cp "$T/in/val/cat/v1.png" "$T/extra/val/horse/"
run "$BEIT" data import imagenet "$T/extra" "$T/o/extra.h5" --size 8
check "a class of val/ missing from train/: exit 3 naming it" \
    eval '[ $rc -eq 3 ] && err_has "1 class of val/ missing from train/: horse (expected" && ! err_has "of train/ missing" && no_output "$T/o/extra.h5"'
cp -r "$T/extra" "$T/both" && rm -r "$T/both/val/dog" "$T/both/val/cat"
run "$BEIT" data import imagenet "$T/both" "$T/o/both.h5" --size 8
check "mismatch on both sides: one message naming every class" \
    eval '[ $rc -eq 3 ] && err_has "2 classes of train/ missing from val/: cat, dog; 1 class of val/ missing from train/: horse"'

mkdir -p "$T/flat/val" && cp -r "$T/in/train" "$T/flat/" && cp "$T/in/val/cat/v1.png" "$T/flat/val/a.png" \
    && cp "$T/in/val/zebra/v1.png" "$T/flat/val/b.png"
run "$BEIT" data import imagenet "$T/flat" "$T/o/flat.h5" --size 8
check "val/ of loose images (no class folders): exit 3, says to sort them into class folders" \
    eval '[ $rc -eq 3 ] && err_has "$T/flat/val: 2 images directly in the folder and no class folders" && no_output "$T/o/flat.h5"'
mkdir -p "$T/noval" && cp -r "$T/in/train" "$T/noval/"
run "$BEIT" data import imagenet "$T/noval" "$T/o/noval.h5" --size 8
check "no val/: exit 3 naming it" eval '[ $rc -eq 3 ] && err_has "$T/noval/val: no such folder (expected $T/noval to hold train/ and val/"'

# --force semantics as for every import: refused untouched, then replaced with a new uuid
uuid1=$(uuid_of "$T/o/in.h5")
sha1=$(sha256sum <"$T/o/in.h5")
run "$BEIT" data import imagenet "$T/in" "$T/o/in.h5" --size 8
check "an existing store: exit 2, left byte-identical" \
    eval '[ $rc -eq 2 ] && err_has "$T/o/in.h5 already exists: a beit dataset store (uuid $uuid1). It was left untouched; pass --force to replace it." && [ "$(sha256sum <"$T/o/in.h5")" = "$sha1" ]'
run "$BEIT" data import imagenet "$T/nodog" "$T/o/in.h5" --size 8 --force
check "--force with a bad tree: exit 3, the old store kept" eval '[ $rc -eq 3 ] && [ "$(sha256sum <"$T/o/in.h5")" = "$sha1" ]'
run "$BEIT" data import imagenet "$T/in" "$T/o/in.h5" --size 6 --force
check "--force replaces it: a new uuid, 6x6" \
    eval '[ $rc -eq 0 ] && [ "$(uuid_of "$T/o/in.h5")" != "$uuid1" ] && out_has "images of 6x6x3"'
finish
