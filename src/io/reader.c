/* Distributed batch reader. The rules (permutation, step -> samples, rank slices) are in
 * include/beit/store.h; the point is that a step's samples depend on (seed, epoch, step, G)
 * only, never on the number of ranks, so runs on different rank counts see the same batches. */
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/reader.h"

#include <stdlib.h>
#include <string.h>

void reader_init(beit_reader *r, beit_store *s, const char *split, int64_t subset, int global_batch, uint64_t seed,
                 int rank, int nranks, int shuffle) {
    memset(r, 0, sizeof *r);
    int64_t count = store_split_count(s, split);
    if (strlen(split) >= sizeof r->split) beit_fatal(BEIT_EXIT_FAILURE, "split name too long: %s", split);
    if (nranks < 1 || rank < 0 || rank >= nranks)
        beit_fatal(BEIT_EXIT_FAILURE, "reader_init: rank %d of %d", rank, nranks);
    if (subset < 0 || subset > count)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: subset of %lld samples requested but split '%s' has %lld", s->path,
                        (long long)subset, split, (long long)count);
    if (global_batch < 1) beit_fatal_user(BEIT_EXIT_USAGE, "global batch size %d (expected at least 1)", global_batch);
    int64_t n = subset > 0 ? subset : count;
    if (shuffle && global_batch > n)
        beit_fatal_user(BEIT_EXIT_USAGE,
                        "%s: global batch %d is larger than the %lld samples of split '%s' (expected at most %lld: "
                        "an epoch drops the last partial batch and would be empty)",
                        s->path, global_batch, (long long)n, split, (long long)n);
    if (shuffle && global_batch < nranks)
        beit_fatal_user(BEIT_EXIT_USAGE,
                        "global batch %d is smaller than the %d ranks (expected at least one "
                        "sample per rank and step)",
                        global_batch, nranks);
    r->store = s;
    snprintf(r->split, sizeof r->split, "%s", split);
    r->n = n;
    r->global_batch = global_batch;
    r->seed = seed;
    r->rank = rank;
    r->nranks = nranks;
    r->shuffle = shuffle;
    r->perm_epoch = -1;
    if (shuffle) r->perm = xmalloc((size_t)n * sizeof *r->perm);
    r->idx = xmalloc((size_t)reader_local_count(r) * sizeof *r->idx + 1);
}

void reader_free(beit_reader *r) {
    free(r->perm);
    free(r->idx);
    memset(r, 0, sizeof *r);
}

int64_t reader_num_samples(const beit_reader *r) { return r->n; }

int64_t reader_steps_per_epoch(const beit_reader *r) {
    int64_t G = r->global_batch;
    return r->shuffle ? r->n / G : (r->n + G - 1) / G;
}

/* slice [lo, hi) of a batch of B samples for rank r of R */
static void rank_slice(int64_t B, int rank, int nranks, int64_t *lo, int64_t *hi) {
    *lo = B * rank / nranks;
    *hi = B * (rank + 1) / nranks;
}

int reader_local_count(const beit_reader *r) {
    int64_t lo, hi;
    rank_slice(r->global_batch, r->rank, r->nranks, &lo, &hi);
    return (int)(hi - lo);
}

static void make_permutation(beit_reader *r, int64_t epoch) {
    if (r->perm_epoch == epoch) return;
    int64_t n = r->n;
    for (int64_t i = 0; i < n; i++) r->perm[i] = i;
    rng_t g = rng_stream(r->seed, RNG_SHUFFLE, (uint64_t)epoch, 0);
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)rng_below(&g, (uint64_t)(i + 1));
        int64_t t = r->perm[i];
        r->perm[i] = r->perm[j];
        r->perm[j] = t;
    }
    r->perm_epoch = epoch;
}

void reader_batch_indices(beit_reader *r, int64_t epoch, int64_t step, int64_t *global_idx_out, int *n_out) {
    int64_t steps = reader_steps_per_epoch(r);
    if (epoch < 0 || step < 0 || step >= steps)
        beit_fatal(BEIT_EXIT_FAILURE, "reader: step %lld of epoch %lld outside [0, %lld)", (long long)step,
                   (long long)epoch, (long long)steps);
    int64_t G = r->global_batch, start = step * G;
    int64_t B = r->shuffle ? G : (r->n - start < G ? r->n - start : G);
    int64_t lo, hi;
    rank_slice(B, r->rank, r->nranks, &lo, &hi);
    if (r->shuffle) {
        make_permutation(r, epoch);
        for (int64_t i = lo; i < hi; i++) global_idx_out[i - lo] = r->perm[start + i];
    } else {
        for (int64_t i = lo; i < hi; i++) global_idx_out[i - lo] = start + i;
    }
    *n_out = (int)(hi - lo);
}

int reader_next(beit_reader *r, int64_t epoch, int64_t step, uint8_t *images, int32_t *labels, int64_t *indices_out) {
    int n = 0;
    int64_t *idx = indices_out ? indices_out : r->idx;
    reader_batch_indices(r, epoch, step, idx, &n);
    store_read(r->store, r->split, idx, n, images, labels);
    return n;
}
