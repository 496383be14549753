/* Masking generators for masked image modeling: unilm's blockwise MaskingGenerator
 * (transcribed line by line, in doubles) and uniform random masking.
 * mask: uint8 [H*W], row-major (y * W + x), 1 = masked. */
#include "beit/error.h"
#include "beit/masking.h"
#include "beit/rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mask_fault mask_params_fault(const mask_params *p, int blockwise) {
    if (p->H < 1 || p->W < 1) return MASK_BAD_GRID;
    long long hw = (long long)p->H * p->W;
    if (p->num_patches < 1 || p->num_patches > hw) return MASK_BAD_NUM;
    if (p->min_patches < 1 || p->min_patches > p->num_patches) return MASK_BAD_MIN;
    if (p->max_patches != 0 && p->max_patches < p->min_patches) return MASK_BAD_MAX;
    if (!(p->min_aspect > 0) || !isfinite(p->min_aspect)) return MASK_BAD_MIN_ASPECT;
    if (p->max_aspect != 0 && (!(p->max_aspect > 0) || !isfinite(p->max_aspect)))
        return MASK_BAD_MAX_ASPECT;
    if (blockwise && (p->H < 2 || p->W < 2)) return MASK_BAD_BLOCK_GRID;
    return MASK_OK;
}

const char *mask_params_error(const mask_params *p, int blockwise, char *buf, size_t n) {
    long long hw = (long long)p->H * p->W;
    switch (mask_params_fault(p, blockwise)) {
    case MASK_OK: return NULL;
    case MASK_BAD_GRID:
        snprintf(buf, n, "grid %dx%d: height and width must be >= 1", p->H, p->W);
        break;
    case MASK_BAD_NUM:
        snprintf(buf, n, "num_patches = %d masked patches on a %dx%d grid of %lld patches: "
                 "expected 1 <= num_patches <= %lld", p->num_patches, p->H, p->W, hw, hw);
        break;
    case MASK_BAD_MIN:
        snprintf(buf, n, "min_patches = %d per block on a %dx%d grid with num_patches = %d: "
                 "expected 1 <= min_patches <= num_patches", p->min_patches, p->H, p->W,
                 p->num_patches);
        break;
    case MASK_BAD_MAX:
        snprintf(buf, n, "max_patches = %d per block is below min_patches = %d: expected 0 "
                 "(meaning num_patches = %d) or >= min_patches", p->max_patches, p->min_patches,
                 p->num_patches);
        break;
    case MASK_BAD_MIN_ASPECT:
        snprintf(buf, n, "min_aspect = %g: expected a finite value > 0 (unilm: 0.3)", p->min_aspect);
        break;
    case MASK_BAD_MAX_ASPECT:
        snprintf(buf, n, "max_aspect = %g: expected 0 (meaning 1 / min_aspect) or a finite "
                 "value > 0", p->max_aspect);
        break;
    case MASK_BAD_BLOCK_GRID:
        snprintf(buf, n, "blockwise masking on a %dx%d grid: blocks must be strictly smaller "
                 "than the grid, so height and width must be >= 2", p->H, p->W);
        break;
    }
    return buf;
}

void mask_params_check(const mask_params *p, int blockwise, const char *source) {
    char buf[512];
    if (mask_params_error(p, blockwise, buf, sizeof buf))
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: masking: %s", source ? source : "(masking)", buf);
}

int mask_max_patches(const mask_params *p) {
    return p->max_patches > 0 ? p->max_patches : p->num_patches;
}

double mask_max_aspect(const mask_params *p) {
    return p->max_aspect > 0 ? p->max_aspect : 1.0 / p->min_aspect;
}

