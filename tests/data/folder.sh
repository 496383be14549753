#!/bin/bash
# `beit data import folder`: a tiny tree of PNG and JPEG images (gen_images.c): layout, labels
# from sorted folder names, files in name order, center crop + resize, gray -> 1 channel only
# when every image is gray, --test-fraction, --split-name, an existing store refused (adding a
# split is not supported) unless --force, and bad images reported by name with exit 3 and
# nothing left behind.
# usage: folder.sh BEIT GEN_IMAGES
BEIT=$1
GEN=$2
source "$(dirname "$0")/../tap.sh"
PY=/usr/bin/python3
mkdir -p "$T/o"

"$GEN" "$T/mixed" mixed
run "$BEIT" data import folder "$T/mixed" "$T/o/mixed.h5" --size 8
check "mixed PNG/JPEG tree imports (exit 0)" eval '[ $rc -eq 0 ] && [ -f "$T/o/mixed.h5" ]'
check "ignored files are reported as warnings" eval 'err_has "warning" && out_has "train 14 images of 8x8x3, 3 classes"'
run "$PY" - "$T/o/mixed.h5" <<'EOF'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
im, lb = f["train/images"][...], f["train/labels"][...]
check(im.shape == (14, 8, 8, 3) and im.dtype == np.uint8, f"/train/images {im.shape} uint8 (2 cat + 2 dog + 10 zebra, RGB)")
check(list(f.attrs["class_names"]) == ["cat", "dog", "zebra"], "class_names sorted by folder name")
check(list(lb) == [0, 0, 1, 1] + [2] * 10, f"labels follow the sorted classes {list(lb)}")
check(int(f.attrs["channels"]) == 3 and int(f.attrs["height"]) == 8 and int(f["train"].attrs["count"]) == 14,
      "channels 3, height 8, count 14")
# cat/a.jpg: solid (200,40,90) through JPEG q95 (lossy: +-4)
check(np.abs(im[0].astype(int) - [200, 40, 90]).max() <= 4, f"cat/a.jpg ~ (200,40,90) (max dev {np.abs(im[0].astype(int) - [200, 40, 90]).max()})")
# cat/b.png: 10x20 red|green|blue strip: the center square is all green, exactly
# (the filter at the crop edges also reads the pixel just outside, like resize-then-crop)
b = im[1].astype(int)
check((b[:, 1:7] == [0, 255, 0]).all() and (b[:, 0, 0] > 0).all() and (b[:, 0, 2] == 0).all()
      and (b[:, 7, 2] > 0).all() and (b[:, 7, 0] == 0).all(),
      "cat/b.png: center crop of the red|green|blue strip is green, edges touched only by their own neighbour")
check((im[2] == 77).all(), "dog/x.png: gray 77 replicated to RGB exactly")
check(np.abs(im[3].astype(int) - 150).max() <= 2, "dog/y.JPEG (upper-case extension, gray JPEG) ~ 150 in every channel")
order = [1, 10, 2, 3, 4, 5, 6, 7, 8, 9]  # zebra files sorted by name: 1.png 10.png 2.png ...
want = np.array([[20 * k, 255 - 20 * k, 7] for k in order])
check((im[4:] == want[:, None, None, :]).all(), "zebra/*.png: solid colours exact, files in name order (1, 10, 2, ...)")
x = im.astype(np.float64) / 255
m, s = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)
check(np.allclose(f.attrs["mean"], m, atol=1e-9) and np.allclose(f.attrs["std"], s, atol=1e-9), "per-channel mean/std of the stored images")
check("test" not in f, "no test split without --test-fraction")
EOF
pass_through <"$T/out"
check "h5py check script ran to the end" eval '[ $rc -eq 0 ]'

"$GEN" "$T/gray" gray
run "$BEIT" data import folder "$T/gray" "$T/o/gray.h5" --size 5
run "$PY" -c "
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r'); im = f['train/images'][...]
assert im.shape == (3, 5, 5, 1) and int(f.attrs['channels']) == 1, im.shape
assert (im[0] == 10).all() and abs(int(im[1].mean()) - 200) <= 2 and (im[2] == 99).all()
assert list(f['train/labels'][...]) == [0, 0, 1]
" "$T/o/gray.h5"
check "all-gray tree (PNG + gray JPEG) gives channels = 1 with the right values" eval '[ $rc -eq 0 ]'

