#include "beit/comm.h"

#include "beit/error.h"
#include "beit/log.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

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

void dist_sum_f64_ordered(const beit_dist *d, double *buf, size_t n) {
    if (d->size == 1 || n == 0) return;
    if (n > (size_t)INT_MAX / (size_t)d->size) beit_fatal(BEIT_EXIT_FAILURE, "dist_sum_f64_ordered: %zu values is too many", n);
    double *all = xmalloc((size_t)d->size * n * sizeof(double));
    MPI_CHECK(MPI_Allgather(buf, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, d->comm));
    for (size_t i = 0; i < n; i++) {
        double s = all[i];
        for (int j = 1; j < d->size; j++) s += all[(size_t)j * n + i];
        buf[i] = s;
    }
    free(all);
}

/* ---- the fixed-order bucketed reduction (see comm.h) ---- */
#define BUCKET_MIN ((size_t)1024)
#define BUCKET_MAX ((size_t)1 << 30)  /* message counts stay below INT_MAX */
#define BUCKET_FIRST ((size_t)1 << 18) /* 1 MiB of floats: the first bucket goes out early */

void dist_reducer_init(dist_reducer *r, const beit_dist *d, size_t total, double bucket_mb) {
    memset(r, 0, sizeof *r);
    r->d = d;
    r->total = total;
    MPI_CHECK(MPI_Comm_dup(d->comm, &r->comm));
    int *ub = NULL, flag = 0;
    MPI_CHECK(MPI_Comm_get_attr(r->comm, MPI_TAG_UB, &ub, &flag));
    int tag_ub = flag && ub ? *ub : 32767; /* the standard guarantees >= 32767 */
    r->tag_mod = tag_ub >= 2 ? (tag_ub / 2) * 2 : 2;
    double bf = bucket_mb * 1048576.0 / (double)sizeof(float);
    size_t B = bf < (double)BUCKET_MIN ? BUCKET_MIN : bf > (double)BUCKET_MAX ? BUCKET_MAX : (size_t)bf;
    r->bucket_floats = B;
    r->first_floats = B < BUCKET_FIRST ? B : BUCKET_FIRST;
    for (size_t lo = 0; lo < total; r->nb++) lo += r->nb == 0 ? r->first_floats : B;
    r->b = xcalloc((size_t)r->nb + 1, sizeof *r->b);
    r->own = xcalloc((size_t)r->nb + 1, sizeof *r->own);
    const int R = d->size, me = d->rank;
    size_t lo = 0;
    for (int i = 0; i < r->nb; i++) {
        dist_bucket *b = &r->b[i];
        size_t n = i == 0 ? r->first_floats : B;
        b->lo = lo;
        b->hi = lo + n < total ? lo + n : total;
        n = b->hi - b->lo;
        b->cut = xmalloc((size_t)(R + 1) * sizeof(size_t));
        for (int j = 0; j <= R; j++) b->cut[j] = b->lo + n * (size_t)j / (size_t)R;
        size_t mine = b->cut[me + 1] - b->cut[me];
        if (mine > 0) {
            r->own[r->nown++] = (dist_range){b->cut[me], b->cut[me + 1], r->own_floats};
            r->own_floats += mine;
        }
        if (R > 1) {
            b->req = xmalloc((size_t)2 * (R - 1) * sizeof(MPI_Request));
            for (int k = 0; k < 2 * (R - 1); k++) b->req[k] = MPI_REQUEST_NULL;
            if (mine > 0) b->recv = xalloc_floats((size_t)(R - 1) * mine);
        }
        lo = b->hi;
    }
}

void dist_reducer_free(dist_reducer *r) {
    if (r->active) beit_fatal(BEIT_EXIT_FAILURE, "dist_reducer_free during a reduction");
    for (int i = 0; i < r->nb; i++) {
        free(r->b[i].cut);
        free(r->b[i].req);
        free(r->b[i].recv);
    }
    free(r->b);
    free(r->own);
    if (r->d) MPI_CHECK(MPI_Comm_free(&r->comm));
    memset(r, 0, sizeof *r);
}

int dist_owner(const dist_reducer *r, size_t i) {
    int a = 0, z = r->nb - 1; /* the bucket holding i */
    while (a < z) {
        int mid = (a + z + 1) / 2;
        if (r->b[mid].lo <= i) a = mid;
        else z = mid - 1;
    }
    const size_t *cut = r->b[a].cut;
    int j = 0, k = r->d->size - 1; /* the last j with cut[j] <= i (empty chunks skipped) */
    while (j < k) {
        int mid = (j + k + 1) / 2;
        if (cut[mid] <= i) j = mid;
        else k = mid - 1;
    }
    return j;
}

static int tag_of(const dist_reducer *r, int bucket, int phase) {
    return (int)(((int64_t)2 * bucket + phase) % r->tag_mod);
}

static int slot_of(int j, int me) { return j < me ? j : j - 1; }

