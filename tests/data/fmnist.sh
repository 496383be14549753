#!/bin/bash
# The real Fashion-MNIST import (Debian dataset-fashion-mnist): counts, layout, every pixel and
# label against the raw IDX bytes (read by Python's gzip module, not by beit), attributes,
# mean/std against numpy and the published values, h5dump -H, `beit data info`, a re-import
# (refused without --force, the store untouched; with --force a new uuid, atomic replace) and
# imports interrupted by SIGTERM (no file, no temp file; over an existing store, the old one kept).
# usage: fmnist.sh BEIT
BEIT=$1
source "$(dirname "$0")/../tap.sh"
PY=/usr/bin/python3
SRC=/usr/share/datasets/fashion-mnist
mkdir -p "$T/o"
OUT=$T/o/fmnist.h5

# (its speed is not a test: machines are shared; the time is printed for information)
start=$(date +%s)
run "$BEIT" data import fashion-mnist "$OUT"
echo "# import took $(( $(date +%s) - start ))s"
check "import fashion-mnist exits 0 and writes $OUT" \
    eval '[ $rc -eq 0 ] && [ -f "$OUT" ]'
check "import log line names the counts" out_has "train 60000, test 10000 images of 28x28x1, 10 classes"

run "$PY" - "$OUT" "$SRC" <<'EOF'
import gzip, struct, sys, uuid
import h5py, numpy as np
path, src = sys.argv[1], sys.argv[2]
def idx(name, images):
    raw = gzip.open(f"{src}/{name}", "rb").read()
    if images:
        magic, n, r, c = struct.unpack(">IIII", raw[:16])
        assert magic == 0x803 and (r, c) == (28, 28)
        return np.frombuffer(raw[16:], np.uint8).reshape(n, 28, 28, 1)
    magic, n = struct.unpack(">II", raw[:8])
    assert magic == 0x801
    return np.frombuffer(raw[8:], np.uint8)
