#!/bin/bash
# test_reduce.c (the fixed-order bucketed reduction, ZeRO-1 AdamW) under mpirun -np 1, 2, 3.
# And `beit bench reduce` (the same reduction timed; it checks its sums) at 3 ranks, both modes.
#   reduce_mpi.sh TEST_REDUCE BEIT
TR=$1
BEIT=$2
source "$(dirname "$0")/../tap.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
for np in 1 2 3; do
    run mpirun --oversubscribe -np $np "$TR"
    pass_through <"$T/out"
    check "mpirun -np $np exits 0" [ "$rc" = 0 ]
done
for mode in "" --zero; do
    run mpirun --oversubscribe -np 3 "$BEIT" bench reduce --floats 1000,70001 --reps 2 $mode
    check "beit bench reduce ${mode:-(all-reduce)} at 3 ranks: exit 0, two sizes timed" \
        bash -c "[ $rc = 0 ] && $PY -c 'import json,sys; j=json.loads(open(sys.argv[1]).read().splitlines()[-1]); \
            assert j[\"ranks\"] == 3 and [s[\"floats\"] for s in j[\"sizes\"]] == [1000, 70001] and \
            all(len(s[\"seconds\"]) == 2 and s[\"bytes_sent_rank0\"] > 0 for s in j[\"sizes\"])' '$T/out'"
done
finish