run "$BEIT" data import folder "$T/mixed" "$T/o/split.h5" --size 6 --test-fraction 0.5
run "$PY" -c "
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
tr, te = f['train/labels'][...], f['test/labels'][...]
assert list(np.bincount(tr, minlength=3)) == [1, 1, 5] and list(np.bincount(te, minlength=3)) == [1, 1, 5], (tr, te)
assert f['train'].attrs['count'] == 7 and f['test'].attrs['count'] == 7
# zebra images are distinct solid colours: train and test hold disjoint halves of them
col = lambda im: set(tuple(x[0, 0]) for x in im)
ztr, zte = col(f['train/images'][tr == 2]), col(f['test/images'][te == 2])
assert len(ztr) == 5 and len(zte) == 5 and not (ztr & zte), (ztr, zte)
assert list(tr) == sorted(tr) and list(te) == sorted(te)
" "$T/o/split.h5"
check "--test-fraction 0.5: round(n/2) of each class held out as /test, disjoint from /train" eval '[ $rc -eq 0 ]'
run "$BEIT" data import folder "$T/mixed" "$T/o/split2.h5" --size 6 --test-fraction 0.5
run "$PY" -c "
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], 'r'), h5py.File(sys.argv[2], 'r')
assert (a['test/images'][...] == b['test/images'][...]).all() and a.attrs['uuid'] != b.attrs['uuid']
" "$T/o/split.h5" "$T/o/split2.h5"
check "--test-fraction: the held-out choice is reproducible (same test images twice, new uuid)" eval '[ $rc -eq 0 ]'

run "$BEIT" data import folder "$T/mixed" "$T/o/val.h5" --size 4 --split-name val
run "$BEIT" data info "$T/o/val.h5"
check "--split-name val: info shows /val/images [14,4,4,3] and the class names" \
    eval '[ $rc -eq 0 ] && out_has "/val/images" && out_has "[14,4,4,3]" && grep -qE "^ +2 +zebra +10$" "$T/out"'

# adding a split to an existing store is refused (it would drop the splits there); --force
# replaces the whole store
uuid_of() { "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$1"; }
uuid1=$(uuid_of "$T/o/val.h5")
sha1=$(sha256sum <"$T/o/val.h5")
run "$BEIT" data import folder "$T/mixed" "$T/o/val.h5" --size 4 --split-name test
check "--split-name test into the existing store: exit 2, adding a split is not supported" \
    eval '[ $rc -eq 2 ] && err_has "$T/o/val.h5 already exists: a beit dataset store (uuid $uuid1). It was left untouched; adding split '"'test'"' to an existing store is not supported: import every split in one run ('"'beit data import imagenet'"' takes train/ and val/ trees), or write a new store (--force replaces the whole store)."'
check "the refused import left the store byte-identical (sha256, uuid)" \
    eval '[ "$(sha256sum <"$T/o/val.h5")" = "$sha1" ] && [ "$(uuid_of "$T/o/val.h5")" = "$uuid1" ]'
run "$BEIT" data import folder "$T/mixed" "$T/o/split.h5" --size 6 --test-fraction 0.5
check "re-import without --split-name: exit 2, pass --force" \
    eval '[ $rc -eq 2 ] && err_has "$T/o/split.h5 already exists: a beit dataset store (uuid " && err_has "It was left untouched; pass --force to replace it."'
run "$BEIT" data import folder "$T/mixed" "$T/o/val.h5" --size 4 --split-name test --force
run2() { "$PY" -c "import h5py,sys; f = h5py.File(sys.argv[1],'r'); print(sorted(f.keys()), f.attrs['uuid'])" "$1"; }
check "--force replaces the whole store: only /test, a new uuid" \
    eval '[ $rc -eq 0 ] && run2 "$T/o/val.h5" | grep -qF "['"'test'"'] " && [ "$(uuid_of "$T/o/val.h5")" != "$uuid1" ]'

bad_tree() { # mode, file (relative), message
    local mode=$1 file=$2 msg=$3
    "$GEN" "$T/$mode" "$mode"
    run "$BEIT" data import folder "$T/$mode" "$T/o/$mode.h5" --size 8
    check "bad tree '$mode': exit 3, \"$file: $msg\", no output or temp file" \
        eval '[ $rc -eq 3 ] && err_has "$T/$mode/$file: $msg" && no_output "$T/o/$mode.h5"'
}
bad_tree truncpng dog/broken.png "bad PNG"
bad_tree garbage cat/garbage.jpg "not a PNG or JPEG image"
bad_tree truncjpg cat/c.jpg "bad JPEG: Premature end of JPEG file"
bad_tree emptyclass empty "no .png/.jpg/.jpeg files"
mkdir -p "$T/noclasses"
run "$BEIT" data import folder "$T/noclasses" "$T/o/none.h5" --size 8
check "a folder without class folders: exit 3" eval '[ $rc -eq 3 ] && err_has "no class folders" && no_output "$T/o/none.h5"'
run "$BEIT" data import folder "$T/nothere" "$T/o/none.h5" --size 8
check "a missing folder: exit 3" eval '[ $rc -eq 3 ] && err_has "$T/nothere: cannot open directory"'
finish
