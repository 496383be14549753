#!/usr/bin/env bash
# A C-written BEiT checkpoint loads into PyTorch with strict=True (tools/load_checkpoint.py)
# and PyTorch reproduces the C forward's MIM logits, for both variants.
#   ckpt_torch.sh EXPORT_PROGRAM SRCDIR
EXP=$1
SRC=$2
. "$SRC/tests/tap.sh"
for arch in beit vit; do
  mkdir -p "$T/$arch"
  run "$EXP" "$T/$arch" "$arch"
  check "$arch: C writes a checkpoint and its logits" [ "$rc" = 0 ]
  run /usr/bin/python3 "$SRC/tools/load_checkpoint.py" "$T/$arch/ckpt.h5" --compare "$T/$arch/logits.h5"
  check "$arch: PyTorch loads it with strict=True and reproduces the logits ($(grep -o 'max abs difference [^ ]*' "$T/out"))" \
    bash -c "[ $rc = 0 ] && grep -q 'strict=True' '$T/out' && grep -q ' match' '$T/out'"
done
finish
