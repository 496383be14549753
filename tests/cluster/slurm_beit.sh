#!/bin/bash
# The batch scripts of jobs/slurm/ on a real single-node Slurm cluster (tests/cluster/slurm_env.sh:
# munged, slurmctld, slurmd from Debian, started and stopped here), 2 tasks per job, srun
# --mpi=pmix:
#   - every stage: dvae.sbatch -> tokenize.sbatch -> pretrain.sbatch -> finetune.sbatch ->
#     eval.sbatch (a run directory through jobs/eval-checkpoints.sh, and one checkpoint), tiny
#     Fashion-MNIST models; each job COMPLETES and leaves its outputs;
#   - pretrain.sbatch uninterrupted (a tiny synthetic BEiT, 300 steps): the reference;
#   - preemption: `scancel -b --signal=USR1` (what --signal=B:USR1@120 does before the time
#     limit) -> the batch shell passes USR1 to the ranks -> they write a checkpoint and exit 8 ->
#     the script requeues the job -> the same job id runs again (restart 1) and resumes from that
#     checkpoint -> COMPLETED, bit for bit like the reference;
#   - --steps is a total: a job given --steps 150, preempted and requeued the same way, stops at
#     step 150 exactly (metrics.jsonl, the last checkpoint), its steps equal the reference's;
#   - `scancel` (SIGTERM): the ranks write a checkpoint and exit 8; the job is not requeued;
#   - one rank killed with SIGKILL: --kill-on-bad-exit ends the job within 60 s (measured),
#     srun names the task, every checkpoint left is complete, and a resubmission resumes from
#     the newest one and finishes, bit for bit like the reference;
# and finally no daemon of the cluster is left running. Needs root, the packages slurmctld
# slurmd slurm-client munge libpmix-dev.
# usage: slurm_beit.sh BEIT
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BEIT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
source "$HERE/../tap.sh"
source "$HERE/../faults/lib.sh"
source "$HERE/slurm_env.sh"
export BEIT

slurm_scratch

# submit a batch script from the repository root (as jobs/slurm/*.sbatch ask); job id in $jid
submit() {
    local log=$1
    shift
    jid=$(cd "$ROOT" && sbatch --parsable --output="$log" "$@" 2>"$T/sbatch.err" | cut -d';' -f1)
    [[ $jid =~ ^[0-9]+$ ]]
}
# wait until job $1 is COMPLETED (or has failed: then return 1 at once)
wait_done() {
    local end=$((SECONDS + $2)) s
    while :; do
        s=$(slurm_job_state "$1")
        case $s in
            COMPLETED) return 0 ;;
            FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
                echo "# job $1 ended $s"
                return 1 ;;
        esac
        [ $SECONDS -lt $end ] || { echo "# job $1 still '$s' after $2 s"; return 1; }
        sleep 0.2
    done
}
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -n 1 | cut -d= -f2; }
show_log() { [ "$_fail" -eq 0 ] || { echo "# log $1:"; grep -v '^  \|^[a-z_]*:$' "$1" | tail -n 25 | sed 's/^/#   /'; }; }

t0=$SECONDS
run slurm_up "$C"
check "slurm_up: munged, slurmctld, slurmd started and the node idle" eval '[ $rc -eq 0 ]'
if [ "$rc" -ne 0 ]; then
    sed 's/^/# /' "$T/err" | head -n 120
    finish
fi
echo "# cluster up in $((SECONDS - t0)) s"
write_jobs "$T"

