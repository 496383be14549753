# Shared by the distributed training tests (sourced after tests/tap.sh; needs $PY):
#   same A B [exact|TOL_LOSS TOL_PARAM] [optim]   two runs' metrics and last checkpoints agree
#   overlapped RUN                                   every logged step posted its buckets during backward
# same A B [exact|TOL_LOSS TOL_PARAM] [optim]: the runs' metrics and last checkpoints agree
#   exact: every logged value except timings, and every parameter (and with "optim" every
#   AdamW moment) bit for bit; else loss and grad_norm within TOL_LOSS relative and every
#   parameter within TOL_PARAM absolute
same() {
  $PY - "$@" <<'PY'
import json, sys
import h5py, numpy as np
a, b, mode = sys.argv[1], sys.argv[2], sys.argv[3]
rest = sys.argv[4:]
skip = {"images_per_s", "elapsed_s", "eta_s", "comm_bytes", "comm_wait_s", "comm_overlap"}
ma = [json.loads(l) for l in open(a + "/metrics.jsonl")]
mb = [json.loads(l) for l in open(b + "/metrics.jsonl")]
assert len(ma) == len(mb) and ma, (len(ma), len(mb))
assert ma[-1]["step"] == mb[-1]["step"]
ca, cb = ["%s/ckpt-%08d.h5" % (d, ma[-1]["step"]) for d in (a, b)]   # the checkpoint of the last step
fa, fb = h5py.File(ca, "r"), h5py.File(cb, "r")
if mode == "exact":
    for x, y in zip(ma, mb):
        assert {k: v for k, v in x.items() if k not in skip} == {k: v for k, v in y.items() if k not in skip}, (x, y)
    bad = [k for k in fa["params"] if fa["params"][k][()].tobytes() != fb["params"][k][()].tobytes()]
    assert not bad and set(fa["params"]) == set(fb["params"]), bad[:5]
    if "optim" in rest:
        for k in ("exp_avg_flat", "exp_avg_sq_flat"):
            assert fa["optim"][k][()].tobytes() == fb["optim"][k][()].tobytes(), k
    print("# %d steps and %d tensors identical (%s)" % (len(ma), len(fa["params"]), ca[-16:]))
else:
    tl, tp = float(mode), float(rest[0])
    wl = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(ma, mb) for k in ("loss", "grad_norm"))
    wp = max(float(np.abs(fa["params"][k][()] - fb["params"][k][()]).max()) for k in fa["params"])
    print("# worst relative loss/grad_norm difference %.2e (tolerance %g), worst parameter difference %.2e "
          "(tolerance %g)" % (wl, tl, wp, tp))
    assert wl <= tl and wp <= tp
PY
}
overlapped() { # RUN: every logged step posted all its buckets during backward (comm_overlap 1)
  $PY -c "import json,sys; r=[json.loads(l) for l in open('$1/metrics.jsonl')]; v=[x['comm_overlap'] for x in r]; print('# comm_overlap', v); assert all(x == 1 for x in v) and all(x['comm_bytes'] > 0 for x in r)"
}
export PY
export -f same overlapped
