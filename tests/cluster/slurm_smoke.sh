#!/bin/bash
# A real single-node Slurm cluster (munged, slurmctld, slurmd; tests/cluster/slurm_env.sh),
# started and stopped here: the node comes up idle; srun --mpi=pmix starts a 2-rank Open MPI
# program; sbatch --wait of a 2-task script whose srun step runs it; `scontrol requeue` of a
# running job restarts it under the same job id with SLURM_RESTART_COUNT 1; `scancel
# --signal=USR1` reaches the step and not the batch shell, `--signal=B:USR1@S` reaches the batch
# shell and not the step (what jobs/slurm/common.sh relies on). Finally no daemon of the cluster
# is left running. The batch scripts of jobs/slurm/ themselves (every stage, preemption and
# requeue, scancel, a killed rank) are tested by tests/cluster/slurm_beit.sh. Needs root and the
# packages slurmctld slurmd slurm-client munge libpmix-dev.
# usage: slurm_smoke.sh
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../tap.sh"
source "$HERE/slurm_env.sh"

# true if any of the PIDs is alive (not a zombie)
any_alive() {
    local p
    for p in "$@"; do _slurm_alive "$p" "" && return 0; done
    return 1
}

slurm_scratch

# ---- start ----------------------------------------------------------------------------------------
t0=$SECONDS
run slurm_up "$C"
check "slurm_up: munged, slurmctld, slurmd started and the node idle (timeout ${SLURM_UP_TIMEOUT}s each)" \
    eval '[ $rc -eq 0 ]'
if [ "$rc" -ne 0 ]; then
    sed 's/^/# /' "$T/err" | head -n 120
    finish
fi
echo "# cluster up in $((SECONDS - t0)) s: $SLURM_CONF"
NODE=$(hostname -s)
run sinfo -h -n "$NODE" -o '%t %c %P'
check "sinfo: node $NODE idle with $(nproc) CPUs in the default partition" \
    eval '[ "$(cat "$T/out")" = "idle $(nproc) debug*" ]'
run srun --mpi=list
check "srun --mpi=list offers pmix" eval '[ $rc -eq 0 ] && grep -qx "[[:space:]]*pmix" "$T/err" "$T/out"'

# ---- srun of an MPI program -----------------------------------------------------------------------
cat >"$T/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d size %d ranksum %d\n", rank, size, sum);
    MPI_Finalize();
    return 0;
}
EOF
run mpicc -o "$T/hello" "$T/hello.c"
check "mpicc builds the MPI test program" eval '[ $rc -eq 0 ] && [ -x "$T/hello" ]'
printf 'rank 0 size 2 ranksum 1\nrank 1 size 2 ranksum 1\n' >"$T/hello.want"

run timeout 60 srun -n 2 --mpi=pmix "$T/hello"
check "srun -n 2 --mpi=pmix: ranks 0 and 1 of size 2, allreduce of the ranks = 1 (timeout 60s)" \
    eval '[ $rc -eq 0 ] && sort "$T/out" | cmp -s - "$T/hello.want"'

# ---- sbatch --wait ------------------------------------------------------------------------------------
cat >"$T/batch.sh" <<EOF
#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --output=$T/batch.log
srun --mpi=pmix "$T/hello" >"$T/batch.result"
EOF
run timeout 90 sbatch --wait --parsable "$T/batch.sh"
check "sbatch --wait of a 2-task script exits 0 (timeout 90s)" eval '[ $rc -eq 0 ]'
check "its srun --mpi=pmix step wrote ranks 0 and 1 of size 2" \
    eval 'sort "$T/batch.result" 2>/dev/null | cmp -s - "$T/hello.want"'

