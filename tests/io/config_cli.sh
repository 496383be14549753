#!/usr/bin/env bash
# Job-file errors are reported the same way by every command that takes -c: the file, line
# and column, the key, what was expected; exit code 2.
#   config_cli.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
C=$SRC/tests/io/configs

# file  expected-exit  expected-text (grep -F)
cases=(
  "bad_bracket.yaml|bad_bracket.yaml:4:13: invalid YAML"
  "unknown_nested.yaml|unknown_nested.yaml:4:3: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"
  "duplicate.yaml|duplicate.yaml:5:3: duplicate key 'optim.lr' (first given at line 3"
  "type_float.yaml|type_float.yaml:3:7: optim.lr: expected a number, got 'fast'"
  "range.yaml|range.yaml:2:7: expected 0 <= optim.lr <= 10, got -1"
)
for cmd in "check" "config" "dvae train --out $T/run"; do
  for cs in "${cases[@]}"; do
    f=${cs%%|*}
    want=${cs#*|}
    run $BEIT $cmd -c "$C/$f"
    check "beit $cmd -c $f: exit 2" [ "$rc" = 2 ]
    check "beit $cmd -c $f: says \"$want\"" grep -qF "$want" "$T/err"
  done
  run $BEIT $cmd -c "$C/valid.yaml" --set optim.lr=abc
  check "beit $cmd --set optim.lr=abc: exit 2 naming --set and the key" \
    bash -c "[ $rc = 2 ] && grep -qF -- \"--set 'optim.lr=abc': optim.lr: expected a number\" '$T/err'"
  run $BEIT $cmd -c "$T/missing.yaml"
  check "beit $cmd -c <missing file>: exit 2 naming the file" \
    bash -c "[ $rc = 2 ] && grep -qF '$T/missing.yaml' '$T/err'"
done

# cross-field: a mask larger than the grid
run $BEIT check -c "$C/valid.yaml" --set model.img_size=28 --set model.patch_size=4 --set mask.num_patches=60
check "check: more masked patches than the grid has -> exit 2 naming mask.num_patches" \
  bash -c "[ $rc = 2 ] && grep -q 'mask.num_patches' '$T/err'"

# check exits 0 only when the job would start
$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
run $BEIT check -c "$SRC/jobs/fmnist/dvae.yaml" --set data.path="$T/fm.h5"
check "check: the fmnist dVAE job with its data exits 0" [ "$rc" = 0 ]
run $BEIT check -c "$SRC/jobs/fmnist/dvae.yaml" --set data.path="$T/nope.h5"
check "check: a missing data file exits 3 naming it" bash -c "[ $rc = 3 ] && grep -qF '$T/nope.h5' '$T/err'"
run $BEIT check -c "$SRC/jobs/fmnist/dvae.yaml" --set data.path="$T/fm.h5" --set dvae.in_chans=3
check "check: dvae.in_chans 3 on 1-channel data exits 5 naming both" \
  bash -c "[ $rc = 5 ] && grep -q 'dvae.in_chans = 3' '$T/err' && grep -q '1 channel' '$T/err'"
run $BEIT check -c "$SRC/jobs/fmnist/dvae.yaml" --set data.path="$T/fm.h5" --set data.split=val
check "check: a missing split exits 3 naming it" bash -c "[ $rc = 3 ] && grep -q \"val\" '$T/err'"
for f in "$SRC"/jobs/*/*.yaml; do
  run $BEIT config -c "$f"
  check "every job parses: $(basename "$(dirname "$f")")/$(basename "$f")" [ "$rc" = 0 ]
done
finish
