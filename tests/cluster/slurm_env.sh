# A real single-node Slurm cluster for tests (sourced by bash scripts; no mocks).
#
#   slurm_up DIR      create DIR (must not exist, or be empty), write DIR/slurm.conf, start
#                     munged (as user munge, its own key and socket in DIR/munge), slurmctld and
#                     slurmd from it, export SLURM_CONF=DIR/slurm.conf, wait until the node is
#                     idle. Returns non-zero with a message and the daemon logs on stderr.
#   slurm_down DIR    cancel every job, stop slurmd, slurmctld, munged (SIGTERM, then SIGKILL
#                     after SLURM_STOP_TIMEOUT s), kill this cluster's leftover slurmstepd
#                     processes; returns 0 iff nothing of the cluster is left running.
#   slurm_leftovers DIR   print "name pid" of every process of the cluster still alive
#   slurm_logs DIR    print the daemon logs to stderr as "# " lines (TAP diagnostics)
#   slurm_job_state JOBID              the job's JobState (PENDING, RUNNING, COMPLETED, ...)
#   slurm_wait_state JOBID STATE SECS  wait until the job is in STATE; non-zero on timeout
#   slurm_wait_file FILE SECS          wait until FILE exists and is not empty
#   slurm_scratch     for a test script: C = a fresh cluster DIR, stopped and removed (and $T
#                     too) by an EXIT trap
#
# Everything (config, state, spool, logs, PID files, munge key and socket) lives under DIR, the
# daemons listen on two free TCP ports chosen per run and run in the foreground (-D/-F) as
# children of the calling shell, in its process group (a test runner that kills the group on a
# timeout kills them too). Use a fresh DIR per run (mktemp -d) and call slurm_down from an EXIT
# trap. Needs root and the Debian packages slurmctld slurmd slurm-client munge libpmix-dev
# (libpmix-dev: Slurm's mpi/pmix plugin dlopens libpmix.so, which only that package ships).
#
# Settings (environment): SLURM_UP_TIMEOUT (s, default 90) for each start-up wait,
# SLURM_STOP_TIMEOUT (s, default 20) per daemon before SIGKILL, SLURM_CRED_EXPIRE (s, default
# 10: also how long a requeued job waits before it may start again; Slurm's default is 120).

SLURM_UP_TIMEOUT=${SLURM_UP_TIMEOUT:-90}
SLURM_STOP_TIMEOUT=${SLURM_STOP_TIMEOUT:-20}
SLURM_CRED_EXPIRE=${SLURM_CRED_EXPIRE:-10}

_slurm_err() { echo "slurm_env: $*" >&2; }