# ---- every stage, tiny Fashion-MNIST models ----------------------------------------------------------
$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
MODEL="{arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64, drop_path: 0.1}"
DVAE="{image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8]}"
cat >"$T/dvae.yaml" <<YAML
task: dvae
data: {path: $T/fm.h5, subset: 512}
dvae: $DVAE
train: {epochs: 1, global_batch: 64, log_every: 1}
YAML
cat >"$T/tok.yaml" <<YAML
task: tokenize
data: {path: $T/fm.h5, subset: 300}
dvae: $DVAE
tokenize: {views: 1, batch: 100}
YAML
cat >"$T/pre.yaml" <<YAML
task: pretrain
data: {path: $T/fm.h5, tokens: $T/tok.h5, subset: 300}
model: $MODEL
mask: {type: block, num_patches: 20, min_patches: 4}
train: {epochs: 1, global_batch: 32, log_every: 1}
optim: {lr: 1.0e-2, warmup_steps: 2}
YAML
cat >"$T/ft.yaml" <<YAML
task: finetune
data: {path: $T/fm.h5, subset: 512}
model: $MODEL
finetune: {task: classification, layer_decay: 0.65}
train: {epochs: 1, global_batch: 32, log_every: 1, ckpt_every: 2}
optim: {lr: 2.0e-3, warmup_steps: 2}
YAML
t1=$SECONDS
JOB="$T/dvae.yaml" OUT="$T/dvae" submit "$T/dvae.log" jobs/slurm/dvae.sbatch && wait_done $jid 120
st=$?
check "dvae.sbatch: COMPLETED; 8 steps, ckpt-8, eval.json, 2 tasks" \
    eval '[ $st = 0 ] && [ -f "$T/dvae/ckpt-00000008.h5" ] && [ -f "$T/dvae/eval.json" ] && grep -q "identical on all 2 ranks" "$T/dvae.log"'
show_log "$T/dvae.log"
JOB="$T/tok.yaml" CKPT="$T/dvae/ckpt-00000008.h5" TOKENS="$T/tok.h5" submit "$T/tok.log" jobs/slurm/tokenize.sbatch &&
    wait_done $jid 120
st=$?
check "tokenize.sbatch: COMPLETED; the token store of 600 images on 2 ranks" \
    eval '[ $st = 0 ] && [ -f "$T/tok.h5" ] && grep -q "tokenized 600 images x 1 view .* on 2 ranks" "$T/tok.log"'
show_log "$T/tok.log"
JOB="$T/pre.yaml" OUT="$T/pre" submit "$T/pre.log" jobs/slurm/pretrain.sbatch && wait_done $jid 120
st=$?
check "pretrain.sbatch (visual tokens): COMPLETED; ckpt-9, eval.json, metrics.jsonl to step 9" \
    eval '[ $st = 0 ] && [ -f "$T/pre/ckpt-00000009.h5" ] && [ -f "$T/pre/eval.json" ] &&
          tail -n 1 "$T/pre/metrics.jsonl" | grep -q "\"step\": 9,"'
show_log "$T/pre.log"
INIT="$T/pre/ckpt-00000009.h5" JOB="$T/ft.yaml" OUT="$T/ft" BEIT_ARGS="--steps 4" \
    submit "$T/ft.log" jobs/slurm/finetune.sbatch && wait_done $jid 120
st=$?
check "finetune.sbatch --init the pre-training checkpoint: COMPLETED; ckpt-2, ckpt-4, eval.json" \
    eval '[ $st = 0 ] && [ -f "$T/ft/ckpt-00000002.h5" ] && [ -f "$T/ft/ckpt-00000004.h5" ] && [ -f "$T/ft/eval.json" ] &&
          grep -q "init from" "$T/ft.log"'
show_log "$T/ft.log"
CKPT="$T/ft" DATA="$T/fm.h5" submit "$T/ev1.log" jobs/slurm/eval.sbatch && j1=$jid
CKPT="$T/ft/ckpt-00000004.h5" DATA="$T/fm.h5" submit "$T/ev2.log" jobs/slurm/eval.sbatch && j2=$jid
wait_done "$j1" 120
st=$?
check "eval.sbatch of the run directory (eval-checkpoints.sh, srun per checkpoint): COMPLETED; a table with steps 2 and 4" \
    eval '[ $st = 0 ] && [ "$(cut -f1 "$T/ft/eval-test.tsv" | tr "\n" " ")" = "step 2 4 " ]'
show_log "$T/ev1.log"
wait_done "$j2" 120
st=$?
check "eval.sbatch of one checkpoint: COMPLETED; its JSON line (10000 test images, step 4)" \
    eval '[ $st = 0 ] && $PY -c "import json; e = json.load(open(\"$T/ft/ckpt-00000004.eval-test.json\")); assert e[\"n\"] == 10000 and e[\"step\"] == 4, e"'
show_log "$T/ev2.log"
echo "# the five stages took $((SECONDS - t1)) s"

