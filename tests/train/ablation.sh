#!/usr/bin/env bash
# tools/ablation on its tiny tier, end to end on 2 ranks: a small classification store and a
# small segmentation store (beit data mosaic of Fashion-MNIST), the study killed (SIGKILL of
# its process group) while a pre-training runs, rerun: it resumes that pre-training from its
# newest checkpoint and finishes every stage; the report (ablation.md with every row,
# curves.png, attention.png, segmentation.png); a third run does no work.
#   ablation.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
PY=/usr/bin/python3
ABL="$SRC/tools/ablation"

$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
$BEIT data mosaic --data "$T/fm.h5" --seed 1 --train 512 --test 512 "$T/cls.h5" >/dev/null 2>&1
$BEIT data mosaic --data "$T/fm.h5" --seed 2 --train 512 --test 256 "$T/seg.h5" >/dev/null 2>&1
D=$T/study
ARGS=(--tier tiny --out "$D" --ranks 2 --data "$T/cls.h5" --mosaic "$T/seg.h5" --beit "$BEIT")

run $PY "$ABL" --help
check "--help names the tiers, the rows and the options" \
    eval 'grep -q -- "--tier" $T/out && grep -q "tiny" $T/out && grep -q "pixel regression" $T/out && grep -q -- "--slurm" $T/out'
run $PY "$ABL" --tier nope --out "$D"
check "an unknown tier: exit 2" [ "$rc" = 2 ]

# ---- killed while the BEiT pre-training runs --------------------------------------------------
setsid $PY "$ABL" "${ARGS[@]}" >"$T/run1.out" 2>&1 &
pid=$!
end=$((SECONDS + 120))
while [ -z "$(ls "$D/seed0/pretrain-beit" 2>/dev/null | grep '^ckpt-')" ] && [ $SECONDS -lt $end ]; do sleep 0.05; done
kill -KILL -- -"$pid" 2>/dev/null
wait "$pid" 2>/dev/null
ckpts_then=$(ls "$D/seed0/pretrain-beit" | grep '^ckpt-')
sleep 2
first=$(ls "$D/seed0/pretrain-beit" 2>/dev/null | grep '^ckpt-' | sort | tail -n 1)
check "the study killed (SIGKILL) mid pre-training, after its first checkpoint ($first) and before its end" \
    eval '[ -n "$first" ] && [ ! -f "$D/seed0/pretrain-beit/eval.json" ]'
# mpirun puts each rank in its own process group: the ranks must die with mpirun, or they go on
# writing checkpoints into the directory the rerun resumes from
check "no rank of the killed pre-training is left running" \
    eval '! pgrep -f -- "--out $D/seed0/pretrain-beit" >/dev/null'
check "... nor wrote a checkpoint after the kill" \
    eval '[ "$(ls "$D/seed0/pretrain-beit" | grep "^ckpt-")" = "$ckpts_then" ]'

run $PY "$ABL" "${ARGS[@]}"
check "the rerun finishes (exit 0)" [ "$rc" = 0 ]
check "it skipped the finished stages (tokenizer, tokens)" \
    eval 'grep -q "dvae .* done" $T/out && grep -q "tokenize .* done" $T/out'
check "it resumed the pre-training from its newest checkpoint, not from step 0" \
    eval 'grep -q "resumed from $D/seed0/pretrain-beit/ckpt-[0-9]*.h5 at step" "$D/state/seed0-pretrain-beit.log"'
check "... and recorded the killed attempt and the finished one" \
    $PY -c "import json; a = json.load(open('$D/state/seed0-pretrain-beit.json'))['attempts']; assert len(a) == 2 and a[0]['rc'] == 'killed' and a[1]['rc'] == 0, a"
products_ok() {
    local r s f
    for r in beit random pixels; do [ -f "$D/seed0/pretrain-$r/ckpt-00000096.h5" ] || return 1; done
    for r in beit random pixels scratch; do
        for s in finetune probe segment; do [ -f "$D/seed0/$s-$r/eval.json" ] || return 1; done
        [ -f "$D/seed0/finetune-$r/eval-test.tsv" ] || return 1
    done
    for f in ablation.md curves.png attention.png segmentation.png; do [ -s "$D/$f" ] || return 1; done
}
check "every stage's product (3 pre-trainings; 4 x fine-tuning with eval-test.tsv, probe, segmentation) and the report (ablation.md, curves.png, attention.png, segmentation.png)" products_ok
check "ablation.md has every row, with numbers in the fine-tuning and segmentation columns" \
    $PY - "$D/ablation.md" <<'PYEOF'
import sys
rows = [l for l in open(sys.argv[1]) if l.startswith("| ")]
for label in ["BEiT (blockwise, visual tokens)", "random masking, visual tokens", "blockwise, pixel regression",
              "no pre-training"]:
    r = [l for l in rows if l.startswith("| " + label + " |") and " s /" in l]
    assert len(r) == 1, (label, rows)
    cells = [c.strip() for c in r[0].split("|")[1:-1]]
    assert all(c not in ("", "-") for c in cells[3:9]), cells
PYEOF
check "the MIM columns show the most-frequent-token baseline" grep -q "^| BEiT (blockwise, visual tokens) | [0-9.]* | [0-9.]* ([0-9.]*) |" "$D/ablation.md"

# ---- a rerun does no work ---------------------------------------------------------------------
before=$(find "$D" -name 'ckpt-*.h5' -newer "$D/ablation.md" | wc -l)
run $PY "$ABL" "${ARGS[@]}"
check "a third run: exit 0, every stage done, 0 stages run" \
    eval '[ $rc = 0 ] && ! grep -q " running " $T/out && grep -q "ablation: 0 stages run" $T/out'
check "... no checkpoint written" eval '[ "$(find "$D" -name "ckpt-*.h5" -newer "$T/out" | wc -l)" = 0 ] && [ "$before" = 0 ]'
finish