# a process is alive if it exists and is not a zombie, and its name is $2 (guards PID reuse)
_slurm_alive() {
    local pid=$1 name=$2 stat
    [ -r "/proc/$pid/stat" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # field 2 is "(comm)", field 3 the state
    [[ $stat =~ ^[0-9]+\ \((.*)\)\ ([A-Za-z]) ]] || return 1
    [ "${BASH_REMATCH[2]}" != Z ] && [ "${BASH_REMATCH[2]}" != X ] || return 1
    [ -z "$name" ] || [ "${BASH_REMATCH[1]}" = "$name" ]
}

# true if TCP port $1 appears as a local port in /proc/net/tcp{,6} (any state)
_slurm_port_used() {
    local hex
    hex=$(printf '%04X' "$1")
    awk -v h="$hex" 'FNR > 1 { split($2, a, ":"); if (a[2] == h) f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# two consecutive free ports in 20000..59999
_slurm_pick_ports() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! _slurm_port_used "$p" && ! _slurm_port_used $((p + 1)); then
            echo "$p"
            return 0
        fi
    done
    return 1
}

slurm_logs() {
    local dir=$1 f
    # slurmctld/slurmd -D copy their log to stdout: print the .out file only without a .log
    for f in "$dir"/log/*; do
        [ -f "$f" ] || continue
        [[ $f == *.out && -s ${f%.out}.log ]] && continue
        echo "# ---- $f (last 40 lines)" >&2
        tail -n 40 "$f" | sed 's/^/# /' >&2
    done
}

# poll CMD every 0.2 s until it succeeds, for at most SECS; if any process listed in
# DIR/run/pids dies meanwhile, stop at once. usage: _slurm_poll DIR SECS CMD...
_slurm_poll() {
    local dir=$1 secs=$2 name pid
    shift 2
    local end=$((SECONDS + secs))
    while :; do
        "$@" && return 0
        while read -r name pid; do
            if ! _slurm_alive "$pid" ""; then # no name check: it may not have exec'd yet
                _slurm_err "$name (pid $pid) exited during start-up"
                return 2
            fi
        done <"$dir/run/pids"
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}

# why _slurm_poll gave up (its status $1)
_slurm_why() { [ "$1" -eq 2 ] && echo " (a daemon died, see above)" || echo " (timeout ${SLURM_UP_TIMEOUT}s)"; }

_slurm_record() { echo "$1 $2" >>"$3/run/pids"; }

_slurm_munge_ok() {
    munge -n -S "$1/munge/munge.socket" 2>/dev/null | unmunge -S "$1/munge/munge.socket" >/dev/null 2>&1
}
_slurm_ctld_ok() { scontrol ping 2>/dev/null | grep -q "is UP"; }
_slurm_node_idle() { [ "$(sinfo -h -n "$1" -o %t 2>/dev/null)" = idle ]; }

slurm_up() {
    local dir=$1 prc
    [ -n "$dir" ] || { _slurm_err "usage: slurm_up DIR"; return 2; }
    if [ "$(id -u)" -ne 0 ]; then
        _slurm_err "needs root (slurmd launches jobs as their users; munged runs as user munge)"
        return 1
    fi
    local c missing=""
    for c in munged munge unmunge slurmctld slurmd sinfo srun sbatch scontrol scancel squeue setpriv; do
        command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
    done
    if [ -n "$missing" ]; then
        _slurm_err "missing commands:$missing (Debian packages: slurmctld slurmd slurm-client munge; tools/setup installs them)"
        return 1
    fi
    id munge >/dev/null 2>&1 || { _slurm_err "no user 'munge' (package munge)"; return 1; }
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        _slurm_err "$dir is not empty: use a fresh directory (mktemp -d)"
        return 1
    fi
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd)
    if [ ${#dir} -gt 60 ]; then # unix socket paths (munge, slurmstepd) are limited to 107 bytes
        _slurm_err "$dir: path too long for the daemons' sockets (keep it under 60 characters)"
        return 1
    fi
    mkdir -p "$dir"/{state,spool,log,run,munge,tmp} || return 1
    : >"$dir/run/pids"
    chmod 711 "$dir" # munged (user munge) must traverse it to reach DIR/munge
    chown munge:munge "$dir/munge" && chmod 711 "$dir/munge" || return 1 # munged wants o+x on its socket dir

    # Jobs or settings of an enclosing Slurm allocation must not leak into this cluster
    local v
    for v in $(compgen -e); do
        case $v in SLURM_* | SBATCH_* | SRUN_* | SALLOC_* | SQUEUE_* | SINFO_* | SCONTROL_* | SACCT_*) unset "$v" ;; esac
    done

    # munge: its own key and socket
    head -c 1024 /dev/urandom >"$dir/munge/munge.key"
    chown munge:munge "$dir/munge/munge.key" && chmod 400 "$dir/munge/munge.key"
    setpriv --reuid=munge --regid=munge --init-groups -- munged -F \
        --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" >"$dir/log/munged.out" 2>&1 &
    _slurm_record munged $! "$dir"
    _slurm_poll "$dir" "$SLURM_UP_TIMEOUT" _slurm_munge_ok "$dir"
    prc=$?
    if [ $prc -ne 0 ]; then
        _slurm_err "munged does not answer on $dir/munge/munge.socket$(_slurm_why $prc)"
        slurm_logs "$dir"
        return 1
    fi

    # slurm.conf
    local host cpus mem_kb mem port first_job
    host=$(hostname -s)
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    mem=$((mem_kb * 9 / 10 / 1024)) # a bit below the real size, or the node drains ("Low RealMemory")
    port=$(_slurm_pick_ports) || { _slurm_err "no free TCP port pair in 20000..59999"; return 1; }
    # job ids differ between clusters (names under TmpFS and in logs stay apart; a left-over
    # cluster of an earlier run cannot be mistaken for this one)
    first_job=$(((port - 20000) * 100 + 1))
    cat >"$dir/slurm.conf" <<EOF
# generated by tests/cluster/slurm_env.sh: a single-node test cluster, everything under $dir
ClusterName=beittest
FirstJobId=$first_job
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=$SLURM_CRED_EXPIRE
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=pmix
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
EnforcePartLimits=ALL
ReturnToService=2
JobRequeue=1
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$dir/plugstack.conf" # not the system's /etc/slurm/plugstack.conf.d
    export SLURM_CONF="$dir/slurm.conf"

    slurmctld -D -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 &
    _slurm_record slurmctld $! "$dir"
    _slurm_poll "$dir" "$SLURM_UP_TIMEOUT" _slurm_ctld_ok
    prc=$?
    if [ $prc -ne 0 ]; then
        _slurm_err "slurmctld does not answer 'scontrol ping'$(_slurm_why $prc)"
        slurm_logs "$dir"
        return 1
    fi
    slurmd -D -N "$host" -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 &
    _slurm_record slurmd $! "$dir"
    _slurm_poll "$dir" "$SLURM_UP_TIMEOUT" _slurm_node_idle "$host"
    prc=$?
    if [ $prc -ne 0 ]; then
        _slurm_err "node $host not idle$(_slurm_why $prc): sinfo says '$(sinfo -h -n "$host" -o '%t %E' 2>&1)'"
        slurm_logs "$dir"
        return 1
    fi
    return 0
}

# slurmstepd processes of this cluster: they inherit SLURM_CONF from our slurmd
_slurm_stepds() {
    local dir=$1 p
    for p in $(pgrep -x slurmstepd 2>/dev/null); do
        _slurm_alive "$p" slurmstepd || continue # exited (a zombie of an init that does not reap)
        if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$dir/slurm.conf"; then
            echo "$p"
        fi
    done
}

slurm_leftovers() {
    local dir=$1 name pid
    [ -f "$dir/run/pids" ] || return 0
    while read -r name pid; do
        _slurm_alive "$pid" "$name" && echo "$name $pid"
    done <"$dir/run/pids"
    for pid in $(_slurm_stepds "$dir"); do
        echo "slurmstepd $pid"
    done
}

# stop one daemon: SIGTERM, wait, SIGKILL after SLURM_STOP_TIMEOUT s; reap it if it is our child
_slurm_stop() {
    local name=$1 pid=$2 end
    if _slurm_alive "$pid" "$name"; then
        kill -TERM "$pid" 2>/dev/null
        end=$((SECONDS + SLURM_STOP_TIMEOUT))
        while _slurm_alive "$pid" "$name" && [ $SECONDS -lt $end ]; do sleep 0.2; done
        if _slurm_alive "$pid" "$name"; then
            _slurm_err "$name (pid $pid) still running ${SLURM_STOP_TIMEOUT}s after SIGTERM: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            end=$((SECONDS + 10))
            while _slurm_alive "$pid" "$name" && [ $SECONDS -lt $end ]; do sleep 0.2; done
        fi
    fi
    wait "$pid" 2>/dev/null
    ! _slurm_alive "$pid" "$name"
}

slurm_down() {
    local dir=$1 name pid ok=0 end
    [ -n "$dir" ] && [ -f "$dir/run/pids" ] || return 0
    dir=$(cd "$dir" && pwd)
    # cancel every job while the controller is up, and give them KillWait to go
    if [ -f "$dir/slurm.conf" ] && grep -q "^slurmctld " "$dir/run/pids"; then
        export SLURM_CONF="$dir/slurm.conf"
        if _slurm_ctld_ok; then
            local jobs
            jobs=$(squeue -h -o %i 2>/dev/null)
            # shellcheck disable=SC2086
            [ -z "$jobs" ] || scancel --quiet $jobs 2>/dev/null
            end=$((SECONDS + 15))
            while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.3; done
        fi
    fi
    for name in slurmd slurmctld munged; do
        while read -r n pid; do
            [ "$n" = "$name" ] || continue
            _slurm_stop "$name" "$pid" || ok=1
        done <"$dir/run/pids"
    done
    for pid in $(_slurm_stepds "$dir"); do
        _slurm_err "slurmstepd (pid $pid) outlived slurmd: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    done
    sleep 0.2
    if [ -n "$(slurm_leftovers "$dir")" ]; then
        _slurm_err "still running after slurm_down: $(slurm_leftovers "$dir" | tr '\n' ' ')"
        ok=1
    fi
    return $ok
}

# slurm_scratch (for the test scripts, after tap.sh has made $T): C = a new cluster directory;
# on exit the cluster is stopped, C removed (kept with SLURM_KEEP set) and $T removed. $T is
# made world-readable: job scripts run as root, but the directory should look like a shared one.
slurm_scratch() {
    C=$(mktemp -d /tmp/beit_slurm.XXXXXX)
    trap _slurm_scratch_cleanup EXIT
    chmod 755 "$T"
}
_slurm_scratch_cleanup() {
    slurm_down "$C" || true
    if [ -n "${SLURM_KEEP:-}" ]; then echo "# SLURM_KEEP: cluster directory kept: $C"; else rm -rf "$C"; fi
    rm -rf "$T"
}

slurm_job_state() {
    scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1
}

slurm_wait_state() {
    local id=$1 want=$2 secs=$3 end
    if ! [[ $id =~ ^[0-9]+$ && $secs =~ ^[0-9]+$ ]]; then
        _slurm_err "usage: slurm_wait_state JOBID STATE SECS (got '$id' '$want' '$secs')"
        return 2
    fi
    end=$((SECONDS + secs))
    while [ "$(slurm_job_state "$id")" != "$want" ]; do
        if [ $SECONDS -ge $end ]; then
            _slurm_err "job $id not $want within ${secs}s (now '$(slurm_job_state "$id")')"
            return 1
        fi
        sleep 0.2
    done
}

slurm_wait_file() {
    local f=$1 end
    [[ $2 =~ ^[0-9]+$ ]] || { _slurm_err "usage: slurm_wait_file FILE SECS"; return 2; }
    end=$((SECONDS + $2))
    while [ ! -s "$f" ]; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