# ---- scontrol requeue of a running job ------------------------------------------------------------------
cat >"$T/requeue.sh" <<EOF
#!/bin/bash
#SBATCH --ntasks=1
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=$T/requeue.log
echo "run job=\$SLURM_JOB_ID restart=\${SLURM_RESTART_COUNT:-0}"
if [ "\${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then
    echo "finished job=\$SLURM_JOB_ID"
    exit 0
fi
echo running >"$T/requeue.running"
exec sleep 300
EOF
run sbatch --parsable "$T/requeue.sh"
rq=$(cut -d';' -f1 "$T/out")
check "sbatch of the requeue job gives a job id" eval '[ $rc -eq 0 ] && [[ $rq =~ ^[0-9]+$ ]]'
run eval 'slurm_wait_file "$T/requeue.running" 30 && slurm_wait_state "$rq" RUNNING 30'
check "the requeue job is RUNNING its first run (timeout 30s)" eval '[ $rc -eq 0 ]'
run scontrol requeue "$rq"
check "scontrol requeue $rq exits 0" eval '[ $rc -eq 0 ]'
t1=$SECONDS
run slurm_wait_state "$rq" COMPLETED $((SLURM_CRED_EXPIRE + 60))
echo "# requeued job completed after $((SECONDS - t1)) s (a requeued job waits cred_expire = ${SLURM_CRED_EXPIRE}s)"
check "the requeued job runs again and COMPLETES (timeout cred_expire + 60s)" eval '[ $rc -eq 0 ]'
check "the log shows run 0 and run 1 under the same job id $rq, then the second run's exit" \
    eval 'grep -x "run job=.*\|finished job=.*" "$T/requeue.log" | cmp -s - <(printf "run job=%s restart=0\nrun job=%s restart=1\nfinished job=%s\n" $rq $rq $rq)'
run scontrol show job "$rq"
check "scontrol show job: Restarts=1, ExitCode=0:0" eval 'out_has "Restarts=1" && out_has "ExitCode=0:0"'

# ---- USR1 -------------------------------------------------------------------------------------------
# The batch shell traps USR1 (marker .batch, then stops the step); the step's task traps it too
# (marker .step). Markers are per job id.
cat >"$T/usr1.sh" <<EOF
#!/bin/bash
#SBATCH --ntasks=1
P="$T/mark.\$SLURM_JOB_ID"
trap 'echo "batch got USR1" >>"\$P.batch"; touch "\$P.stop"' USR1
srun bash -c "trap 'echo step got USR1 >>\$P.step' USR1; echo ready >\$P.ready; while [ ! -e \$P.stop ]; do sleep 0.1; done" &
pid=\$!
# a trap interrupts wait: wait again until the step has ended
while :; do wait \$pid; rc=\$?; kill -0 \$pid 2>/dev/null || break; done
echo "step exited with \$rc"
exit \$rc
EOF
run sbatch --parsable --output="$T/usr1a.log" "$T/usr1.sh"
ua=$(cut -d';' -f1 "$T/out")
run slurm_wait_file "$T/mark.$ua.ready" 30
check "USR1 job $ua: its step is running (timeout 30s)" eval '[ $rc -eq 0 ]'
run scancel --signal=USR1 "$ua"
check "scancel --signal=USR1 exits 0" eval '[ $rc -eq 0 ]'
run slurm_wait_file "$T/mark.$ua.step" 20
check "scancel --signal=USR1 delivers USR1 to the step's task (trap marker, timeout 20s)" \
    eval '[ $rc -eq 0 ] && [ "$(cat "$T/mark.$ua.step")" = "step got USR1" ]'
sleep 1
check "... and not to the batch shell (no batch marker 1s later: Slurm signals only steps by default)" \
    eval '[ ! -e "$T/mark.$ua.batch" ]'
touch "$T/mark.$ua.stop"
run slurm_wait_state "$ua" COMPLETED 30
check "the job ends COMPLETED once told to stop (timeout 30s)" eval '[ $rc -eq 0 ]'

# the time-limit warning as pretrain.sbatch asks for it: --signal=B:USR1@S with a 1 min limit.
# slurmctld looks at time limits every 30 s and sends the signal at the first look at which at
# most S + 30 s are left (seen: S = 40, 50, 55 came 2..6 s after the submission, at once).
# S = 20 makes it come 10..40 s after the start: never before the script has set its trap.
run sbatch --parsable --time=1 --signal=B:USR1@20 --output="$T/usr1b.log" "$T/usr1.sh"
ub=$(cut -d';' -f1 "$T/out")
t1=$SECONDS
run slurm_wait_file "$T/mark.$ub.batch" 70
echo "# --signal=B:USR1@20 with --time=1 arrived $((SECONDS - t1)) s after the submission"
check "sbatch --time=1 --signal=B:USR1@20: the batch shell gets USR1 (trap marker, timeout 70s)" \
    eval '[ $rc -eq 0 ] && [ "$(cat "$T/mark.$ub.batch")" = "batch got USR1" ]'
run slurm_wait_state "$ub" COMPLETED 30
check "... the job ends COMPLETED (the trap stops the step before the limit; timeout 30s)" eval '[ $rc -eq 0 ]'
check "... and the step never got USR1 (B: signals the batch shell only)" eval '[ ! -e "$T/mark.$ub.step" ]'
check "... and srun was not signalled either (its step exited 0)" eval 'grep -qx "step exited with 0" "$T/usr1b.log"'

# ---- stop ---------------------------------------------------------------------------------------------
[ "$_fail" -eq 0 ] || slurm_logs "$C"
pids=$(awk '{ print $2 }' "$C/run/pids" | tr '\n' ' ')
run slurm_down "$C"
check "slurm_down stops every daemon (SIGTERM, SIGKILL after ${SLURM_STOP_TIMEOUT}s)" eval '[ $rc -eq 0 ]'
check "no munged/slurmctld/slurmd/slurmstepd of this cluster is left (pids $pids)" \
    eval '[ -z "$(slurm_leftovers "$C")" ] && ! any_alive $pids'
echo "# total $((SECONDS - t0)) s"
finish
