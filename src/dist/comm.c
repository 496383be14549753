#include "beit/dist.h"

#include "beit/core.h"

#include <limits.h>

#define CHUNK ((size_t)1 << 30) /* elements per collective call: stays below INT_MAX */

void dist_init(beit_dist *d, MPI_Comm comm) {
    d->comm = comm;
    MPI_CHECK(MPI_Comm_rank(comm, &d->rank));
    MPI_CHECK(MPI_Comm_size(comm, &d->size));
}

static void sum_chunks(const beit_dist *d, void *buf, size_t n, size_t elem, MPI_Datatype t) {
    if (d->size == 1) return;
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t k = n - off < CHUNK ? n - off : CHUNK;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)k, t, MPI_SUM, d->comm));
    }
}

void dist_sum_f32(const beit_dist *d, float *buf, size_t n) { sum_chunks(d, buf, n, sizeof(float), MPI_FLOAT); }
void dist_sum_f64(const beit_dist *d, double *buf, size_t n) { sum_chunks(d, buf, n, sizeof(double), MPI_DOUBLE); }
void dist_sum_i64(const beit_dist *d, int64_t *buf, size_t n) { sum_chunks(d, buf, n, sizeof(int64_t), MPI_INT64_T); }

double dist_max_f64(const beit_dist *d, double x) {
    if (d->size > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_MAX, d->comm));
    return x;
}

int dist_all_ok(const beit_dist *d, int ok) {
    int v = ok ? 1 : 0;
    if (d->size > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LAND, d->comm));
    return v;
}

void dist_bcast(const beit_dist *d, void *buf, size_t bytes, int root) {
    if (d->size == 1) return;
    for (size_t off = 0; off < bytes; off += CHUNK) {
        size_t k = bytes - off < CHUNK ? bytes - off : CHUNK;
        MPI_CHECK(MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, d->comm));
    }
}

void dist_barrier(const beit_dist *d) { MPI_CHECK(MPI_Barrier(d->comm)); }
