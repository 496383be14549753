# Shared by the fault tests (sourced after tests/tap.sh): tiny training jobs, rank PIDs,
# checkpoint checks and run comparisons.
#
#   write_jobs DIR          DIR/small.yaml: a tiny synthetic BEiT (16k parameters, ~12 ms a step
#                           on 2 ranks, 300 steps, a checkpoint every 50); DIR/big.yaml: 1.8M
#                           parameters (21 MB checkpoints, a checkpoint every 5 steps)
#   rank_pid PID R          the PID of rank R (OMPI_COMM_WORLD_RANK) among the children of
#                           mpirun = PID or PID's child (waits up to 30 s for it)
#   mpirun_pid PID          mpirun's PID: PID itself, or its child (PID = `timeout ... mpirun`)
#   elapsed_since T0        seconds since T0 (an $EPOCHREALTIME value); below X Y: X < Y
#   wait_lines FILE N SECS  wait until FILE has at least N lines
#   run_reference           small.yaml uninterrupted on 2 ranks into $T/ref (300 steps), checked
#   ckpts_complete DIR      every ckpt-*.h5 in DIR has complete = 1 and its step in its name
#                           (prints them); false if one is not, or there is none
#   ckpt_step FILE          the checkpoint's step attribute
#   same_run A B            A's and B's runs agree bit for bit: every step's logged values (the
#                           last record of each step: a resumed run logs again the steps after
#                           its checkpoint), the parameters and AdamW moments of B's last checkpoint
#                           vs A's checkpoint of that step
#   no_tmp DIR              no temporary checkpoint file (.ckpt-*.tmp.*) in DIR
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
PY=/usr/bin/python3
MPI="mpirun --oversubscribe"

write_jobs() {
    cat >"$1/small.yaml" <<'YAML'
task: pretrain
seed: 1
data: {source: synthetic, synthetic_size: 480}
model: {arch: beit, img_size: 28, patch_size: 4, in_chans: 1, embed_dim: 24, depth: 2, num_heads: 3, vocab_size: 64, drop_path: 0.1}
mask: {type: block, num_patches: 20, min_patches: 4}
pretrain: {target: pixels}
train: {epochs: 10, global_batch: 16, log_every: 1, ckpt_every: 50, keep_last: 2}
optim: {lr: 3.0e-3, warmup_steps: 2, clip_grad: 0.5}
YAML
    sed -e 's/embed_dim: 24, depth: 2/embed_dim: 192, depth: 4/' -e 's/ckpt_every: 50/ckpt_every: 5/' \
        "$1/small.yaml" >"$1/big.yaml"
}

# mpirun's PID: $1 itself, or its child (when $1 is `timeout ... mpirun`)
mpirun_pid() {
    local c
    if [ "$(cat "/proc/$1/comm" 2>/dev/null)" = mpirun ]; then
        echo "$1"
    else
        c=$(pgrep -P "$1" -x mpirun | head -n 1)
        [ -n "$c" ] && echo "$c"
    fi
}

rank_pid() {
    local p m end=$((SECONDS + 30))
    while [ $SECONDS -lt $end ]; do
        m=$(mpirun_pid "$1")
        for p in $(pgrep -P "${m:-1}"); do
            if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
                echo "$p"
                return 0
            fi
        done
        sleep 0.1
    done
    return 1
}

# seconds since $1 (an $EPOCHREALTIME), and whether that is below $2
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
below() { awk -v x="$1" -v y="$2" 'BEGIN { exit !(x < y) }'; }

run_reference() {
    run $MPI -np 2 $BEIT pretrain -c "$T/small.yaml" --out "$T/ref"
    check "reference: 300 steps on 2 ranks, uninterrupted" bash -c "[ $rc = 0 ] && [ -f '$T/ref/ckpt-00000300.h5' ]"
}

wait_lines() {
    local end=$((SECONDS + $3))
    until [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.05
    done
}

ckpts_complete() {
    $PY - "$1" <<'PY'
import glob, os, re, sys
import h5py
files = sorted(glob.glob(os.path.join(sys.argv[1], "ckpt-*.h5")))
assert files, "no checkpoint"
for p in files:
    with h5py.File(p, "r") as f:
        step = int(re.search(r"ckpt-(\d+)\.h5$", p).group(1))
        assert f.attrs.get("complete") == 1, p + ": no complete = 1"
        assert int(f.attrs["step"]) == step, p
        n = sum(f["params"][k].size for k in f["params"])
        assert f["optim"]["exp_avg_flat"].shape == (n,), p
    print("# complete: %s (step %d)" % (os.path.basename(p), step))
PY
}

ckpt_step() { $PY -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r').attrs['step']))" "$1"; }

same_run() {
    $PY - "$1" "$2" <<'PY'
import json, sys
import h5py
a, b = sys.argv[1], sys.argv[2]
skip = {"images_per_s", "elapsed_s", "eta_s", "comm_bytes", "comm_wait_s", "comm_overlap"}
def records(d):
    out = {}
    for line in open(d + "/metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = {k: v for k, v in r.items() if k not in skip}   # the last record of a step
    return out
ma, mb = records(a), records(b)
assert ma.keys() == mb.keys(), (len(ma), len(mb))
bad = [s for s in ma if ma[s] != mb[s]]
assert not bad, ("steps differ", bad[:3], ma[bad[0]], mb[bad[0]])
last = max(mb)
fa, fb = [h5py.File("%s/ckpt-%08d.h5" % (d, last), "r") for d in (a, b)]
bad = [k for k in fa["params"] if fa["params"][k][()].tobytes() != fb["params"][k][()].tobytes()]
assert not bad and set(fa["params"]) == set(fb["params"]), bad[:5]
for k in ("exp_avg_flat", "exp_avg_sq_flat"):
    assert fa["optim"][k][()].tobytes() == fb["optim"][k][()].tobytes(), k
print("# %d steps: every logged value, %d tensors and the AdamW moments identical" % (len(ma), len(fa["params"])))
PY
}

no_tmp() { [ -z "$(ls -A "$1" | grep -F '.tmp.' || true)" ]; }
export PY
export -f ckpts_complete ckpt_step same_run no_tmp below
