/* The fixed-order bucketed gradient reduction (comm.h) under mpirun -np 1, 2, 3: every rank
 * builds every rank's gradient (values spanning 7 decades, so the summation order shows in the
 * bits), and checks, for several buffer sizes (below R, not divisible by 3, many buckets):
 *   - blocking all-reduce == the rank-order sum g_0 + g_1 + ... computed here, bit for bit;
 *   - overlapped (dist_reduce_ready in rank-specific increments, as backward reports) == the
 *     same bits; reduce-scatter (ZeRO-1) gives them in the owned chunks;
 *   - the owned chunks of all ranks partition the buffer; dist_owner agrees;
 *   - dist_allgather_owned delivers the owners' values; the byte counters;
 *   - ZeRO-1 AdamW on the owned ranges (compact state) == AdamW on the whole table.
 * Rank 0 prints TAP; each check is the conjunction over the ranks.
 *   test_reduce            (run by reduce_mpi.sh under mpirun) */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/comm.h"
#include "beit/optim.h"
#include "beit/params.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static beit_dist g_d;

static int check(int ok, const char *fmt, const char *what, size_t n) {
    int all = ok ? 1 : 0;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD));
    if (g_d.rank == 0) t_ok(all, fmt, g_d.size, what, n);
    return all;
}

/* rank r's gradient: normal * 10^u, u uniform in [-3, 4) */
static void fill_grad(float *g, size_t n, int r, uint64_t seed) {
    rng_t a = rng_stream(seed, RNG_TEST, (uint64_t)r, 1);
    for (size_t i = 0; i < n; i++) g[i] = rng_normal(&a) * powf(10.0f, -3.0f + 7.0f * rng_uniform(&a));
}

static void reduce_case(size_t n, double bucket_mb, uint64_t seed) {
    const int R = g_d.size, me = g_d.rank;
    char what[96];
    snprintf(what, sizeof what, "bucket %.3g MiB", bucket_mb);
    float **all = xcalloc((size_t)R, sizeof(float *));
    for (int r = 0; r < R; r++) {
        all[r] = xalloc_floats(n);
        fill_grad(all[r], n, r, seed);
    }
    float *want = xalloc_floats(n), *rev = xalloc_floats(n), *g = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) {
        float s = all[0][i], q = all[R - 1][i];
        for (int r = 1; r < R; r++) s += all[r][i];
        for (int r = R - 2; r >= 0; r--) q += all[r][i];
        want[i] = s;
        rev[i] = q;
    }
    dist_reducer red;
    dist_reducer_init(&red, &g_d, n, bucket_mb);

    /* blocking all-reduce */
    memcpy(g, all[me], n * sizeof(float));
    dist_reduce_begin(&red, g, 1);
    dist_reduce_end(&red);
    check(memcmp(g, want, n * sizeof(float)) == 0,
          "np=%d: blocking all-reduce == g_0 + g_1 + ... in rank order, bit for bit (%s, %zu floats)", what, n);
    uint64_t want_bytes = 0;
    if (R > 1) want_bytes = 4 * ((n - red.own_floats) + (uint64_t)(R - 1) * red.own_floats);
    check(red.bytes_sent == want_bytes, "np=%d: bytes sent by each rank = 4 (n - own + (R-1) own) (%s, %zu floats)",
          what, n);

    /* overlapped: readiness reported in rank-specific steps (another interleaving per rank) */
    memcpy(g, all[me], n * sizeof(float));
    dist_reduce_begin(&red, g, 1);
    size_t step = 97 + 31 * (size_t)me;
    for (size_t u = step; u < n + step; u += step) dist_reduce_ready(&red, u < n ? u : n);
    uint64_t early = red.buckets_early;
    dist_reduce_end(&red);
    check(memcmp(g, want, n * sizeof(float)) == 0 && (R == 1 || early == (uint64_t)red.nb),
          "np=%d: overlapped all-reduce (every bucket posted from dist_reduce_ready) == the same bits (%s, %zu floats)",
          what, n);

    /* reduce-scatter: the owned chunks hold the sums */
    memcpy(g, all[me], n * sizeof(float));
    dist_reduce_begin(&red, g, 0);
    dist_reduce_ready(&red, n / 2);
    dist_reduce_end(&red);
    int ok = 1;
    for (int i = 0; i < red.nown; i++)
        ok &= memcmp(g + red.own[i].lo, want + red.own[i].lo, (red.own[i].hi - red.own[i].lo) * sizeof(float)) == 0;
    check(ok, "np=%d: reduce-scatter (ZeRO-1): the owned chunks hold the same bits (%s, %zu floats)", what, n);

    /* ownership: a partition of [0, n), compact offsets, dist_owner */
    int *cover = xcalloc(n, sizeof(int));
    size_t off = 0;
    ok = 1;
    for (int i = 0; i < red.nown; i++) {
        ok &= red.own[i].off == off && red.own[i].hi > red.own[i].lo && (i == 0 || red.own[i].lo >= red.own[i - 1].hi);
        off += red.own[i].hi - red.own[i].lo;
        for (size_t k = red.own[i].lo; k < red.own[i].hi; k++) cover[k] = 1;
    }
    ok &= off == red.own_floats;
    for (size_t k = 0; k < n; k++) ok &= (dist_owner(&red, k) == me) == (cover[k] == 1);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, cover, (int)n, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    for (size_t k = 0; k < n; k++) ok &= cover[k] == 1;
    long long mine = (long long)red.own_floats, lo = mine, hi = mine;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD));
    ok &= hi - lo <= red.nb; /* each bucket's chunks differ by at most one float */
    check(ok, "np=%d: owned chunks partition the buffer (every float once), shards within one float per bucket, "
              "dist_owner agrees (%s, %zu floats)", what, n);

    /* all-gather of the owners' values */
    for (size_t k = 0; k < n; k++) g[k] = cover[k] ? -1.0f : (float)me; /* junk outside my chunks */
    for (int i = 0; i < red.nown; i++)
        for (size_t k = red.own[i].lo; k < red.own[i].hi; k++) g[k] = want[k];
    dist_allgather_owned(&red, g);
    check(memcmp(g, want, n * sizeof(float)) == 0, "np=%d: dist_allgather_owned: every rank holds the owners' values (%s, "
                                                   "%zu floats)", what, n);
    if (R >= 3) { /* the data makes the order matter: the bit-for-bit checks above can fail */
        size_t differ = 0;
        for (size_t k = 0; k < n; k++) differ += memcmp(&want[k], &rev[k], sizeof(float)) != 0;
        if (me == 0) t_diag("np=%d: the reverse rank order gives other bits in %zu of %zu floats", R, differ, n);
        if (n >= 1000) check(differ > 0, "np=%d: control: summing in reverse rank order changes some floats (%s, %zu)", what, n);
    }
    dist_reducer_free(&red);
    free(cover);
    for (int r = 0; r < R; r++) free(all[r]);
    free(all);
    free(want);
    free(rev);
    free(g);
}

