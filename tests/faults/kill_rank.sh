#!/usr/bin/env bash
# One rank killed with SIGKILL under mpirun -np 2 (the srun side is in
# tests/cluster/slurm_beit.sh):
#   - mid-step (between checkpoints): the job ends within 60 s (measured), mpirun names the dead
#     rank (Open MPI 4.1 prints "process rank 1 with PID 0 on node ...": the PID it shows is 0), every checkpoint left is complete, and --resume auto resumes from the newest one; the
#     continued run equals an uninterrupted one bit for bit;
#   - during a checkpoint write (rank 0 killed while the temporary file exists): the same, the
#     half-written file is never taken and is removed after the next successful write.
#   kill_rank.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"
. "$SRC/tests/faults/lib.sh"
write_jobs "$T"

run_reference

# ---- mid-step: rank 1 killed after ~130 steps (checkpoints 50 and 100 written, 150 maybe) ----
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/a" >"$T/a.out" 2>"$T/a.err" &
mp=$!
wait_lines "$T/a/metrics.jsonl" 130 120
r1=$(rank_pid $mp 1)
t0=$EPOCHREALTIME
kill -KILL "$r1"
at=$(wc -l <"$T/a/metrics.jsonl")
wait $mp
rc=$?
dt=$(elapsed_since "$t0")
echo "# rank 1 (pid $r1) killed after step $at; mpirun ended ${dt} s later with exit $rc"
check "SIGKILL of rank 1 mid-step: mpirun ends within 60 s with a failure status (not 0, not 8)" \
    bash -c "[ $rc != 0 ] && [ $rc != 8 ] && [ $rc != 124 ] && below '$dt' 60"
check "mpirun names the dead rank: 'process rank 1 with PID ... exited on signal 9 (Killed)'" \
    grep -q "process rank 1 with PID [0-9]* on node .* exited on signal 9" "$T/a.out" "$T/a.err"
check "every checkpoint left is complete (at least step 100: 50 and 100, or 100 and 150)" \
    bash -c "ckpts_complete '$T/a' && [ -f '$T/a/ckpt-00000100.h5' ]"
last=$(ls "$T/a" | grep '^ckpt-' | sort | tail -n 1)
run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/a" --resume auto
check "--resume auto resumes from the newest complete checkpoint ($last) and finishes" \
    bash -c "[ $rc = 0 ] && [ -n '$last' ] && grep -q 'resumed from $T/a/$last at step' '$T/out'"
check "metrics.jsonl after the resume: each step once, in order (rows logged after the checkpoint were dropped)" \
    $PY -c "import json; s=[json.loads(l)['step'] for l in open('$T/a/metrics.jsonl')]; assert s == sorted(set(s)), s"
check "killed + resumed == uninterrupted, bit for bit (the steps after the checkpoint, logged again, replace the lost ones)" \
    same_run "$T/ref" "$T/a"

# ---- during a checkpoint write: rank 0 killed while the temporary file exists ----
timeout 120 $MPI -np 2 $BEIT pretrain -c "$T/big.yaml" --out "$T/b" >"$T/b.out" 2>"$T/b.err" &
mp=$!
wait_lines "$T/b/metrics.jsonl" 12 120 # checkpoints at 5 and 10 are written
r0=$(rank_pid $mp 0)
tmp=""
end=$((SECONDS + 60))
while [ -z "$tmp" ] && [ $SECONDS -lt $end ] && kill -0 $mp 2>/dev/null; do
    tmp=$(compgen -G "$T/b/.ckpt-*.tmp.*" | head -n 1)
done
t0=$EPOCHREALTIME
kill -KILL "$r0"
wait $mp
rc=$?
dt=$(elapsed_since "$t0")
echo "# rank 0 (pid $r0) killed while $(basename "${tmp:-none}") existed; mpirun ended ${dt} s later with exit $rc"
check "SIGKILL of rank 0 during a checkpoint write (its temporary file seen): mpirun ends within 60 s, failure status" \
    bash -c "[ -n '$tmp' ] && [ $rc != 0 ] && [ $rc != 8 ] && [ $rc != 124 ] && below '$dt' 60"
check "mpirun names the dead rank: 'process rank 0 with PID ... exited on signal 9 (Killed)'" \
    grep -q "process rank 0 with PID [0-9]* on node .* exited on signal 9" "$T/b.out" "$T/b.err"
check "no incomplete checkpoint under a checkpoint's name (every ckpt-*.h5 complete)" ckpts_complete "$T/b"
last=$(ls "$T/b" | grep '^ckpt-' | sort | tail -n 1)
left=$(ls -A "$T/b" | grep -F '.tmp.' | head -n 1)
echo "# newest complete checkpoint: $last; temporary file left by the kill: ${left:-none}"
at=$(echo "$last" | sed -n 's/^ckpt-0*\([0-9][0-9]*\)\.h5$/\1/p')
run $MPI -np 2 $BEIT pretrain -c "$T/big.yaml" --out "$T/b" --resume auto --steps $((${at:-0} + 5))
check "--resume auto resumes from the newest complete one ($last), ignoring the half-written file" \
    bash -c "[ $rc = 0 ] && grep -q 'resumed from $T/b/$last at step' '$T/out'"
check "the kill left the half-written temporary file, and the next checkpoint removed it" \
    bash -c "[ -n '$left' ] && no_tmp '$T/b'"
finish
