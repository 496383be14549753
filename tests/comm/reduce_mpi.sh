#!/bin/bash
# test_reduce.c (the fixed-order bucketed reduction, ZeRO-1 AdamW) under mpirun -np 1, 2, 3.
#   reduce_mpi.sh TEST_REDUCE
TR=$1
source "$(dirname "$0")/../tap.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
for np in 1 2 3; do
    run mpirun --oversubscribe -np $np "$TR"
    pass_through <"$T/out"
    check "mpirun -np $np exits 0" [ "$rc" = 0 ]
done
finish
