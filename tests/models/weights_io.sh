#!/usr/bin/env bash
# Bring your own weights: PyTorch BEiT state dicts (unilm pre-training and fine-tuned layouts,
# timm's) imported with tools/import_torch.py compute in beit what they compute in PyTorch
# (MIM logits, class logits; small model and ViT-B/16 224 with V 8192); tensors without a place
# and wrong index buffers are refused; the recorded input normalisation is what beit feeds the
# model (and files without it keep the store's); imported checkpoints run in finetune --init,
# probe, attn; tools/export_torch.py writes state dicts that load with strict=True into the
# unilm and timm modules, and beit -> torch -> beit gives back the same tensors and
# params_checksum.
#   weights_io.sh BEIT MIM_LOGITS SRCDIR small|vitb   (vitb: only the ViT-B/16 logits checks)
BEIT=$1
MIM=$2
SRC=$3
PART=${4:-small}
. "$SRC/tests/tap.sh"
IMP="$PY $SRC/tools/import_torch.py"
EXP="$PY $SRC/tools/export_torch.py"
H="$PY $SRC/tests/models/weights_io.py"
export PYTHONDONTWRITEBYTECODE=1

if [ "$PART" = small ]; then
# ---- small model: the layouts, errors, normalisation, commands ----
mkdir -p "$T/s"
run $H make "$T/s" small
check "PyTorch writes random-weight state dicts in unilm's and timm's layouts" [ "$rc" = 0 ]
$BEIT data import folder "$T/s/img" "$T/s/store.h5" --size 32 --test-fraction 0.5 >/dev/null 2>&1

run $IMP "$T/s/unilm_pre.pth" "$T/s/pre.h5"
check "import unilm pre-training (wrapped in 'model', shared rel_pos_bias, mask_token, lm_head) -> beit-pretrain" \
  bash -c "[ $rc = 0 ] && grep -q 'beit-pretrain, 39 tensors' '$T/out' && grep -q \"under 'model'\" '$T/out' && grep -q 'skipped 1 relative_position_index' '$T/out'"
run $BEIT data info --verify "$T/s/pre.h5"
check "beit data info --verify: checksums verify, the input normalisation is shown" \
  bash -c "[ $rc = 0 ] && grep -q 'every checksum matches' '$T/out' && grep -q 'input norm   mean 0.5,0.5,0.5 std 0.5,0.5,0.5' '$T/out'"
run $MIM "$T/s/pre.h5" "$T/s/mim_in.h5" "$T/s/mim.h5"
run $H mim "$T/s" "$T/s/mim.h5"
check "MIM logits of the imported pre-training weights = PyTorch's within 1e-4 ($(grep -o 'relative [^ ]*' "$T/out"))" [ "$rc" = 0 ]

run $IMP "$T/s/unilm_ft.pth" "$T/s/ft.h5"
check "import unilm fine-tuned (per-block tables, fc_norm, head) -> finetune-cls" \
  bash -c "[ $rc = 0 ] && grep -q 'finetune-cls, 39 tensors' '$T/out' && grep -q 'skipped 2 relative_position_index' '$T/out'"
run $BEIT eval --checkpoint "$T/s/ft.h5" --data "$T/s/store.h5" --logits "$T/s/ft_logits.h5"
check "beit eval of it uses the checkpoint's normalisation and says so" \
  bash -c "[ $rc = 0 ] && grep -q 'input normalisation from the checkpoint' '$T/err' && grep -q '\"n\": 4' '$T/out'"
run $H cls "$T/s/unilm_ft.pth" unilm "$T/s/store.h5" "$T/s/ft_logits.h5" 0.5,0.5,0.5 0.5,0.5,0.5
check "class logits (beit eval --logits) = unilm's module on the same images ($(grep -o 'relative [^ ]*' "$T/out"))" [ "$rc" = 0 ]

run $IMP "$T/s/timm_ft.safetensors" "$T/s/timm.h5"
check "import timm's Beit from safetensors (no index buffers saved) -> finetune-cls" \
  bash -c "[ $rc = 0 ] && grep -q 'finetune-cls, 39 tensors' '$T/out' && grep -q 'skipped 0 relative' '$T/out'"
run $BEIT eval --checkpoint "$T/s/timm.h5" --data "$T/s/store.h5" --logits "$T/s/timm_logits.h5"
run $H cls "$T/s/timm_ft.safetensors" timm "$T/s/store.h5" "$T/s/timm_logits.h5" 0.5,0.5,0.5 0.5,0.5,0.5
check "class logits of the timm import = timm's module ($(grep -o 'relative [^ ]*' "$T/out"))" [ "$rc" = 0 ]

