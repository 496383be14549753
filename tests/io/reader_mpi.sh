#!/bin/bash
# The distributed reader under mpirun -np 1, 2, 3 (test_reader.c checks each run), then: the
# global batches of every step are identical for 1, 2 and 3 ranks (G = 64 is not divisible by 3,
# N = 1000 not by 64).
# usage: reader_mpi.sh TEST_READER
TR=$1
source "$(dirname "$0")/../tap.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

run "$TR" make "$T/reader.h5"
check "synthetic store written (N=1000, 32x32x3)" eval '[ $rc -eq 0 ] && [ -f "$T/reader.h5" ]'
for np in 1 2 3; do
    run mpirun --oversubscribe -np $np "$TR" check "$T/reader.h5" "$T/batches.$np"
    pass_through <"$T/out"
    check "mpirun -np $np exits 0" eval '[ $rc -eq 0 ] && [ -s "$T/batches.$np" ]'
done
check "every global batch (2 shuffled epochs + 1 sequential pass) is the same for 1 and 2 ranks" \
    cmp -s "$T/batches.1" "$T/batches.2"
check "every global batch is the same for 1 and 3 ranks" cmp -s "$T/batches.1" "$T/batches.3"
check "the batch listing has 2*15 shuffled + 16 sequential steps" \
    eval '[ $(grep -c "^shuffle" "$T/batches.1") -eq 30 ] && [ $(grep -c "^seq" "$T/batches.1") -eq 16 ]'
finish
