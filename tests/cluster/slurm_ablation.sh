#!/bin/bash
# tools/ablation --slurm on a real single-node Slurm cluster (tests/cluster/slurm_env.sh): the
# tiny tier's whole chain submitted with jobs/slurm/*.sbatch and --dependency=afterok (2 tasks
# per job), the job ids printed; every job COMPLETES, the report job last; the report has every
# row; a second submission submits only the report (every stage finished).
# usage: slurm_ablation.sh BEIT
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BEIT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
source "$HERE/../tap.sh"
source "$HERE/slurm_env.sh"
PY=/usr/bin/python3

slurm_scratch

run slurm_up "$C"
check "slurm_up: munged, slurmctld, slurmd started and the node idle" eval '[ $rc -eq 0 ]'
if [ "$rc" -ne 0 ]; then
    sed 's/^/# /' "$T/err" | head -n 120
    finish
fi
$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
$BEIT data mosaic --data "$T/fm.h5" --seed 1 --train 512 --test 512 "$T/cls.h5" >/dev/null 2>&1
$BEIT data mosaic --data "$T/fm.h5" --seed 2 --train 512 --test 256 "$T/seg.h5" >/dev/null 2>&1
D=$T/study
ARGS=(--tier tiny --out "$D" --ranks 2 --data "$T/cls.h5" --mosaic "$T/seg.h5" --beit "$BEIT" --slurm)

run $PY "$ROOT/tools/ablation" "${ARGS[@]}"
ids=$(tail -n 1 "$T/out")
n=$(echo "$ids" | wc -w)
check "--slurm: the chain submitted (dvae, tokenize, 3 pre-trainings, 4 x (fine-tuning, curve, probe, segmentation), report = 22 jobs), ids printed" \
    eval '[ $rc = 0 ] && [ "$n" = 22 ] && [[ $ids =~ ^[0-9\ ]+$ ]]'
check "... with afterok dependencies (the tokenizer after the dVAE, the report after everything)" \
    eval 'grep -q "tokenize .*submitted: job [0-9]* after [0-9]*$" $T/out && grep -q "report .*submitted: job [0-9]* after [0-9:]*$" $T/out'
last=$(echo "$ids" | awk '{ print $NF }')
end=$((SECONDS + 900))
while :; do
    s=$(slurm_job_state "$last")
    case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
    [ $SECONDS -lt $end ] || break
    sleep 1
done
bad=""
for j in $ids; do [ "$(slurm_job_state "$j")" = COMPLETED ] || bad="$bad $j:$(slurm_job_state "$j")"; done
check "every job COMPLETED, the report job last ($last)" eval '[ -z "$bad" ]'
[ -z "$bad" ] || { echo "# not completed:$bad"; for f in "$D"/slurm/*.log; do echo "# -- $f"; tail -n 8 "$f" | sed 's/^/#   /'; done; }
report_ok() {
    local f r
    for f in curves.png attention.png segmentation.png; do [ -s "$D/$f" ] || { echo "# no $f"; return 1; }; done
    for r in "BEiT (blockwise" "random masking" "blockwise, pixel regression" "no pre-training"; do
        grep "^| $r" "$D/ablation.md" | grep -q " s /" || { echo "# no row '$r' in ablation.md"; return 1; }
    done
}
curves_ok() {
    local r
    for r in beit random pixels scratch; do [ -s "$D/seed0/finetune-$r/eval-test.tsv" ] || return 1; done
}
check "the report: ablation.md with every row, curves.png, attention.png, segmentation.png" report_ok
[ "$_fail" -eq 0 ] || { cat "$D/ablation.md" | sed 's/^/#   /'; ls -R "$D" | head -50 | sed 's/^/#   /'; }
check "the fine-tuning curves came from eval.sbatch (eval-test.tsv per fine-tuning)" curves_ok
run $PY "$ROOT/tools/ablation" "${ARGS[@]}"
check "a second --slurm submission: every stage done, only the report submitted" \
    eval '[ $rc = 0 ] && [ "$(tail -n 1 $T/out | wc -w)" = 1 ] && ! grep -q "submitted: job .* after" $T/out'
run slurm_down "$C"
check "slurm_down stops every daemon" eval '[ $rc -eq 0 ]'
finish
