/* dist.h: the MPI communicator of a run and the collectives training needs. Every call is
 * checked (file:line on failure). Counts above INT_MAX are sent in chunks. */
#ifndef BEIT_DIST_H
#define BEIT_DIST_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm;
    int rank, size;
} beit_dist;

void dist_init(beit_dist *d, MPI_Comm comm);
/* In-place sums over all ranks. */
void dist_sum_f32(const beit_dist *d, float *buf, size_t n);
void dist_sum_f64(const beit_dist *d, double *buf, size_t n);
void dist_sum_i64(const beit_dist *d, int64_t *buf, size_t n);
double dist_max_f64(const beit_dist *d, double x);
/* 1 iff ok is non-zero on every rank: used to agree on success before renaming a file. */
int dist_all_ok(const beit_dist *d, int ok);
void dist_bcast(const beit_dist *d, void *buf, size_t bytes, int root);
void dist_barrier(const beit_dist *d);

#endif
