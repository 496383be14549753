#!/usr/bin/env bash
# Evaluate every checkpoint of a fine-tuning run directory and collect the JSON lines of
# `beit eval` into one table (TSV) -- for batch scripts (sbatch this, or run it inside an
# allocation; RANKS ranks per evaluation).
#
#   jobs/eval-checkpoints.sh RUN_DIR DATA.h5 [SPLIT] > table.tsv
#   RANKS=4 MPIRUN="srun --mpi=pmix" jobs/eval-checkpoints.sh runs/finetune data/fmnist.h5 test
#
# Columns: step, top1, top5 (classification) or miou, pixel_acc (segmentation), n, sha256,
# checkpoint. The raw JSON lines go to RUN_DIR/eval-<SPLIT>.jsonl. A checkpoint that fails to
# evaluate is reported on stderr with beit's exit code and the script goes on; the script's
# exit code is the last failure's (0 if every evaluation succeeded).
set -uo pipefail
RUN=${1:?usage: $0 RUN_DIR DATA.h5 [SPLIT]}
DATA=${2:?usage: $0 RUN_DIR DATA.h5 [SPLIT]}
SPLIT=${3:-test}
RANKS=${RANKS:-1}
BEIT=${BEIT:-$(cd "$(dirname "$0")/.." && pwd)/build/beit}
MPIRUN=${MPIRUN:-mpirun}
[ "$MPIRUN" = mpirun ] && MPIRUN="mpirun --oversubscribe"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
out="$RUN/eval-$SPLIT.jsonl"
: > "$out"
status=0
for ck in "$RUN"/ckpt-*.h5; do
  [ -e "$ck" ] || { echo "$0: no checkpoints in $RUN" >&2; exit 4; }
  if line=$($MPIRUN -n "$RANKS" "$BEIT" eval --checkpoint "$ck" --data "$DATA" --split "$SPLIT"); then
    echo "$line" >> "$out"
  else
    rc=$?
    echo "$0: $ck: beit eval exited with $rc" >&2
    status=$rc
  fi
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit(0)
metrics = ["top1", "top5"] if rows[0]["task"] == "classification" else ["miou", "pixel_acc"]
print("\t".join(["step"] + metrics + ["n", "sha256", "checkpoint"]))
for r in sorted(rows, key=lambda r: r["step"]):
    print("\t".join([str(r["step"])] + ["%.4f" % r[m] for m in metrics] + [str(r["n"]), r["checkpoint_sha256"][:12], r["checkpoint"]]))
PY
exit $status
