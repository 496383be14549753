# Shared by the batch scripts of jobs/slurm/ (sourced inside a Slurm batch job).
#
#   beit_slurm_env               export the per-rank thread counts, print a header line
#   beit_slurm_need FILE...      print a message for each missing file; non-zero if any
#   beit_slurm_train ARGS...     a training stage (dvae train, pretrain, finetune): runs
#                                `srun --mpi=pmix --kill-on-bad-exit=1 ARGS...` under the
#                                preemption protocol below; returns the status to exit with
#   beit_slurm_step ARGS...      a stage that cannot checkpoint (tokenize, eval): the same srun,
#                                signals only logged; returns srun's status
#   beit_slurm_shell CMD...      like beit_slurm_step for a command that calls srun itself
#                                (jobs/eval-checkpoints.sh with MPIRUN="srun --mpi=pmix ...")
#   BEIT_SLURM_STDOUT=FILE       (optional) where the step's stdout goes (e.g. beit eval's line)
#
# Preemption protocol (tested on a real Slurm 22.05 by tests/cluster/slurm_beit.sh). `beit`
# catches SIGUSR1 and SIGTERM while it trains: every rank finishes the current step, the ranks
# agree on the stop, write a checkpoint and exit with 8 (BEIT_EXIT_PREEMPTED).
#
#  - USR1 to this batch shell: `#SBATCH --signal=B:USR1@120` (120 to 150 s before --time runs out;
#    B: = this shell only) or `scancel -b --signal=USR1 JOBID` (checkpoint now and come back).
#    The trap passes it on with `scancel --signal=USR1 $SLURM_JOB_ID`, which Slurm delivers to
#    every task of the job's steps (the beit ranks) and neither to this shell nor to srun. (srun
#    itself must not be signalled: Slurm 22.05's srun dies of USR1, and turns SIGTERM into a
#    cancel of the step, SIGKILL after KillWait.) The script waits for srun; when the ranks
#    exited with 8 it runs `scontrol requeue $SLURM_JOB_ID`: the job goes back to the queue
#    under the same job id (SLURM_RESTART_COUNT + 1; the log continues, --open-mode=append) and
#    its next run continues with --resume auto from that checkpoint.
#  - `scancel --signal=USR1 JOBID` (no -b) reaches the ranks directly: same result (the ranks
#    exit 8, the script requeues).
#  - SIGTERM (scancel JOBID, the time limit itself, preemption by Slurm, node shutdown): Slurm
#    sends it to the ranks and to this shell, and SIGKILL KillWait seconds later (default 30):
#    the ranks write their checkpoint in that time and exit 8; the trap passes SIGTERM on in case
#    only this shell got it. The job is NOT requeued by the script (a scancel means stop; with
#    PreemptMode=REQUEUE Slurm requeues a preempted job itself); it ends with exit code 8, and a
#    later submission with the same OUT continues from the checkpoint. Exception: after a USR1
#    the script requeues even when the SIGTERM of the time limit came before the ranks stopped.
#  - A rank that dies (SIGKILL, node failure, a crash): --kill-on-bad-exit=1 ends the other
#    ranks at once and srun names the task ("task 1: Killed"); no requeue; the newest complete
#    checkpoint is kept and a resubmission resumes from it (a half-written one is a temporary
#    file that --resume auto never takes).
#
# Other exit codes of beit (README: 2 bad job, 3 bad data, 4 bad checkpoint, 5 mismatch, 6
# NaN/Inf, 7 output not writable) are returned as they are: requeueing would repeat them.
#
# mpirun inside the allocation instead of srun (e.g. a Slurm without PMIx): Open MPI reads the
# allocation, so
#     mpirun -np "$SLURM_NTASKS" --bind-to core -x OPENBLAS_NUM_THREADS build/beit pretrain ... &
# works in place of srun. mpirun forwards SIGUSR1 to every rank (Open MPI 4.1's default
# ess_base_forward_signals), so the USR1 trap would run `kill -USR1 <mpirun's pid>` instead of
# scancel; mpirun exits with the ranks' code 8. Do not send SIGTERM to mpirun: it aborts the job
# itself (the ranks get SIGTERM and still write their checkpoint, but mpirun exits 1, and
# SIGKILL follows after odls_base_sigkill_timeout = 1 s). Under mpirun a dead rank is named as
# "mpirun noticed that process rank 1 with PID ... exited on signal 9 (Killed)".