# ---- pretrain.sbatch uninterrupted: the reference ----------------------------------------------------
JOB="$T/small.yaml" OUT="$T/a" submit "$T/a.log" jobs/slurm/pretrain.sbatch && wait_done $jid 120
st=$?
check "pretrain.sbatch, 2 tasks, tiny synthetic BEiT: COMPLETED, 300 steps, ckpt-300, the step exited 0" \
    eval '[ $st = 0 ] && [ -f "$T/a/ckpt-00000300.h5" ] && tail -n 1 "$T/a/metrics.jsonl" | grep -q "\"step\": 300," &&
          grep -q "step exited with 0" "$T/a.log" && grep -q "global batch 16 on 2 ranks" "$T/a.log"'
show_log "$T/a.log"

# ---- preemption: USR1 to the batch shell -> checkpoint, exit 8, requeue, resume -------------------------
JOB="$T/small.yaml" OUT="$T/b" submit "$T/b.log" jobs/slurm/pretrain.sbatch
b=$jid
wait_lines "$T/b/metrics.jsonl" 20 60
run scancel -b --signal=USR1 "$b"
check "scancel -b --signal=USR1 $b (the batch shell only, as --signal=B:USR1@120 does)" [ "$rc" = 0 ]
wait_done "$b" $((SLURM_CRED_EXPIRE + 120))
ok=$?
N=$(sed -n 's/^preempted at step \([0-9]*\): .*/\1/p' "$T/b.log" | head -n 1)
echo "# job $b: preempted at step ${N:-?}; $(grep -c '^beit-slurm: .* restart' "$T/b.log") runs"
check "the batch shell passed USR1 on to the ranks (scancel --signal=USR1 $b)" \
    grep -q "USR1 (time limit near, or preemption): asking the ranks to checkpoint and stop" "$T/b.log"
check "the ranks stopped after step N with a checkpoint and exit 8" \
    eval '[ -n "$N" ] && grep -q "SIGUSR1 received: stopping after step $N " "$T/b.log" &&
          grep -q "preempted at step $N: checkpoint $T/b/ckpt-0*$N.h5 written" "$T/b.log" && grep -q "step exited with 8" "$T/b.log"'
check "the script requeued job $b, and the same job id ran again with SLURM_RESTART_COUNT 1 (scontrol: Restarts=1)" \
    eval 'grep -q "requeueing job $b" "$T/b.log" && grep -q "job $b (beit-pretrain) restart 1 on" "$T/b.log" &&
          [ "$(job_field $b Restarts)" = 1 ]'
check "the requeued run resumed from that checkpoint ('resumed from .../ckpt-N.h5 at step N')" \
    grep -q "resumed from $T/b/ckpt-0*$N.h5 at step $N" "$T/b.log"
check "... and finished: COMPLETED, ExitCode 0:0, 300 steps" \
    eval '[ $ok = 0 ] && [ "$(job_field $b ExitCode)" = 0:0 ] && tail -n 1 "$T/b/metrics.jsonl" | grep -q "\"step\": 300,"'
check "preempted + requeued == uninterrupted, bit for bit (metrics, parameters, AdamW moments)" same_run "$T/a" "$T/b"
show_log "$T/b.log"

# ---- --steps is a total: a job given --steps 150, preempted and requeued, stops at step 150 ----------
JOB="$T/small.yaml" OUT="$T/s" BEIT_ARGS="--steps 150" submit "$T/s.log" jobs/slurm/pretrain.sbatch
sj=$jid
wait_lines "$T/s/metrics.jsonl" 20 60
scancel -b --signal=USR1 "$sj"
wait_done "$sj" $((SLURM_CRED_EXPIRE + 120))
ok=$?
K=$(sed -n 's/^preempted at step \([0-9]*\): .*/\1/p' "$T/s.log" | head -n 1)
echo "# job $sj (--steps 150): preempted at step ${K:-?}, requeued"
check "job $sj given --steps 150: preempted at step K < 150, requeued (restart 1), resumed at K" \
    eval '[ -n "$K" ] && [ "$K" -lt 150 ] && grep -q "job $sj (beit-pretrain) restart 1 on" "$T/s.log" &&
          grep -q "resumed from $T/s/ckpt-0*$K.h5 at step $K" "$T/s.log"'
check "... and stopped at step 150 exactly, not K + 150: COMPLETED, metrics.jsonl and the last checkpoint end at 150" \
    eval '[ $ok = 0 ] && [ "$(job_field $sj ExitCode)" = 0:0 ] && tail -n 1 "$T/s/metrics.jsonl" | grep -q "\"step\": 150," &&
          [ "$(ls "$T/s" | grep "^ckpt-" | sort | tail -n 1)" = ckpt-00000150.h5 ] && [ "$(ckpt_step "$T/s/ckpt-00000150.h5")" = 150 ]'
