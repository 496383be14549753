# Shared by the batch scripts of jobs/slurm/ (sourced inside a Slurm batch job).
#
#   beit_slurm_env             export the per-rank thread counts, print a header line
#   beit_slurm_srun ARGS...    srun --mpi=pmix --kill-on-bad-exit=1 ARGS... in the background,
#                              with the time-limit trap below; returns srun's exit status
#
# Time limit and requeue: the batch scripts ask for `--signal=B:USR1@120` (B: = to this batch
# shell only). On USR1 the trap runs `scontrol requeue $SLURM_JOB_ID`: Slurm stops the step and
# puts the job back in the queue under the same job id (SLURM_RESTART_COUNT + 1); the next run
# starts with `--resume auto` from the newest complete checkpoint. Steps done since that
# checkpoint are run again.
#
# TODO(preemption): the trainer does not handle USR1 yet (its default action would kill the
# ranks, so the signal must not reach them). Once `beit` catches USR1 by writing a checkpoint and
# exiting with 8 (BEIT_EXIT_PREEMPTED), change the trap to pass the signal on to the step with
# `scancel --signal=USR1 "$SLURM_JOB_ID"` (that reaches every task of the job's steps and not this
# shell: tests/cluster/slurm_smoke.sh checks both), wait for the step, and requeue only when it
# exited with 8, so that no step is lost. (Do not signal srun itself: Slurm 22.05's srun was seen
# to die of USR1 instead of passing it on.)

beit_slurm_env() {
    # one BLAS thread per allocated CPU of the task (OpenBLAS starts one per core otherwise)
    export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    echo "beit-slurm: $(date -Is) job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) restart ${SLURM_RESTART_COUNT:-0}" \
        "on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks x ${SLURM_CPUS_PER_TASK:-1} CPUs"
}

_beit_slurm_on_usr1() {
    echo "beit-slurm: $(date -Is) USR1 (time limit near or preemption): requeueing job $SLURM_JOB_ID;" \
        "it resumes from the newest checkpoint"
    if ! scontrol requeue "$SLURM_JOB_ID"; then
        echo "beit-slurm: scontrol requeue failed (was the job submitted with --no-requeue?);" \
            "the run continues until the time limit"
    fi
}

beit_slurm_srun() {
    trap _beit_slurm_on_usr1 USR1
    # srun no longer takes --cpus-per-task from the allocation (Slurm >= 22.05): pass it on
    srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "$@" &
    BEIT_SRUN_PID=$!
    # a trap runs only between commands: wait returns early (> 128) when USR1 arrives, so wait
    # again until srun itself has ended
    local rc
    while :; do
        wait "$BEIT_SRUN_PID"
        rc=$?
        kill -0 "$BEIT_SRUN_PID" 2>/dev/null || break
    done
    trap - USR1
    echo "beit-slurm: $(date -Is) step exited with $rc"
    return "$rc"
}
