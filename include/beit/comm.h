/* comm.h: the MPI communicator of a run and the collectives training needs. Every call is
 * checked (file:line on failure). Counts above INT_MAX are sent in chunks.
 *
 * Gradient reduction with a fixed summation order (dist_reducer)
 * --------------------------------------------------------------
 * The flat gradient buffer [0, total) (params.h: ordered so that the gradients that become
 * final first come first) is cut into buckets: a small first one (min(1 MiB, bucket)), then
 * `dist.bucket_mb` MiB each (at least 1024 floats), the last one shorter. Each bucket is cut
 * into R chunks (R = ranks), chunk j = [lo + n*j/R, lo + n*(j+1)/R): rank j OWNS chunk j of
 * every bucket (sizes differ by at most one float; no padding is needed for any total, and a
 * bucket shorter than R floats leaves some chunks empty). A bucket is reduced in two phases
 * of point-to-point messages on a private duplicate of the communicator:
 *   1. reduce-scatter: every rank sends chunk j of its bucket to rank j (MPI_Isend/Irecv);
 *      the owner sums its chunk over the ranks IN RANK ORDER 0..R-1, one float add at a time:
 *      s = g_0; s += g_1; ...; s += g_{R-1}.
 *   2. all-gather (all-reduce mode only): the owner sends the summed chunk to every rank.
 * So the sum of every element is the same float expression, whatever the bucket boundaries,
 * the chunk owner, the message timing or Open MPI's collective algorithms: blocking and
 * overlapped reductions, and ZeRO-1 or not, give bit-identical gradients at a given rank
 * count. Messages per rank and bucket: 2(R-1) sends of ~n/R floats, 2(R-1)/R n floats in all
 * (what a ring all-reduce sends).
 *
 * Use:   dist_reduce_begin(r, grad, gather);            every rank, the same `gather`
 *        dist_reduce_ready(r, upto) ...                 optional, during backward (overlap):
 *                                                       posts the buckets inside [0, upto)
 *                                                       in bucket order, progresses the rest
 *        dist_reduce_end(r);                            posts what is left, waits for all
 * gather = 1: all-reduce (every rank gets every sum); gather = 0: reduce-scatter (ZeRO-1: a
 * rank's sums are final in its owned chunks only). dist_allgather_owned then sends each
 * rank's owned chunks of a buffer (the updated parameters) to every rank.
 * Memory: receive buffers of (R-1)/R * total floats. Buckets are posted in index order on
 * every rank; each bucket/phase has its own message tag.
 */
#ifndef BEIT_COMM_H
#define BEIT_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    MPI_Comm comm;
    int rank, size;
} beit_dist;

void dist_init(beit_dist *d, MPI_Comm comm);
/* In-place sums over all ranks (MPI_Allreduce: the order is Open MPI's). */
void dist_sum_f32(const beit_dist *d, float *buf, size_t n);
void dist_sum_f64(const beit_dist *d, double *buf, size_t n);
void dist_sum_i64(const beit_dist *d, int64_t *buf, size_t n);
/* In-place sum over all ranks in rank order 0..R-1 (MPI_Allgather + a fixed-order sum): the
 * same bits on every rank and in every run with the same per-rank values. For small n. */
void dist_sum_f64_ordered(const beit_dist *d, double *buf, size_t n);
double dist_max_f64(const beit_dist *d, double x);
/* 1 iff ok is non-zero on every rank: used to agree on success before renaming a file. */
int dist_all_ok(const beit_dist *d, int ok);
void dist_bcast(const beit_dist *d, void *buf, size_t bytes, int root);
void dist_barrier(const beit_dist *d);

/* A range [lo, hi) of the flat buffer and where it starts in a rank's compact array. */
typedef struct {
    size_t lo, hi, off;
} dist_range;

typedef struct {
    size_t lo, hi;    /* the bucket */
    size_t *cut;      /* [R+1]: chunk j = [cut[j], cut[j+1]) */
    int state;        /* 0 idle, 1 reduce-scatter in flight, 2 all-gather in flight, 3 done */
    MPI_Request *req; /* [2(R-1)] the phase's receives then sends */
    float *recv;      /* [(R-1) * own chunk] phase 1: the other ranks' parts of my chunk */
} dist_bucket;

typedef struct {
    const beit_dist *d;
    MPI_Comm comm;  /* private duplicate: no tag clash with anything else */
    int tag_mod;    /* tags are (2 * bucket + phase) % tag_mod */
    size_t total;   /* floats */
    size_t bucket_floats, first_floats;
    int nb;
    dist_bucket *b;
    /* this rank's owned chunks, ascending, empty ones left out; off = position in a compact
     * array of own_floats floats (ZeRO-1 optimizer state) */
    int nown;
    dist_range *own;
    size_t own_floats;
    /* the reduction in progress */
    float *buf;
    int gather, next, active;
    /* statistics since dist_reducer_init (this rank): bytes it sent in gradient and
     * parameter messages, seconds it waited in dist_reduce_end / dist_allgather_owned */
    uint64_t bytes_sent;
    double wait_s;
    uint64_t buckets_early, buckets_total; /* posted by dist_reduce_ready / by any path */
} dist_reducer;

/* Layout for a buffer of `total` floats with buckets of bucket_mb MiB (collective: dups the
 * communicator). Identical arguments on every rank. */
void dist_reducer_init(dist_reducer *r, const beit_dist *d, size_t total, double bucket_mb);
void dist_reducer_free(dist_reducer *r);
void dist_reduce_begin(dist_reducer *r, float *buf, int gather);
/* buf[0, upto) is final on this rank: post every not yet posted bucket with hi <= upto (in
 * bucket order), then make progress on the posted ones (MPI_Test; a bucket whose phase 1 is
 * complete is summed and its phase 2 posted). Cheap when there is nothing to do. */
void dist_reduce_ready(dist_reducer *r, size_t upto);
/* Post the remaining buckets, wait until the reduction is complete. */
void dist_reduce_end(dist_reducer *r);
/* Every rank sends its owned chunks of buf to every rank (blocking): afterwards buf is the
 * owners' values everywhere. */
void dist_allgather_owned(dist_reducer *r, float *buf);
/* The rank that owns float i (0 <= i < total). */
int dist_owner(const dist_reducer *r, size_t i);

#endif