fails = []
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
f = h5py.File(path, "r")
for split, stem, n in (("train", "train", 60000), ("test", "t10k", 10000)):
    im, lb = f[split]["images"], f[split]["labels"]
    check(im.shape == (n, 28, 28, 1) and im.dtype == np.uint8, f"/{split}/images uint8 {im.shape}")
    check(lb.shape == (n,) and lb.dtype == np.uint8, f"/{split}/labels uint8 {lb.shape}")
    check(im.chunks == (1024, 28, 28, 1) and im.compression == "gzip" and im.compression_opts == 4 and im.shuffle,
          f"/{split}/images chunks {im.chunks}, {im.compression}({im.compression_opts}), shuffle {im.shuffle}")
    check(lb.compression == "gzip" and lb.shuffle, f"/{split}/labels deflate + shuffle")
    check(int(f[split].attrs["count"]) == n, f"/{split} count attribute {f[split].attrs['count']}")
    raw_im, raw_lb = idx(f"{stem}-images-idx3-ubyte.gz", True), idx(f"{stem}-labels-idx1-ubyte.gz", False)
    a = im[...]
    check(np.array_equal(a, raw_im), f"/{split}/images equal the raw IDX bytes (all {n} images)")
    check(a[0, 10, 14, 0] == raw_im[0, 10, 14, 0] and a[n - 1, 27, 27, 0] == raw_im[n - 1, 27, 27, 0],
          f"/{split}/images spot checks (first/last image)")
    check(np.array_equal(lb[...], raw_lb), f"/{split}/labels equal the raw IDX labels")
    counts = np.bincount(lb[...], minlength=10)
    check(list(counts) == [n // 10] * 10, f"/{split}: {n // 10} samples per class ({list(counts)})")
    if split == "train":
        x = raw_im.astype(np.float64) / 255
        m, s = x.mean(), x.std()
        check(abs(f.attrs["mean"][0] - m) < 1e-9 and abs(f.attrs["std"][0] - s) < 1e-9,
              f"mean/std {f.attrs['mean'][0]:.6f}/{f.attrs['std'][0]:.6f} equal numpy's over train ({m:.6f}/{s:.6f})")
        check(abs(m - 0.2860) < 1e-4 and abs(s - 0.3530) < 1e-4, "mean/std match the published 0.2860/0.3530")
A = f.attrs
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
check(A["format"] == "beit-dataset" and int(A["format_version"]) == 1, "format beit-dataset, format_version 1")
check(list(A["class_names"]) == names, "class_names are the ten Fashion-MNIST classes in label order")
check((int(A["num_classes"]), int(A["height"]), int(A["width"]), int(A["channels"])) == (10, 28, 28, 1),
      "num_classes 10, height 28, width 28, channels 1")
check(A["mean"].dtype == np.float64 and A["mean"].shape == (1,) and A["std"].shape == (1,), "mean/std float64[1]")
check(uuid.UUID(A["uuid"]).version == 4, f"uuid {A['uuid']} is a v4 UUID")
check(A["created_by"].startswith("beit ") and "fashion-mnist" in A["source"] and src in A["source"],
      f"created_by '{A['created_by']}', source '{A['source']}'")
EOF
pass_through <"$T/out"
check "python/h5py check script ran to the end" eval '[ $rc -eq 0 ]'

run h5dump -H "$OUT"
check "h5dump -H reads the store" eval '[ $rc -eq 0 ] && out_has "DATASET \"images\"" && out_has "H5T_STD_U8LE" && out_has "( 60000, 28, 28, 1 )"'

run "$BEIT" data info "$OUT"
check "info exits 0" eval '[ $rc -eq 0 ]'
check "info: layout line of /train/images (shape, chunks, filters)" \
    eval 'grep -qE "^ +/train/images +uint8 +\[60000,28,28,1\] +chunks \[1024,28,28,1\] +shuffle\+deflate\(4\)" "$T/out"'
check "info: /test group count" eval 'grep -qE "^ +/test +group +count = 10000" "$T/out"'
check "info: per-class table, train column first" \
    eval 'grep -qE "^ +# +class +train +test$" "$T/out" && grep -qE "^ +0 +T-shirt/top +6000 +1000$" "$T/out" && grep -qE "^ +9 +Ankle boot +6000 +1000$" "$T/out" && grep -qE "^ +total +60000 +10000$" "$T/out"'
check "info: mean/std and attributes" \
    eval 'out_has "mean         [0.286041]" && out_has "std          [0.353024]" && grep -qE "^ +format +string +\"beit-dataset\"" "$T/out"'

uuid_of() { "$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r').attrs['uuid'])" "$1"; }
uuid1=$(uuid_of "$OUT")
sha1=$(sha256sum <"$OUT")
run "$BEIT" data import fashion-mnist --src "$SRC" "$OUT"
check "re-import over an existing store without --force: exit 2 naming the file, what it is and --force" \
    eval '[ $rc -eq 2 ] && err_has "$OUT already exists: a beit dataset store (uuid $uuid1). It was left untouched; pass --force to replace it."'
check "the refused re-import left the store byte-identical (same sha256, same uuid)" \
    eval '[ "$(sha256sum <"$OUT")" = "$sha1" ] && [ "$(uuid_of "$OUT")" = "$uuid1" ]'
run "$BEIT" data import fashion-mnist --src "$SRC" --force "$OUT"
uuid2=$(uuid_of "$OUT")
check "re-import with --force replaces it: exit 0, a new uuid ($uuid1 -> $uuid2), no temporary file" \
    eval '[ $rc -eq 0 ] && [ -n "$uuid1" ] && [ "$uuid1" != "$uuid2" ] && [ -z "$(ls -A "$T/o" | grep -F .tmp.)" ]'

# interrupt an import of $1 while it writes (more import flags after it): poll for its temporary
# file, then SIGTERM; $rc is its exit code, $seen whether the temporary file was seen
interrupt_import() {
    local out=$1 base
    base=$(basename "$1")
    shift
    "$BEIT" data import fashion-mnist "$@" "$out" >/dev/null 2>&1 &
    pid=$!
    seen=0
    for _ in $(seq 1 400); do
        if ls -A "$T/o" | grep -qF ".$base.tmp."; then
            seen=1
            break
        fi
        sleep 0.01
    done
    kill -TERM $pid 2>/dev/null
    wait $pid
    rc=$?
}
skip_unseen() {
    _n=$((_n + 1))
    echo "ok $_n - $1 # SKIP the import finished before its temporary file was seen"
}

INT=$T/o/interrupted.h5
interrupt_import "$INT"
if [ $seen -eq 1 ]; then
    check "SIGTERM during the write: killed (rc $rc), no file, temporary file removed" \
        eval '[ $rc -ne 0 ] && no_output "$INT"'
else
    skip_unseen "SIGTERM during the write"
fi

sha2=$(sha256sum <"$OUT")
interrupt_import "$OUT" --force
if [ $seen -eq 1 ]; then
    check "SIGTERM during a --force re-import: killed (rc $rc), the old store byte-identical, no temporary file" \
        eval '[ $rc -ne 0 ] && [ "$(sha256sum <"$OUT")" = "$sha2" ] && [ "$(uuid_of "$OUT")" = "$uuid2" ] && [ -z "$(ls -A "$T/o" | grep -F .tmp.)" ]'
else
    skip_unseen "SIGTERM during a --force re-import"
fi

finish