beit_slurm_env() {
    # one BLAS thread per allocated CPU of the task (OpenBLAS starts one per core otherwise)
    export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    echo "beit-slurm: $(date -Is) job ${SLURM_JOB_ID:-?} (${SLURM_JOB_NAME:-?}) restart ${SLURM_RESTART_COUNT:-0}" \
        "on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-?} tasks x ${SLURM_CPUS_PER_TASK:-1} CPUs"
}

beit_slurm_need() {
    local f bad=0
    for f in "$@"; do
        if [ ! -e "$f" ]; then
            echo "beit-slurm: $f not found (working directory $(pwd); relative paths are relative to the" \
                "directory sbatch was called in)" >&2
            bad=1
        fi
    done
    return $bad
}

_beit_slurm_log() { echo "beit-slurm: $(date -Is) $*"; }

# ---- signal traps -----------------------------------------------------------------------------
# _BEIT_MODE: train (forward to the ranks) or step (log only)
_beit_slurm_on_usr1() {
    _BEIT_GOT_USR1=1
    if [ "$_BEIT_MODE" = train ]; then
        _beit_slurm_log "USR1 (time limit near, or preemption): asking the ranks to checkpoint and stop" \
            "(scancel --signal=USR1 $SLURM_JOB_ID)"
        scancel --signal=USR1 "$SLURM_JOB_ID" ||
            _beit_slurm_log "scancel --signal=USR1 failed (no step running yet?)"
    else
        _beit_slurm_log "USR1 (time limit near, or preemption): this stage cannot checkpoint; it runs on" \
            "(it writes its output atomically: a kill leaves nothing partial)"
    fi
}

_beit_slurm_on_term() {
    _BEIT_GOT_TERM=1
    if [ "$_BEIT_MODE" = train ]; then
        _beit_slurm_log "SIGTERM (scancel, time limit, preemption or shutdown): the ranks checkpoint and stop;" \
            "waiting for them"
        scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || true
    else
        _beit_slurm_log "SIGTERM (scancel, time limit, preemption or shutdown): waiting for the step to end"
    fi
}

# run CMD... in the background under the traps; wait until it has ended (a trap interrupts
# `wait`, > 128); its status in _BEIT_RC. CMD is exec'd by the background child (not a shell
# function: a subshell would die of the SIGTERM Slurm sends to every process of the batch step)
_beit_slurm_run() {
    _BEIT_GOT_USR1=0
    _BEIT_GOT_TERM=0
    trap _beit_slurm_on_usr1 USR1
    trap _beit_slurm_on_term TERM
    if [ -n "${BEIT_SLURM_STDOUT:-}" ]; then
        "$@" >"$BEIT_SLURM_STDOUT" &
    else
        "$@" &
    fi
    local pid=$!
    while :; do
        wait "$pid"
        _BEIT_RC=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    trap - USR1 TERM
    _beit_slurm_log "step exited with $_BEIT_RC"
}


beit_slurm_train() {
    _BEIT_MODE=train
    # srun no longer takes --cpus-per-task from the allocation (Slurm >= 22.05): pass it on
    _beit_slurm_run srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "$@"
    local rc=$_BEIT_RC
    # requeue: the ranks stopped for a USR1 (rc 8), or were killed by one that came before
    # they could catch it (rc > 128); not when only SIGTERM came (scancel: stop)
    if { [ "$rc" -eq 8 ] || { [ "$_BEIT_GOT_USR1" = 1 ] && [ "$rc" -gt 128 ]; }; } &&
        { [ "$_BEIT_GOT_USR1" = 1 ] || [ "$_BEIT_GOT_TERM" = 0 ]; }; then
        _beit_slurm_log "preempted (exit $rc): requeueing job $SLURM_JOB_ID; its next run resumes from the" \
            "newest checkpoint (--resume auto)"
        if scontrol requeue "$SLURM_JOB_ID"; then
            return 0
        fi
        _beit_slurm_log "scontrol requeue failed (submitted with --no-requeue?): resubmit to continue"
        return "$rc"
    fi
    if [ "$rc" -eq 8 ]; then
        _beit_slurm_log "stopped by SIGTERM after writing a checkpoint: not requeued (a scancel, the time limit" \
            "without a USR1 warning, or Slurm's own preemption); a resubmission with the same --out continues"
    fi
    return "$rc"
}

beit_slurm_step() {
    _BEIT_MODE=step
    _beit_slurm_run srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}" "$@"
    return "$_BEIT_RC"
}

beit_slurm_shell() {
    _BEIT_MODE=step
    _beit_slurm_run "$@"
    return "$_BEIT_RC"
}
