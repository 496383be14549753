/* The distributed batch reader, run by reader_mpi.sh under mpirun -np 1, 2, 3.
 *   test_reader make PATH          write the synthetic store (N = 1000, 32x32x3, 10 classes)
 *   test_reader check PATH OUT     MPI checks; rank 0 prints TAP and writes every global batch
 *                                  (gathered in rank order) to OUT, one line per step, so the
 *                                  script can compare the batches of different rank counts
 * The expected batches are computed on rank 0 by this file's own Fisher-Yates (the algorithm
 * documented in store.h), the images against the synthetic formula of synth.h. */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/reader.h"
#include "beit/rng.h"
#include "beit/store.h"
#include "harness.h"
#include "synth.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { N = 1000, H = 32, W = 32, C = 3, K = 10, G = 64 };
static const uint64_t SEED = 1234;
static int g_rank, g_size;

/* every rank passes its verdict; rank 0 records the conjunction */
static void check(int ok, const char *fmt, ...) BEIT_PRINTF(2, 3);
static void check(int ok, const char *fmt, ...) {
    int all = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (g_rank != 0) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t_ok(all, "np=%d: %s", g_size, buf);
}

static int make(const char *path) {
    static const char *const names[K] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"};
    beit_store_meta meta = {.source = "synthetic reader test",
                            .height = H,
                            .width = W,
                            .channels = C,
                            .num_classes = K,
                            .class_names = names,
                            .stats_split = "train"};
    beit_store_writer *w = store_create(path, &meta);
    store_begin_split(w, "train", N);
    uint8_t img[H * W * C];
    for (int64_t i = 0; i < N; i++) {
        for (int p = 0; p < H * W * C; p++) img[p] = synth_pixel(i, p);
        int32_t lab = synth_label(i, K);
        store_append(w, img, &lab, 1);
    }
    store_end_split(w);
    store_commit(w);
    return 0;
}

/* independent reference: the documented permutation of [0, n) for (seed, epoch) */
static void ref_perm(int64_t *p, int64_t n, uint64_t seed, int64_t epoch) {
    for (int64_t i = 0; i < n; i++) p[i] = i;
    rng_t g = rng_stream(seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&g, (uint64_t)i + 1);
        int64_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
}

static int samples_ok(const int64_t *idx, int n, const uint8_t *img, const int32_t *lab) {
    for (int i = 0; i < n; i++) {
        if (lab[i] != synth_label(idx[i], K)) return 0;
        for (int p = 0; p < H * W * C; p++)
            if (img[(size_t)i * H * W * C + p] != synth_pixel(idx[i], p)) return 0;
    }
    return 1;
}

/* gather this step's local indices to rank 0 in rank order; returns the global count there */
static int gather(const int64_t *local, int n, int64_t *global) {
    int *counts = xmalloc((size_t)g_size * sizeof(int)), *displs = xmalloc((size_t)g_size * sizeof(int));
    MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
    int total = 0;
    if (g_rank == 0)
        for (int r = 0; r < g_size; r++) {
            displs[r] = total;
            total += counts[r];
        }
    MPI_CHECK(MPI_Gatherv(local, n, MPI_INT64_T, global, counts, displs, MPI_INT64_T, 0, MPI_COMM_WORLD));
    free(counts);
    free(displs);
    return total;
}

static void write_line(FILE *f, const char *tag, int64_t e, int64_t s, const int64_t *idx, int n) {
    if (!f) return;
    fprintf(f, "%s %lld %lld:", tag, (long long)e, (long long)s);
    for (int i = 0; i < n; i++) fprintf(f, " %lld", (long long)idx[i]);
    fprintf(f, "\n");
}

