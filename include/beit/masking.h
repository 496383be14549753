/* masking.h: which patches of an H x W grid are masked for masked image modeling.
 *
 * Blockwise masking is a transcription of microsoft/unilm beit/masking_generator.py
 * (class MaskingGenerator, read at commit 2312c6fb384689d4ffdbc65360bcce7148cfbeed), in
 * double precision like the Python it copies. Python's `random` calls are replaced by reads
 * from a source of uniform doubles u in [0, 1), mapped as follows (tests/fixtures/
 * gen_masking.py applies the same mapping, which is what makes the masks comparable bit for
 * bit):
 *
 *   random.uniform(a, b)                        -> a + (b - a) * u   (CPython's own formula)
 *   math.exp(random.uniform(log lo, log hi))    -> exp(log lo + (log hi - log lo) * u)
 *   random.randint(0, n)  (both ends inclusive) -> min(floor(u * (n + 1)), n)
 *
 * and Python 3's round() on a double (round half to even, on the exact value) is replicated
 * by mask_round_half_even(). One block attempt draws 2 numbers (area, aspect), plus 2 more
 * (top, left) when the block fits strictly inside the grid; at most 10 attempts per block.
 *
 * Masks are uint8 arrays of H*W entries, row-major (position y * W + x), 1 = masked.
 * The masked count varies per image (blockwise: <= num_patches, mean 74.5 of 75 on 14x14
 * with min 16), so callers gather positions with mask_positions().
 */
#ifndef BEIT_MASKING_H
#define BEIT_MASKING_H

#include <stddef.h>
#include <stdint.h>

#include "beit/error.h"
#include "beit/rng.h"

typedef struct {
    int H, W;          /* patch grid (height, width) */
    int num_patches;   /* M: target number of masked patches (unilm num_masking_patches) */
    int min_patches;   /* smallest block area drawn (unilm min_num_patches; 16 for 14x14) */
    int max_patches;   /* largest budget per block; 0 -> num_patches (unilm's None) */
    double min_aspect; /* block aspect ratio range (h / w), drawn log-uniformly; 0.3 */
    double max_aspect; /* 0 -> 1 / min_aspect (unilm: max_aspect or 1 / min_aspect) */
} mask_params;

/* An injectable source of uniform doubles in [0, 1). */
typedef double (*uniform_source)(void *ctx);

/* The rules mask_params follow, in the order they are tested; mask_params_fault returns the
 * first one p breaks. The job file's mask keys are checked by the same function
 * (config_validate words the faults in terms of the keys). */
typedef enum {
    MASK_OK = 0,
    MASK_BAD_GRID,       /* H, W >= 1 */
    MASK_BAD_NUM,        /* 1 <= num_patches <= H*W */
    MASK_BAD_MIN,        /* 1 <= min_patches <= num_patches */
    MASK_BAD_MAX,        /* max_patches == 0 or min_patches <= max_patches */
    MASK_BAD_MIN_ASPECT, /* min_aspect > 0 and finite */
    MASK_BAD_MAX_ASPECT, /* max_aspect == 0 or > 0 and finite */
    MASK_BAD_BLOCK_GRID, /* blockwise != 0 only: H, W >= 2 (a block must be strictly smaller
                          * than the grid, so a 1-wide grid masks nothing) */
} mask_fault;
mask_fault mask_params_fault(const mask_params *p, int blockwise);

/* NULL if p is valid, else writes a message naming the fault (grid, counts) into buf
 * (n bytes) and returns buf. The rules are mask_fault's. */
const char *mask_params_error(const mask_params *p, int blockwise, char *buf, size_t n);
/* beit_fatal_user(BEIT_EXIT_USAGE, "<source>: masking: <message>") if p is invalid.
 * `source` names where the values came from (a config file, "--mask-patches"). */
void mask_params_check(const mask_params *p, int blockwise, const char *source);

/* The "0 = ..." defaults resolved: the largest budget per block (max_patches, or num_patches
 * when 0) and the largest aspect ratio (max_aspect, or 1 / min_aspect when 0). */
int mask_max_patches(const mask_params *p);
double mask_max_aspect(const mask_params *p);

/* Python 3 round() of a double to an integer value: nearest, ties to even. */
double mask_round_half_even(double x);

/* Blockwise masking (unilm MaskingGenerator.__call__). mask[H*W] is zeroed here. Draws its
 * uniforms from u(ctx) in the order documented above. Returns the masked count (<= M).
 * p must be valid (internal error otherwise). */
int mask_block_generate(uint8_t *mask, const mask_params *p, uniform_source u, void *ctx);

/* Random masking (the paper's ablation): exactly M of the H*W positions, uniformly without
 * replacement (Floyd's sampling: M draws of rng_below, no scratch). mask is zeroed here.
 * Returns M. */
int mask_random_generate(uint8_t *mask, int H, int W, int M, rng_t *r);

/* The production entry. The uniforms (blockwise: rng_uniform_double, 53 bits) or the
 * rng_below draws (random masking: M = p->num_patches) come from
 *     rng_stream(seed, RNG_MASK, (uint64_t)epoch, (uint32_t)sample_index)
 * so a sample's mask depends only on (seed, epoch, sample_index, p, blockwise): never on the
 * number of ranks, threads or the batch it lands in. Requires epoch >= 0 and
 * 0 <= sample_index < 2^32. Returns the masked count. */
int mask_generate(uint8_t *mask, const mask_params *p, int blockwise, uint64_t seed,
                  int64_t epoch, int64_t sample_index);

/* Writes the indices i (ascending) with mask[i] != 0 among mask[0..n) to pos_out (room for
 * n entries, or NULL to only count) and returns how many. */
int mask_positions(const uint8_t *mask, int n, int32_t *pos_out);

#endif