/* ZeRO-1 AdamW on the owned ranges with compact state == AdamW on the whole table */
static void zero_adamw_case(void) {
    param_table pt;
    params_init(&pt);
    int64_t s1[2] = {37, 41}, s2[1] = {333}, s3[3] = {5, 7, 11}, s4[1] = {1000};
    params_add(&pt, "a.weight", 2, s1, 1, 2);
    params_add(&pt, "a.bias", 1, s2, 0, 2);
    params_add(&pt, "b.weight", 3, s3, 1, 1);
    params_add(&pt, "c", 1, s4, 1, 0);
    params_alloc(&pt);
    params_set_layer_decay(&pt, 0.7, 1);
    const size_t n = pt.total; /* 1517 + 333 + 385 + 1000 = 3235, not divisible by 2 or 3 */
    t_fill_normal(pt.data, n, 0.1f, 5);
    float *p0 = xalloc_floats(n), *m = xalloc_floats(n), *v = xalloc_floats(n);
    memcpy(p0, pt.data, n * sizeof(float));
    adamw_config cfg = {0.9, 0.999, 1e-8, 0.05};
    dist_reducer red;
    dist_reducer_init(&red, &g_d, n, 0.001); /* 1024-float buckets */
    float *mz = xalloc_floats(red.own_floats + 1), *vz = xalloc_floats(red.own_floats + 1);
    float *pref = xalloc_floats(n);
    int ok = 1;
    for (int t = 1; t <= 3; t++) {
        t_fill_normal(pt.grad, n, 1.0f, 100 + (uint64_t)t);
        /* reference: the whole table on a copy */
        float *gsave = xalloc_floats(n);
        memcpy(gsave, pt.grad, n * sizeof(float));
        memcpy(pt.data, p0, n * sizeof(float));
        double norm = sqrt(grad_sumsq(pt.grad, n));
        grad_clip_scale(pt.grad, n, norm, 3.0);
        adamw_step_range(&pt, 0, n, m, v, 1e-2, &cfg, t);
        memcpy(pref, pt.data, n * sizeof(float));
        /* sharded */
        memcpy(pt.data, p0, n * sizeof(float));
        memcpy(pt.grad, gsave, n * sizeof(float));
        for (int i = 0; i < red.nown; i++) {
            const dist_range *q = &red.own[i];
            grad_clip_scale(pt.grad + q->lo, q->hi - q->lo, norm, 3.0);
            adamw_step_range(&pt, q->lo, q->hi, mz + q->off, vz + q->off, 1e-2, &cfg, t);
        }
        dist_allgather_owned(&red, pt.data);
        ok &= memcmp(pt.data, pref, n * sizeof(float)) == 0;
        for (int i = 0; i < red.nown; i++)
            ok &= memcmp(mz + red.own[i].off, m + red.own[i].lo, (red.own[i].hi - red.own[i].lo) * sizeof(float)) == 0;
        memcpy(p0, pref, n * sizeof(float));
        free(gsave);
    }
    check(ok, "np=%d: %s: parameters and moments equal AdamW on the whole table bit for bit (3 steps, %zu floats)",
          "ZeRO-1 AdamW + clipping on the owned ranges, then all-gather", n);
    dist_reducer_free(&red);
    params_free(&pt);
    free(p0); free(m); free(v); free(mz); free(vz); free(pref);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    dist_init(&g_d, MPI_COMM_WORLD);
    beit_set_rank(g_d.rank, g_d.size);
    const size_t sizes[] = {1, 2, 5, 1000, 3 * 1025 + 1, 70001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        reduce_case(sizes[i], 0.01, 11 + i);  /* 2621-float buckets (first one too) */
        reduce_case(sizes[i], 1e-9, 23 + i); /* clamped to 1024 floats */
    }
    reduce_case(300000, 0.5, 7); /* a 1 MiB first bucket, then 0.5 MiB ones */
    zero_adamw_case();
    double x[3] = {1e16 * (g_d.rank + 1), 1.0, (double)g_d.rank};
    dist_sum_f64_ordered(&g_d, x, 3);
    double w0 = 0, w1 = 0, w2 = 0;
    for (int r = 0; r < g_d.size; r++) w0 += 1e16 * (r + 1), w1 += 1.0, w2 += r;
    check(x[0] == w0 && x[1] == w1 && x[2] == w2, "np=%d: %s (%zu values)", "dist_sum_f64_ordered sums in rank order", 3);
    int rc = g_d.rank == 0 ? t_done() : 0;
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    MPI_Finalize();
    return rc;
}
