/* reader.h: the distributed batch reader over a dataset store (src/io/reader.c). */
#ifndef BEIT_READER_H
#define BEIT_READER_H

#include "beit/store.h"

#include <stdint.h>

/* Shuffled mode (training): epoch e uses a permutation P_e of [0, n) (n = subset or the split
 * size): P = identity; for i = n-1 down to 1: j = rng_below(g, i+1), swap P[i], P[j], with
 * g = rng_stream(seed, RNG_SHUFFLE, e, 0). steps_per_epoch = floor(n / G): the last partial
 * batch is dropped. Step s of epoch e is the global batch P_e[s*G .. s*G+G); rank r of R takes
 * its contiguous slice [s*G + r*G/R, s*G + (r+1)*G/R) (integer division: slices differ by at
 * most one sample), so which samples form a step does not depend on R.
 *
 * Sequential mode (evaluation, tokenization; shuffle = 0): no permutation and nothing dropped:
 * steps_per_epoch = ceil(n / G); step s covers [s*G, min(n, s*G+G)) = B samples and rank r
 * takes [s*G + r*B/R, s*G + (r+1)*B/R). Every rank runs the same number of steps; a rank may
 * get 0 samples in the last step. Every sample is read exactly once per pass.
 *
 * `subset` > 0 uses only the first `subset` samples of the split (0 = all). */
typedef struct {
    beit_store *store;
    char split[64];
    int64_t n;
    int global_batch;
    uint64_t seed;
    int rank, nranks, shuffle;
    int64_t perm_epoch; /* epoch of the cached permutation, -1 = none */
    int64_t *perm;      /* [n] in shuffled mode */
    int64_t *idx;       /* [reader_local_count] scratch for reader_next */
} beit_reader;

/* Bad arguments (G < 1, subset larger than the split, G > n or G < R when shuffling) are
 * configuration errors: BEIT_EXIT_USAGE. */
void reader_init(beit_reader *r, beit_store *s, const char *split, int64_t subset, int global_batch, uint64_t seed,
                 int rank, int nranks, int shuffle);
void reader_free(beit_reader *r);
int64_t reader_num_samples(const beit_reader *r);
int64_t reader_steps_per_epoch(const beit_reader *r);
/* Samples this rank gets in a full step: the size of the buffers callers pass to reader_next
 * (images: that many * store_image_bytes). In sequential mode the last step may give fewer. */
int reader_local_count(const beit_reader *r);
/* The global sample indices (into the split) of this rank's slice of (epoch, step). */
void reader_batch_indices(beit_reader *r, int64_t epoch, int64_t step, int64_t *global_idx_out, int *n_out);
/* Read this rank's slice: images [n, H, W, C], labels [n], indices_out [n] (may be NULL).
 * Returns n. */
int reader_next(beit_reader *r, int64_t epoch, int64_t step, uint8_t *images, int32_t *labels, int64_t *indices_out);

#endif
