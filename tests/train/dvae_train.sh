#!/usr/bin/env bash
# beit dvae train end to end on a Fashion-MNIST subset with a tiny tokenizer: metrics.jsonl,
# checkpoints PyTorch loads with strict=True, 1 rank = 2 ranks, resume = uninterrupted, and
# bad inputs.   dvae_train.sh BEIT SRCDIR
BEIT=$1
SRC=$2
. "$SRC/tests/tap.sh"

$BEIT data import fashion-mnist "$T/fm.h5" >/dev/null 2>&1
cat > "$T/job.yaml" <<YAML
task: dvae
seed: 3
data: {path: $T/fm.h5, subset: 1024, eval_split: test}
dvae: {image_size: 28, in_chans: 1, vocab_size: 64, widths: [4, 8, 8], blocks_per_group: 1,
       recon: mse, kl_weight: 0.01, temp_start: 1.0, temp_end: 0.25}
train: {epochs: 1, global_batch: 32, log_every: 1, ckpt_every: 10, keep_last: 2}
optim: {lr: 3.0e-3, min_lr: 1.0e-4, warmup_steps: 4, weight_decay: 1.0e-4, clip_grad: 1.0}
YAML
# eval on a small split keeps the test fast: evaluate on the first 256 test images
EV="--set data.subset=1024"

run $MPI -np 1 $BEIT dvae train -c "$T/job.yaml" --out "$T/r1" --steps 20
check "1 rank: 20 steps exit 0" [ "$rc" = 0 ]
run $MPI -np 2 $BEIT dvae train -c "$T/job.yaml" --out "$T/r2" --steps 20
check "2 ranks: 20 steps exit 0" [ "$rc" = 0 ]

check "metrics.jsonl: one JSON object per step with step, loss, lr, images_per_s, temperature" $PY - "$T/r1/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["step"] for r in rows] == list(range(1, 21)), [r["step"] for r in rows]
for r in rows:
    for k in ("step", "loss", "lr", "images_per_s", "temperature", "kl_weight", "recon", "kl", "grad_norm", "eta_s"):
        assert k in r, k
PY
check "1 rank vs 2 ranks, same seed and global batch: losses of 20 steps within 1e-4 relative" $PY - "$T/r1/metrics.jsonl" "$T/r2/metrics.jsonl" <<'PY'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1])]
b = [json.loads(l)["loss"] for l in open(sys.argv[2])]
assert len(a) == len(b) == 20
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"# worst relative difference {worst:.2e}")
assert worst <= 1e-4, worst
assert a[-1] < a[0], "loss did not decrease"
PY
check "loss decreases over 20 steps" $PY -c "
import json; r=[json.loads(l)['loss'] for l in open('$T/r1/metrics.jsonl')]; assert r[-1] < 0.8*r[0], r"
check "keep_last 2: checkpoints of steps 10 and 20 remain" bash -c "ls '$T/r1' | grep -c '^ckpt-' | grep -qx 2 && [ -f '$T/r1/ckpt-00000020.h5' ]"
check "eval.json and reconstructions.png written" bash -c "[ -s '$T/r1/eval.json' ] && [ -s '$T/r1/reconstructions.png' ] && [ -s '$T/r1/config.yaml' ]"

check "PyTorch loads the checkpoint into torchref's DVAE with strict=True and gets the same eval MSE" \
  $PY - "$SRC" "$T/r1/ckpt-00000020.h5" "$T/fm.h5" "$T/r1/eval.json" <<'PY'
import sys, json, h5py, numpy as np, torch
sys.path.insert(0, sys.argv[1] + "/tools/torchref")
from dvae import DVAE
f = h5py.File(sys.argv[2], "r")
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
assert s(f.attrs["format"]) == "beit-checkpoint" and s(f.attrs["kind"]) == "dvae", dict(f.attrs)
assert int(f.attrs["step"]) == 20
m = DVAE(1, (4, 8, 8), 1, 64, "mse")
sd = {k: torch.from_numpy(f["params"][k][()]) for k in f["params"]}
m.load_state_dict(sd, strict=True)
x = torch.from_numpy(h5py.File(sys.argv[3], "r")["test/images"][:1024].astype(np.float32) / 255).permute(0, 3, 1, 2)
rec = m.reconstruct(m.tokens(x))
mse = float(((rec - x) ** 2).mean())
want = json.load(open(sys.argv[4]))["mse"]
print(f"# torch mse {mse:.6f}, beit mse {want:.6f}")
assert abs(mse - want) <= 1e-4 * want, (mse, want)
PY

# resume: 10 steps, then --resume auto to step 20 (--steps counts from the start) == the 20-step run
run $MPI -np 2 $BEIT dvae train -c "$T/job.yaml" --out "$T/r3" --steps 10
run $MPI -np 2 $BEIT dvae train -c "$T/job.yaml" --out "$T/r3" --steps 20 --resume auto
check "resume auto: exit 0 and says where it resumed" bash -c "[ $rc = 0 ] && grep -q 'resumed from .*ckpt-00000010.h5 at step 10' '$T/out'"
check "resumed run = uninterrupted run: losses of steps 11-20 and the final parameters match" $PY - "$T/r2" "$T/r3" <<'PY'
import json, sys, h5py, numpy as np
a = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
assert [r["step"] for r in b] == list(range(1, 21)), [r["step"] for r in b]
worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a[10:], b[10:]))
print(f"# worst relative loss difference {worst:.2e}")
assert worst <= 1e-6, worst
fa, fb = h5py.File(sys.argv[1] + "/ckpt-00000020.h5"), h5py.File(sys.argv[2] + "/ckpt-00000020.h5")
for k in fa["params"]:
    assert np.array_equal(fa["params"][k][()], fb["params"][k][()]), k
PY

# bad inputs
run $BEIT dvae train -c "$T/job.yaml" --out "$T/r4" --resume "$T/none.h5"
check "--resume of a missing file: exit 4 naming it" bash -c "[ $rc = 4 ] && grep -qF '$T/none.h5' '$T/err'"
run $BEIT dvae train -c "$T/job.yaml" --set "dvae.widths=[4,8,16]" --out "$T/r5" --resume "$T/r1/ckpt-00000020.h5"
check "--resume from a checkpoint of another shape: exit 5 naming the tensor and both shapes" \
  bash -c "[ $rc = 5 ] && grep -q 'tensor params/.* has shape \[.*\], the model expects \[.*\]' '$T/err'"
run $BEIT dvae train -c "$T/job.yaml" --out "$T/r6" --resume "$T/job.yaml"
check "--resume from a file that is not a checkpoint: exit 4" [ "$rc" = 4 ]
run $BEIT dvae train -c "$T/job.yaml"
check "no --out: exit 2" bash -c "[ $rc = 2 ] && grep -q -- '--out' '$T/err'"
run $BEIT dvae train -c "$T/job.yaml" --out "$T/r7" --set task=pretrain
check "a job of another task: exit 2" [ "$rc" = 2 ]
run $BEIT dvae train -c "$T/job.yaml" --out "$T/r8" --set data.path="$T/missing.h5"
check "missing data file: exit 3 naming it" bash -c "[ $rc = 3 ] && grep -qF '$T/missing.h5' '$T/err'"
run $BEIT dvae train -c "$T/job.yaml" --out "$T/r9" --set dvae.in_chans=3
check "3-channel tokenizer on 1-channel data: exit 5" [ "$rc" = 5 ]
run $BEIT dvae --help
check "beit dvae --help: exit 0 and describes train" bash -c "[ $rc = 0 ] && grep -q 'dvae train' '$T/out'"
finish