/* phase 1: my chunk's parts from every rank; every rank's chunk of my bucket to it */
static void post_scatter(dist_reducer *r, int bi) {
    dist_bucket *b = &r->b[bi];
    const int R = r->d->size, me = r->d->rank, tag = tag_of(r, bi, 0);
    const size_t mine = b->cut[me + 1] - b->cut[me];
    int k = 0;
    for (int j = 0; j < R; j++)
        if (j != me && mine > 0)
            MPI_CHECK(MPI_Irecv(b->recv + (size_t)slot_of(j, me) * mine, (int)mine, MPI_FLOAT, j, tag, r->comm, &b->req[k++]));
    for (int j = 0; j < R; j++) {
        size_t n = b->cut[j + 1] - b->cut[j];
        if (j == me || n == 0) continue;
        MPI_CHECK(MPI_Isend(r->buf + b->cut[j], (int)n, MPI_FLOAT, j, tag, r->comm, &b->req[k++]));
        r->bytes_sent += n * sizeof(float);
    }
    b->state = 1;
}

static void add_into(float *restrict y, const float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* my chunk = g_0 + g_1 + ... + g_{R-1}, one add at a time in rank order */
static void sum_chunk(dist_reducer *r, dist_bucket *b) {
    const int R = r->d->size, me = r->d->rank;
    const size_t lo = b->cut[me], n = b->cut[me + 1] - lo;
    if (n == 0) return;
    float *dst = r->buf + lo;
    float *acc = me == 0 ? dst : b->recv; /* rank 0's part: slot 0 of the receive buffer */
    for (int j = 1; j < R; j++) add_into(acc, j == me ? dst : b->recv + (size_t)slot_of(j, me) * n, n);
    if (acc != dst) memcpy(dst, acc, n * sizeof(float));
}

/* phase 2: my summed chunk to every rank, theirs into buf */
static void post_gather(dist_reducer *r, int bi, float *buf) {
    dist_bucket *b = &r->b[bi];
    const int R = r->d->size, me = r->d->rank, tag = tag_of(r, bi, 1);
    const size_t mine = b->cut[me + 1] - b->cut[me];
    int k = 0;
    for (int j = 0; j < R; j++) {
        size_t n = b->cut[j + 1] - b->cut[j];
        if (j == me || n == 0) continue;
        MPI_CHECK(MPI_Irecv(buf + b->cut[j], (int)n, MPI_FLOAT, j, tag, r->comm, &b->req[k++]));
    }
    for (int j = 0; j < R; j++)
        if (j != me && mine > 0) {
            MPI_CHECK(MPI_Isend(buf + b->cut[me], (int)mine, MPI_FLOAT, j, tag, r->comm, &b->req[k++]));
            r->bytes_sent += mine * sizeof(float);
        }
    b->state = 2;
}

/* advance bucket bi as far as it goes (wait = 1: to the end) */
static void advance(dist_reducer *r, int bi, int wait) {
    dist_bucket *b = &r->b[bi];
    const int nreq = 2 * (r->d->size - 1);
    int done = 0;
    if (b->state == 1) {
        if (wait) {
            MPI_CHECK(MPI_Waitall(nreq, b->req, MPI_STATUSES_IGNORE));
            done = 1;
        } else {
            MPI_CHECK(MPI_Testall(nreq, b->req, &done, MPI_STATUSES_IGNORE));
        }
        if (!done) return;
        sum_chunk(r, b);
        if (r->gather) post_gather(r, bi, r->buf);
        else b->state = 3;
    }
    if (b->state == 2) {
        done = 0;
        if (wait) {
            MPI_CHECK(MPI_Waitall(nreq, b->req, MPI_STATUSES_IGNORE));
            done = 1;
        } else {
            MPI_CHECK(MPI_Testall(nreq, b->req, &done, MPI_STATUSES_IGNORE));
        }
        if (done) b->state = 3;
    }
}

void dist_reduce_begin(dist_reducer *r, float *buf, int gather) {
    if (r->active) beit_fatal(BEIT_EXIT_FAILURE, "dist_reduce_begin: a reduction is already in progress");
    r->buf = buf;
    r->gather = gather;
    r->next = 0;
    r->active = 1;
    for (int i = 0; i < r->nb; i++) r->b[i].state = 0;
}

void dist_reduce_ready(dist_reducer *r, size_t upto) {
    if (!r->active || r->d->size == 1) return;
    while (r->next < r->nb && r->b[r->next].hi <= upto) {
        post_scatter(r, r->next++);
        r->buckets_early++;
    }
    for (int i = 0; i < r->next; i++)
        if (r->b[i].state != 3) advance(r, i, 0);
}

void dist_reduce_end(dist_reducer *r) {
    if (!r->active) beit_fatal(BEIT_EXIT_FAILURE, "dist_reduce_end without dist_reduce_begin");
    if (r->d->size > 1) {
        double t0 = beit_now();
        r->buckets_total += (uint64_t)r->nb;
        /* every phase-1 message is posted before any rank blocks: no wait can deadlock */
        while (r->next < r->nb) post_scatter(r, r->next++);
        for (int i = 0; i < r->nb; i++) advance(r, i, 1);
        r->wait_s += beit_now() - t0;
    }
    r->active = 0;
    r->buf = NULL;
}

void dist_allgather_owned(dist_reducer *r, float *buf) {
    if (r->active) beit_fatal(BEIT_EXIT_FAILURE, "dist_allgather_owned during a reduction");
    if (r->d->size == 1) return;
    double t0 = beit_now();
    for (int i = 0; i < r->nb; i++) post_gather(r, i, buf);
    for (int i = 0; i < r->nb; i++) {
        MPI_CHECK(MPI_Waitall(2 * (r->d->size - 1), r->b[i].req, MPI_STATUSES_IGNORE));
        r->b[i].state = 0;
    }
    r->wait_s += beit_now() - t0;
}
