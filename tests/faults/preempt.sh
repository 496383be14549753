#!/usr/bin/env bash
# Preemption under mpirun -np 2 (the trainer's side of Slurm preemption): SIGUSR1 or SIGTERM
# while training makes every rank finish its step, write a checkpoint and exit 8.
#   - USR1 to rank 1 only: the ranks agree (all-reduce of the flag) and stop after the same
#     step; exit 8, the log line, the checkpoint of that step complete; --resume auto continues
#     and the run equals an uninterrupted one bit for bit (metrics, parameters, AdamW moments);
#   - USR1 to mpirun (what a batch script does with mpirun inside an allocation): forwarded to
#     the ranks, exit 8; that run was given --steps 150 (a total, counted from step 0): resumed
#     with --steps 150 it ends at step 150 exactly, equal to the uninterrupted run's first 150
#     steps; resumed again at 150 (with --steps 150 or 40) it trains nothing and changes nothing;
#   - SIGTERM to rank 0, then USR1 and SIGTERM to both ranks without pause until they are gone
#     (signals during the checkpoint write, counted while its temporary file exists): exit 8,
#     the checkpoint complete, resumable.
#   preempt.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
. "$SRC/tests/faults/lib.sh"
write_jobs "$T"

run_reference

# ---- USR1 to one rank ----
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/a" >"$T/a.out" 2>"$T/a.err" &
mp=$!
wait_lines "$T/a/metrics.jsonl" 20 60
r1=$(rank_pid $mp 1)
kill -USR1 "$r1"
wait $mp
rc=$?
N=$(sed -n 's/^preempted at step \([0-9]*\): .*/\1/p' "$T/a.out")
echo "# USR1 to rank 1 (pid $r1) after 20 logged steps: stopped at step ${N:-?}"
check "USR1 to rank 1 only: mpirun exits 8 (BEIT_EXIT_PREEMPTED)" [ "$rc" = 8 ]
check "the log: 'SIGUSR1 received: stopping after step N', then 'preempted at step N: checkpoint <path> written; resume with --resume auto'" \
    bash -c "[ -n '$N' ] && grep -qx 'SIGUSR1 received: stopping after step $N of 300, writing a checkpoint' '$T/a.out' &&
             grep -qx 'preempted at step $N: checkpoint $T/a/ckpt-0*$N.h5 written; resume with --resume auto' '$T/a.out'"
check "both ranks stopped after the same step: one checkpoint of step N, identical parameters on both ranks, N < 300" \
    bash -c "[ -n '$N' ] && [ '$N' -lt 300 ] && grep -q 'checkpoint .*ckpt-0*$N.h5 (params checksum .*, identical on all 2 ranks)' '$T/a.out'"
check "the checkpoint is complete (complete = 1, step N, the full optimizer state) and no temporary file is left" \
    bash -c "ckpts_complete '$T/a' && [ \"\$(ckpt_step '$(printf '%s/ckpt-%08d.h5' "$T/a" "${N:-0}")')\" = '$N' ] && no_tmp '$T/a'"
check "metrics.jsonl ends at step N" bash -c "tail -n 1 '$T/a/metrics.jsonl' | grep -q '\"step\": $N,'"
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/a" --resume auto
check "--resume auto continues from step N and finishes (exit 0)" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from $T/a/ckpt-0*$N.h5 at step $N' '$T/out'"
check "preempted + resumed == uninterrupted, bit for bit (every step's loss and logged values, parameters, AdamW moments)" \
    same_run "$T/ref" "$T/a"

# ---- USR1 to mpirun: forwarded; a run given --steps 150 and resumed with it stops at 150 ----
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/b" --steps 150 >"$T/b.out" 2>"$T/b.err" &
mp=$!
wait_lines "$T/b/metrics.jsonl" 20 60
kill -USR1 "$(mpirun_pid $mp)"
wait $mp
rc=$?
check "USR1 to mpirun (Open MPI forwards it to every rank): exit 8, a complete checkpoint, the preempted line" \
    bash -c "[ $rc = 8 ] && grep -q '^preempted at step [0-9]*: checkpoint' '$T/b.out' && ckpts_complete '$T/b'"