double mask_round_half_even(double x) {
    /* Exact: for a double x, x - floor(x) is representable, so the tie test sees the true
     * value (floor(x + 0.5) would round 0.49999999999999994 up). */
    double f = floor(x);
    double d = x - f;
    if (d > 0.5) return f + 1.0;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

/* randint(0, n), both ends inclusive */
static int randint0(int n, uniform_source u, void *ctx) {
    double k = floor(u(ctx) * (double)(n + 1));
    return k > (double)n ? n : (int)k;
}

/* unilm MaskingGenerator._mask: try up to 10 blocks; mark the first one that adds between 1
 * and max_mask_patches new patches. Returns the number newly masked (0 = every try failed). */
static int mask_one_block(uint8_t *mask, const mask_params *p, int max_mask_patches,
                          double log_lo, double log_hi, uniform_source u, void *ctx) {
    const int H = p->H, W = p->W;
    int delta = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double a = (double)p->min_patches, b = (double)max_mask_patches;
        double target_area = a + (b - a) * u(ctx);
        double aspect_ratio = exp(log_lo + (log_hi - log_lo) * u(ctx));
        int h = (int)mask_round_half_even(sqrt(target_area * aspect_ratio));
        int w = (int)mask_round_half_even(sqrt(target_area / aspect_ratio));
        if (w < W && h < H) {
            int top = randint0(H - h, u, ctx);
            int left = randint0(W - w, u, ctx);
            int num_masked = 0;
            for (int i = top; i < top + h; i++)
                for (int j = left; j < left + w; j++) num_masked += mask[i * W + j];
            int fresh = h * w - num_masked;
            if (0 < fresh && fresh <= max_mask_patches) {
                for (int i = top; i < top + h; i++)
                    for (int j = left; j < left + w; j++)
                        if (mask[i * W + j] == 0) {
                            mask[i * W + j] = 1;
                            delta++;
                        }
            }
            /* unilm's break sits inside the fit test; delta only changes there, so this equals
             * testing it at the end of every attempt */
            if (delta > 0) break;
        }
    }
    return delta;
}

int mask_block_generate(uint8_t *mask, const mask_params *p, uniform_source u, void *ctx) {
    char buf[512];
    if (mask_params_error(p, 1, buf, sizeof buf))
        beit_fatal(BEIT_EXIT_FAILURE, "mask_block_generate called with invalid parameters: %s", buf);
    const int M = p->num_patches;
    const int max_num = mask_max_patches(p);
    const double max_aspect = mask_max_aspect(p);
    const double log_lo = log(p->min_aspect), log_hi = log(max_aspect);
    memset(mask, 0, (size_t)p->H * (size_t)p->W);
    int mask_count = 0;
    while (mask_count < M) {
        int max_mask_patches = M - mask_count;
        if (max_num < max_mask_patches) max_mask_patches = max_num;
        int delta = mask_one_block(mask, p, max_mask_patches, log_lo, log_hi, u, ctx);
        if (delta == 0) break;
        mask_count += delta;
    }
    return mask_count;
}

int mask_random_generate(uint8_t *mask, int H, int W, int M, rng_t *r) {
    const int n = H * W;
    if (M < 0 || M > n)
        beit_fatal(BEIT_EXIT_FAILURE, "mask_random_generate: M = %d outside [0, %d]", M, n);
    memset(mask, 0, (size_t)n);
    /* Floyd: for j = n-M .. n-1 pick t in [0, j]; take t unless taken, else take j (j is new).
     * Every M-subset is equally likely. */
    for (int j = n - M; j < n; j++) {
        int t = (int)rng_below(r, (uint64_t)j + 1);
        if (mask[t]) mask[j] = 1;
        else mask[t] = 1;
    }
    return M;
}

static double rng_source(void *ctx) { return rng_uniform_double((rng_t *)ctx); }

int mask_generate(uint8_t *mask, const mask_params *p, int blockwise, uint64_t seed,
                  int64_t epoch, int64_t sample_index) {
    if (epoch < 0 || sample_index < 0 || sample_index > (int64_t)UINT32_MAX)
        beit_fatal(BEIT_EXIT_FAILURE, "mask_generate: epoch %lld / sample %lld out of range",
                   (long long)epoch, (long long)sample_index);
    rng_t r = rng_stream(seed, RNG_MASK, (uint64_t)epoch, (uint32_t)sample_index);
    if (blockwise) return mask_block_generate(mask, p, rng_source, &r);
    char buf[512];
    if (mask_params_error(p, 0, buf, sizeof buf))
        beit_fatal(BEIT_EXIT_FAILURE, "mask_generate called with invalid parameters: %s", buf);
    return mask_random_generate(mask, p->H, p->W, p->num_patches, &r);
}

int mask_positions(const uint8_t *mask, int n, int32_t *pos_out) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if (mask[i]) {
            if (pos_out) pos_out[k] = i;
            k++;
        }
    return k;
}
