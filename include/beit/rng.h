/* rng.h: the counter-based RNG (Philox4x32-10): a draw is a pure function of
 * (seed, purpose, a, b, counter), so a sample's noise never depends on ranks or threads. */
#ifndef BEIT_RNG_H
#define BEIT_RNG_H

#include <stdint.h>

/* ---- counter-based RNG ----------------------------------------------------------------- */
/* Philox4x32-10 (Salmon et al., SC'11). key = (seed, purpose), counter = (a, b, c, d). */
void philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* Purposes keep independent streams apart. */
enum {
    RNG_SHUFFLE = 1,
    RNG_MASK = 2,
    RNG_AUGMENT = 3,
    RNG_DROPPATH = 4,
    RNG_GUMBEL = 5,
    RNG_INIT = 6,
    RNG_VIEW = 7,
    RNG_SYNTH = 8,
    RNG_DROPOUT = 9,
    RNG_MOSAIC = 10,
    RNG_TEST = 100,
};

/* A stream: one (seed, purpose, a, b) identifies it; draws walk the counter. Cheap to
 * create on the stack, e.g. for sample i of epoch e: rng_stream(seed, RNG_MASK, e, i). */
typedef struct {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0], ctr[1] = a (64 bits), ctr[2] = b, ctr[3] = block counter */
    uint32_t buf[4];
    int used;        /* words of buf consumed (4 = empty) */
} rng_t;

rng_t rng_stream(uint64_t seed, uint32_t purpose, uint64_t a, uint32_t b);
/* The init stream of parameter tensor `name`: rng_stream(seed, RNG_INIT, fnv1a64(name), 0), so a
 * tensor's initial values depend only on (seed, name, shape), not on the table order. */
rng_t rng_init_stream(uint64_t seed, const char *name);
uint64_t beit_fnv1a64(const char *s); /* FNV-1a, 64 bit */
uint32_t rng_u32(rng_t *r);
uint64_t rng_u64(rng_t *r);
/* uniform in [0, 1) with 24 random bits (exact in float) */
float rng_uniform(rng_t *r);
/* uniform in [0, 1) with 53 random bits */
double rng_uniform_double(rng_t *r);
/* integer in [0, n) without modulo bias */
uint64_t rng_below(rng_t *r, uint64_t n);
/* standard normal (Box-Muller on doubles) */
float rng_normal(rng_t *r);
/* normal(0, std) truncated to [-2 std, 2 std] by rejection (timm's trunc_normal_ with a=-2,b=2
 * in units of std) */
float rng_trunc_normal(rng_t *r, float std);

#endif