check "... its steps 1-150 equal the uninterrupted 300-step job's, bit for bit (the schedule is unchanged)" \
    same_metrics "$T/a" "$T/s" 150
show_log "$T/s.log"

# ---- scancel (SIGTERM): checkpoint, exit 8, not requeued ----------------------------------------------
JOB="$T/small.yaml" OUT="$T/c" submit "$T/c.log" jobs/slurm/pretrain.sbatch
c=$jid
wait_lines "$T/c/metrics.jsonl" 20 60
scancel "$c"
slurm_wait_state "$c" CANCELLED 60
sleep 1 # the batch shell finishes its last lines
check "scancel $c: the ranks got SIGTERM, wrote a checkpoint and exited 8" \
    eval 'grep -q "SIGTERM received: stopping after step" "$T/c.log" && grep -q "^preempted at step" "$T/c.log" &&
          grep -q "step exited with 8" "$T/c.log" && ckpts_complete "$T/c"'
check "... and the job was not requeued: CANCELLED, Restarts 0, ExitCode 8:0, the log says so" \
    eval '[ "$(slurm_job_state $c)" = CANCELLED ] && [ "$(job_field $c Restarts)" = 0 ] && [ "$(job_field $c ExitCode)" = 8:0 ] &&
          grep -q "not requeued" "$T/c.log"'
show_log "$T/c.log"

# ---- one rank killed with SIGKILL under srun --kill-on-bad-exit --------------------------------------------
JOB="$T/small.yaml" OUT="$T/d" submit "$T/d.log" jobs/slurm/pretrain.sbatch
d=$jid
wait_lines "$T/d/metrics.jsonl" 130 60
pid=$(scontrol listpids "$d" 2>/dev/null | awk '$3 == "0" && $5 == "1" { print $1 }')
t1=$EPOCHREALTIME
kill -KILL "$pid"
end=$((SECONDS + 90))
while [ "$(slurm_job_state "$d")" = RUNNING ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
dt=$(elapsed_since "$t1")
echo "# task 1 of job $d (pid $pid) killed; the job left RUNNING ${dt} s later: $(slurm_job_state "$d")"
sleep 1
check "SIGKILL of task 1 (pid '$pid' from scontrol listpids): the job ends within 60 s, FAILED, not requeued" \
    eval '[ -n "$pid" ] && below "$dt" 60 && [ "$(slurm_job_state $d)" = FAILED ] && [ "$(job_field $d Restarts)" = 0 ]'
check "srun names the dead task: 'task 1: Killed'" grep -q "srun: error: .*: task 1: Killed" "$T/d.log"
check "every checkpoint left is complete" ckpts_complete "$T/d"
last=$(ls "$T/d" | grep '^ckpt-' | sort | tail -n 1)
JOB="$T/small.yaml" OUT="$T/d" submit "$T/d2.log" jobs/slurm/pretrain.sbatch && wait_done $jid 120
st=$?
check "a resubmission with the same OUT resumes from the newest complete checkpoint ($last) and COMPLETES" \
    eval '[ $st = 0 ] && [ -n "$last" ] && grep -q "resumed from $T/d/$last at step" "$T/d2.log"'
check "killed + resubmitted == uninterrupted, bit for bit" same_run "$T/a" "$T/d"
show_log "$T/d.log"

# ---- stop ---------------------------------------------------------------------------------------------
[ "$_fail" -eq 0 ] || slurm_logs "$C"
pids=$(awk '{ print $2 }' "$C/run/pids" | tr '\n' ' ')
run slurm_down "$C"
check "slurm_down stops every daemon (SIGTERM, SIGKILL after ${SLURM_STOP_TIMEOUT}s)" eval '[ $rc -eq 0 ]'
alive=""
for p in $pids; do _slurm_alive "$p" "" && alive="$alive $p"; done
check "no munged/slurmctld/slurmd/slurmstepd of this cluster is left (pids $pids)" \
    eval '[ -z "$(slurm_leftovers "$C")" ] && [ -z "$alive" ]'
echo "# total $((SECONDS - t0)) s"
finish