K=$(sed -n 's/^preempted at step \([0-9]*\): .*/\1/p' "$T/b.out")
echo "# --steps 150, preempted at step ${K:-?}"
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/b" --resume auto --steps 150
check "resumed at step K < 150 with --steps 150 (a total): ends at step 150 exactly (metrics, last checkpoint), not K + 150" \
    bash -c "[ $rc = 0 ] && [ -n '$K' ] && [ '$K' -lt 150 ] && grep -q 'resumed from $T/b/ckpt-0*$K.h5 at step $K' '$T/out' &&
             tail -n 1 '$T/b/metrics.jsonl' | grep -q '\"step\": 150,' && [ \"\$(ckpt_step '$T/b/ckpt-00000150.h5')\" = 150 ] &&
             [ \"\$(ls '$T/b' | grep '^ckpt-' | tail -n 1)\" = ckpt-00000150.h5 ]"
check "... and its steps 1-150 equal the uninterrupted 300-step run's, bit for bit (the schedule is unchanged)" \
    same_metrics "$T/ref" "$T/b" 150
before=$(sha256sum "$T/b/metrics.jsonl" "$T/b/config.yaml" "$T/b/ckpt-00000150.h5"; ls -A "$T/b")
for n in 150 40; do
    run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/b" --resume auto --steps $n
    check "resumed at step 150 with --steps $n: exit 0, 'nothing to train', no step run, the run directory unchanged" \
        bash -c "[ $rc = 0 ] && grep -qx -- '--steps $n: the run is already at step 150; nothing to train' '$T/out' &&
                 ! grep -q '^step ' '$T/out' && [ \"\$(sha256sum '$T/b/metrics.jsonl' '$T/b/config.yaml' '$T/b/ckpt-00000150.h5'; ls -A '$T/b')\" = '$before' ]"
done

# ---- SIGTERM, and more signals during the checkpoint write ----
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/big.yaml" --out "$T/c" >"$T/c.out" 2>"$T/c.err" &
mp=$!
wait_lines "$T/c/metrics.jsonl" 7 60
r0=$(rank_pid $mp 0)
r1=$(rank_pid $mp 1)
kill -TERM "$r0"
sent=0
during=0
while kill -0 "$r0" 2>/dev/null || kill -0 "$r1" 2>/dev/null; do
    tmp=$(compgen -G "$T/c/.ckpt-*.tmp.*" | head -n 1)
    for p in "$r0" "$r1"; do
        for s in USR1 TERM; do
            if kill -$s "$p" 2>/dev/null; then
                sent=$((sent + 1))
                [ -z "$tmp" ] || during=$((during + 1))
            fi
        done
    done
done
wait $mp
rc=$?
echo "# $sent more signals delivered after the first SIGTERM, $during of them while a temporary checkpoint file existed"
check "SIGTERM to rank 0: exit 8, 'SIGTERM received', the preempted line" \
    bash -c "[ $rc = 8 ] && grep -q '^SIGTERM received: stopping after step' '$T/c.out' && grep -q '^preempted at step' '$T/c.out'"
check "signals kept arriving during the checkpoint write (>= 1 while its temporary file existed)" [ "$during" -ge 1 ]
check "... and the checkpoints are complete, no temporary file left" bash -c "ckpts_complete '$T/c' && no_tmp '$T/c'"
M=$(sed -n 's/^preempted at step \([0-9]*\): .*/\1/p' "$T/c.out")
run $MPI -np 2 $BEIT pretrain -c "$T/big.yaml" --out "$T/c" --resume auto --steps $((${M:-0} + 2))
check "--resume auto continues from that checkpoint (step $M) to --steps M + 2" \
    bash -c "[ $rc = 0 ] && [ -n '$M' ] && grep -q 'resumed from $T/c/ckpt-0*$M.h5 at step $M' '$T/out' &&
             tail -n 1 '$T/c/metrics.jsonl' | grep -q '\"step\": $((${M:-0} + 2)),'"
finish