run $IMP "$T/s/bad_extra.pth" "$T/s/bad.h5"
check "a tensor without a place is an error naming it (exit 5, no output)" \
  bash -c "[ $rc = 5 ] && grep -q 'blocks.1.attn.extra_scale' '$T/err' && [ ! -e '$T/s/bad.h5' ] && ! ls -a '$T/s' | grep -q tmp"
run $IMP "$T/s/bad_index.pth" "$T/s/bad.h5"
check "a relative_position_index that differs from beit's is an error naming it (exit 5)" \
  bash -c "[ $rc = 5 ] && grep -q 'blocks.0.attn.relative_position_index' '$T/err' && [ ! -e '$T/s/bad.h5' ]"

# a checkpoint without the record (as before it existed) keeps the store's statistics
cp "$T/s/ft.h5" "$T/s/old.h5"
$PY -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); del f.attrs['input_mean']; del f.attrs['input_std']" "$T/s/old.h5"
SM=$($PY -c "import h5py,sys; print(','.join(repr(float(x)) for x in h5py.File(sys.argv[1]).attrs['mean']))" "$T/s/store.h5")
SS=$($PY -c "import h5py,sys; print(','.join(repr(float(x)) for x in h5py.File(sys.argv[1]).attrs['std']))" "$T/s/store.h5")
run $BEIT eval --checkpoint "$T/s/old.h5" --data "$T/s/store.h5" --logits "$T/s/old_logits.h5"
check "a checkpoint without input_mean/std: no normalisation message" bash -c "[ $rc = 0 ] && ! grep -q 'input normalisation from' '$T/err'"
run $H cls "$T/s/unilm_ft.pth" unilm "$T/s/store.h5" "$T/s/old_logits.h5" "$SM" "$SS"
check "... and its logits are the module's on store-normalised images (mean $SM)" [ "$rc" = 0 ]
run $H cls "$T/s/unilm_ft.pth" unilm "$T/s/store.h5" "$T/s/old_logits.h5" 0.5,0.5,0.5 0.5,0.5,0.5
check "... not on 0.5/0.5-normalised ones (the record changes what the model sees)" [ "$rc" = 1 ]

# the imported pre-training checkpoint in finetune --init, probe, attn
MODEL="{arch: beit, img_size: 32, patch_size: 8, in_chans: 3, embed_dim: 48, depth: 2, num_heads: 3, mlp_ratio: 4.0, layer_scale_init: 0.1, drop_path: 0.0}"
cat > "$T/s/ft.yaml" <<YAML
task: finetune
data: {path: $T/s/store.h5}
model: $MODEL
train: {epochs: 1, global_batch: 4, log_every: 1}
finetune: {probe_blocks: [1, 2]}
optim: {lr: 1.0e-3, warmup_steps: 1}
YAML
run $BEIT finetune -c "$T/s/ft.yaml" --init "$T/s/pre.h5" --out "$T/s/run" --set train.epochs=2
check "finetune --init IMPORTED.h5: runs, with the checkpoint's input normalisation" \
  bash -c "[ $rc = 0 ] && grep -q '2 per-block relative position tables copied' '$T/out' && grep -q 'input normalisation from the checkpoint' '$T/out'"
FT=$(ls "$T"/s/run/ckpt-*.h5 | tail -1)
run $PY -c "import h5py,sys; f=h5py.File(sys.argv[1]); print(list(f.attrs['input_mean']), list(f.attrs['input_std']))" "$FT"
check "... and its checkpoints record it (input_mean/std 0.5)" grep -q '\[0.5, 0.5, 0.5\] \[0.5, 0.5, 0.5\]' "$T/out"
run $BEIT finetune -c "$T/s/ft.yaml" --init none --out "$T/s/scratch" --steps 1
run $PY -c "import h5py,sys; f=h5py.File(sys.argv[1]); g=h5py.File(sys.argv[2]); print(list(f.attrs['input_mean'])==list(g.attrs['mean']))" "$T/s/scratch/ckpt-00000001.h5" "$T/s/store.h5"
check "a run from scratch records the store's statistics it used" grep -q True "$T/out"
sed 's/^task: finetune/task: probe/' "$T/s/ft.yaml" > "$T/s/probe.yaml"
run $BEIT probe -c "$T/s/probe.yaml" --init "$T/s/pre.h5" --out "$T/s/probe" --set train.epochs=2
check "probe --init IMPORTED.h5 runs with the checkpoint's normalisation" \
  bash -c "[ $rc = 0 ] && grep -q 'input normalisation from the checkpoint' '$T/out' && [ -s '$T/s/probe/eval.json' ]"
run $BEIT attn --checkpoint "$T/s/pre.h5" --data "$T/s/store.h5" --index 0,1 --ref 1,1 --h5 "$T/s/attn.h5"
check "attn on IMPORTED.h5 runs" bash -c "[ $rc = 0 ] && [ -s '$T/s/attn.h5' ]"