static int run_checks(const char *path, const char *outfile) {
    FILE *out = g_rank == 0 ? fopen(outfile, "w") : NULL;
    beit_store *s = store_open(path, MPI_COMM_WORLD);
    check(s->mpio == 1 && store_split_count(s, "train") == N, "store opened with MPI-IO on the world communicator");

    beit_reader r;
    reader_init(&r, s, "train", 0, G, SEED, g_rank, g_size, 1);
    int64_t steps = reader_steps_per_epoch(&r);
    check(steps == N / G, "shuffled: steps_per_epoch = floor(%d/%d) = %lld", N, G, (long long)steps);
    int lc = reader_local_count(&r), lo = G * g_rank / g_size, hi = G * (g_rank + 1) / g_size;
    int sum = 0, mn = 0, mx = 0;
    MPI_CHECK(MPI_Allreduce(&lc, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(&lc, &mn, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(&lc, &mx, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    check(lc == hi - lo && sum == G && mx - mn <= 1, "local batch sizes sum to G=%d and differ by at most one (%d..%d)",
          G, mn, mx);

    uint8_t *img = xmalloc((size_t)lc * H * W * C + 1);
    int32_t *lab = xmalloc((size_t)lc * sizeof *lab + 4);
    int64_t *idx = xmalloc((size_t)lc * sizeof *idx + 8), *glob = xmalloc(N * sizeof *glob);
    int64_t *perm = xmalloc(N * sizeof *perm);
    int64_t first_batch[2][G];
    int data_ok = 1, batch_ok = 1, once_ok = 1, dropped_ok = 1;
    for (int64_t e = 0; e < 2; e++) {
        int *seen = xcalloc(N, sizeof *seen);
        if (g_rank == 0) ref_perm(perm, N, SEED, e);
        for (int64_t st = 0; st < steps; st++) {
            int n = reader_next(&r, e, st, img, lab, idx);
            data_ok &= n == lc && samples_ok(idx, n, img, lab);
            int tot = gather(idx, n, glob);
            if (g_rank == 0) {
                batch_ok &= tot == G && memcmp(glob, perm + st * G, G * sizeof *glob) == 0;
                for (int i = 0; i < tot; i++) seen[glob[i]]++;
                write_line(out, "shuffle", e, st, glob, tot);
                if (st == 0) memcpy(first_batch[e], glob, sizeof first_batch[e]);
            }
        }
        if (g_rank == 0) {
            /* seen exactly once: the first steps*G of the permutation; never: the dropped tail */
            for (int64_t i = 0; i < N; i++) once_ok &= seen[i] <= 1;
            for (int64_t i = 0; i < N; i++) dropped_ok &= (seen[perm[i]] == 1) == (i < steps * G);
        }
        free(seen);
    }
    check(data_ok, "every rank's images and labels equal the synthetic samples at its indices (2 epochs)");
    check(batch_ok,
          "each global batch (gathered in rank order) is the slice [s*G, s*G+G) of the reference permutation");
    check(once_ok && dropped_ok,
          "per epoch each sample is read at most once; exactly the %d samples of the dropped "
          "last partial batch are never read",
          N - (int)(steps * G));
    check(g_rank != 0 || memcmp(first_batch[0], first_batch[1], sizeof first_batch[0]) != 0,
          "epochs 0 and 1 have different orders");

    /* same seed: same batches from a fresh reader; another seed: different */
    beit_reader r2, r3;
    reader_init(&r2, s, "train", 0, G, SEED, g_rank, g_size, 1);
    reader_init(&r3, s, "train", 0, G, SEED + 1, g_rank, g_size, 1);
    int64_t *a = xmalloc((size_t)lc * sizeof *a + 8), *b = xmalloc((size_t)lc * sizeof *b + 8);
    int na, nb, same = 1, diff = 0;
    for (int64_t st = 0; st < steps; st++) {
        reader_batch_indices(&r, 1, st, idx, &na);
        reader_batch_indices(&r2, 1, st, a, &na);
        reader_batch_indices(&r3, 1, st, b, &nb);
        same &= memcmp(idx, a, (size_t)na * sizeof *a) == 0;
        diff |= memcmp(a, b, (size_t)na * sizeof *a) != 0;
    }
    int any_diff = 0;
    MPI_CHECK(MPI_Allreduce(&diff, &any_diff, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    check(same, "the same seed gives the same batches (fresh reader)");
    check(any_diff, "a different seed gives different batches");
    reader_free(&r2);
    reader_free(&r3);
    free(a);
    free(b);
    reader_free(&r);

    /* sequential: every sample exactly once, in order, last partial batch included */
    reader_init(&r, s, "train", 0, G, 0, g_rank, g_size, 0);
    int64_t seq_steps = reader_steps_per_epoch(&r);
    int seq_ok = 1, seq_data = 1;
    int64_t next = 0;
    for (int64_t st = 0; st < seq_steps; st++) {
        int n = reader_next(&r, 0, st, img, lab, idx);
        seq_data &= samples_ok(idx, n, img, lab);
        int tot = gather(idx, n, glob);
        if (g_rank == 0) {
            int want = (int)(N - st * G < G ? N - st * G : G);
            seq_ok &= tot == want;
            for (int i = 0; i < tot; i++) seq_ok &= glob[i] == next++;
            write_line(out, "seq", 0, st, glob, tot);
        }
    }
    check(seq_steps == (N + G - 1) / G && (g_rank != 0 || (seq_ok && next == N)),
          "sequential: %lld steps cover 0..%d once, in order, last batch of %d included", (long long)seq_steps, N - 1,
          N % G);
    check(seq_data, "sequential: images and labels equal the synthetic samples");
    reader_free(&r);

    /* subset: only the first 100 samples, G = 10 -> 10 steps */
    reader_init(&r, s, "train", 100, 10, SEED, g_rank, g_size, 1);
    int sub_ok = reader_steps_per_epoch(&r) == 10, n = 0;
    int64_t sub_idx[16];
    for (int64_t st = 0; st < 10; st++) {
        reader_batch_indices(&r, 0, st, sub_idx, &n);
        for (int i = 0; i < n; i++) sub_ok &= sub_idx[i] >= 0 && sub_idx[i] < 100;
    }
    check(sub_ok, "subset 100: 10 steps of 10, all indices below 100");
    reader_free(&r);

    free(img);
    free(lab);
    free(idx);
    free(glob);
    free(perm);
    store_close(s);
    if (out) fclose(out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "make")) {
        beit_h5_quiet();
        return make(argv[2]);
    }
    if (argc != 4 || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: test_reader make PATH | test_reader check PATH OUTFILE\n");
        return 2;
    }
    MPI_CHECK(MPI_Init(&argc, &argv));
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    beit_set_rank(g_rank, g_size);
    beit_h5_quiet();
    run_checks(argv[2], argv[3]);
    int rc = g_rank == 0 ? t_done() : 0;
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Finalize());
    return rc;
}
