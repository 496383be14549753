# TAP helpers for the script tests (sourced; the shell counterpart of harness.c).
#   run CMD...          run, keeping exit code in $rc, stdout in $T/out, stderr in $T/err
#   check DESC CMD...   "ok N - DESC" if CMD succeeds, else "not ok N - DESC" (+ stderr excerpt)
#   finish              print the plan, exit 0 iff every check passed
T=$(mktemp -d /tmp/beit_data_test.XXXXXX)
trap 'rm -rf "$T"' EXIT
_n=0
_fail=0
export OPENBLAS_NUM_THREADS=1
# Open MPI refuses root by default; cluster users are not root, this test machine is
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI="mpirun --oversubscribe" # ranks may exceed the 2 cores
PY=/usr/bin/python3          # Debian's, with torch and h5py

run() {
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
}

check() {
    local desc=$1
    shift
    _n=$((_n + 1))
    if "$@"; then
        echo "ok $_n - $desc"
    else
        echo "not ok $_n - $desc"
        _fail=$((_fail + 1))
        echo "# rc=${rc:-} stderr: $(head -c 600 "$T/err" 2>/dev/null | tr '\n' ' ')"
        echo "# stdout: $(head -c 600 "$T/out" 2>/dev/null | tr '\n' ' ')"
    fi
}

# pass_through: re-emit the TAP lines of another program (stdin), renumbered; diagnostics kept
pass_through() {
    local line
    while IFS= read -r line; do
        if [[ $line =~ ^(not )?ok( [0-9]+)?( -)?(.*)$ ]]; then
            _n=$((_n + 1))
            if [ -n "${BASH_REMATCH[1]}" ]; then
                _fail=$((_fail + 1))
                echo "not ok $_n -${BASH_REMATCH[4]}"
            else
                echo "ok $_n -${BASH_REMATCH[4]}"
            fi
        elif [[ $line == "#"* ]]; then
            echo "$line"
        fi
    done
}

finish() {
    echo "1..$_n"
    [ "$_fail" -eq 0 ]
    exit $?
}

# no file at $1 and no temporary file of it (".<base>.tmp.<pid>") in its directory
no_output() {
    local dir base
    dir=$(dirname "$1")
    base=$(basename "$1")
    [ ! -e "$1" ] && [ -z "$(ls -A "$dir" | grep -F ".$base.tmp." || true)" ]
}

err_has() { grep -qF -- "$1" "$T/err"; }
out_has() { grep -qF -- "$1" "$T/out"; }

# same_metrics A B N: run directory B's metrics.jsonl covers steps 1..N exactly and, timing
# fields aside, equals run directory A's at those steps, bit for bit (the last record of each
# step counts: a resumed run logs again the steps after its checkpoint)
same_metrics() {
    $PY - "$1" "$2" "$3" <<'PY'
import json, sys
skip = {"images_per_s", "elapsed_s", "eta_s", "comm_bytes", "comm_wait_s", "comm_overlap"}
def records(d):
    return {r["step"]: {k: v for k, v in r.items() if k not in skip}
            for r in map(json.loads, open(d + "/metrics.jsonl"))}
a, b = records(sys.argv[1]), records(sys.argv[2])
n = int(sys.argv[3])
assert sorted(b) == list(range(1, n + 1)), sorted(b)[-3:]
bad = [s for s in b if a.get(s) != b[s]]
assert not bad, [(s, a.get(s), b[s]) for s in bad[:2]]
PY
}