# ---- export: strict loads, round trips ----
cat > "$T/s/pre.yaml" <<YAML
task: pretrain
data: {source: synthetic, synthetic_size: 8}
model: {arch: beit, img_size: 32, patch_size: 8, in_chans: 3, embed_dim: 48, depth: 2, num_heads: 3, vocab_size: 64}
mask: {num_patches: 5, min_patches: 2}
train: {epochs: 1, global_batch: 4, log_every: 1}
YAML
run $BEIT pretrain -c "$T/s/pre.yaml" --out "$T/s/prerun" --steps 1
PRE="$T/s/prerun/ckpt-00000001.h5"
check "a beit pre-training checkpoint (1 step) to export" [ -s "$PRE" ]
run $EXP "$PRE" "$T/s/e_pre_unilm.pth" --layout unilm --wrap model
run $H strict "$PRE" "$T/s/e_pre_unilm.pth" unilm x
check "export --layout unilm of beit-pretrain (.pth, --wrap model): strict load into modeling_pretrain's module" [ "$rc" = 0 ]
run $EXP "$PRE" "$T/s/e_pre_timm.safetensors" --layout timm
check "export --layout timm of beit-pretrain without --encoder-only: refused (timm's Beit has no lm_head)" \
  bash -c "[ $rc = 2 ] && grep -q encoder-only '$T/err'"
run $EXP "$PRE" "$T/s/e_pre_timm.safetensors" --layout timm --encoder-only
run $H strict "$PRE" "$T/s/e_pre_timm.safetensors" timm --encoder-only
check "export --layout timm --encoder-only: strict load into timm's Beit (mask_token, lm_head left out)" [ "$rc" = 0 ]
run $EXP "$FT" "$T/s/e_ft_unilm.safetensors" --layout unilm
run $H strict "$FT" "$T/s/e_ft_unilm.safetensors" unilm x
check "export --layout unilm of finetune-cls (safetensors): strict load into modeling_finetune's module" [ "$rc" = 0 ]
run $EXP "$FT" "$T/s/e_ft_timm.pth" --layout timm
run $H strict "$FT" "$T/s/e_ft_timm.pth" timm x
check "export --layout timm of finetune-cls (.pth): strict load into timm's Beit" [ "$rc" = 0 ]

run $EXP "$PRE" "$T/s/rt_pre.safetensors" --layout unilm
run $IMP "$T/s/rt_pre.safetensors" "$T/s/rt_pre.h5" --mean 0.5,0.5,0.5 --std 0.29,0.29,0.29
run $H same "$PRE" "$T/s/rt_pre.h5"
check "round trip beit-pretrain -> unilm safetensors -> beit: identical tensors and params_checksum" [ "$rc" = 0 ]
run $IMP "$T/s/e_ft_timm.pth" "$T/s/rt_ft.h5"
run $H same "$FT" "$T/s/rt_ft.h5"
check "round trip finetune-cls -> timm .pth -> beit: identical tensors and params_checksum" [ "$rc" = 0 ]
run $IMP "$T/s/e_ft_unilm.safetensors" "$T/s/rt_ft2.h5"
run $H same "$FT" "$T/s/rt_ft2.h5"
check "round trip finetune-cls -> unilm safetensors -> beit: identical tensors and params_checksum" [ "$rc" = 0 ]

fi

if [ "$PART" = vitb ]; then
# ---- ViT-B/16 at 224, V 8192, the official shapes and names ----
mkdir -p "$T/b"
run $H make "$T/b" vitb
$BEIT data import folder "$T/b/img" "$T/b/store.h5" --size 224 --test-fraction 0.5 >/dev/null 2>&1
run $IMP "$T/b/unilm_pre.pth" "$T/b/pre.h5"
check "ViT-B/16 pre-training (V 8192) imports" bash -c "[ $rc = 0 ] && grep -q 'embed_dim 768, depth 12, 12 heads' '$T/out' && grep -q 'vocab 8192' '$T/out'"
run $MIM "$T/b/pre.h5" "$T/b/mim_in.h5" "$T/b/mim.h5"
run $H mim "$T/b" "$T/b/mim.h5"
check "ViT-B MIM logits = unilm's module within 1e-4 ($(grep -o 'relative [^ ]*' "$T/out"))" [ "$rc" = 0 ]
run $IMP "$T/b/unilm_ft.pth" "$T/b/ft.h5"
run $BEIT eval --checkpoint "$T/b/ft.h5" --data "$T/b/store.h5" --logits "$T/b/ft_logits.h5" --batch 2
run $H cls "$T/b/unilm_ft.pth" unilm "$T/b/store.h5" "$T/b/ft_logits.h5" 0.5,0.5,0.5 0.5,0.5,0.5
check "ViT-B class logits (beit eval --logits) = unilm's module within 1e-4 ($(grep -o 'relative [^ ]*' "$T/out"))" [ "$rc" = 0 ]
fi
finish
