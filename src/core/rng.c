/* Philox4x32-10 counter-based RNG (Salmon, Moraes, Dror, Shaw: "Parallel random numbers:
 * as easy as 1, 2, 3", SC'11). A draw depends only on (key, counter), which is why a
 * sample's mask or noise is the same on any number of ranks or threads. */
#include "beit/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void philox4x32(const uint32_t key_in[2], const uint32_t ctr_in[4], uint32_t out[4]) {
    uint32_t k0 = key_in[0], k1 = key_in[1];
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

rng_t rng_stream(uint64_t seed, uint32_t purpose, uint64_t a, uint32_t b) {
    rng_t r;
    /* fold the purpose into the key so streams of different purposes never meet */
    r.key[0] = (uint32_t)seed ^ (purpose * 0x85EBCA6Bu);
    r.key[1] = (uint32_t)(seed >> 32) ^ (purpose * 0xC2B2AE35u) ^ 0x27D4EB2Fu;
    r.ctr[0] = (uint32_t)a;
    r.ctr[1] = (uint32_t)(a >> 32);
    r.ctr[2] = b;
    r.ctr[3] = 0;
    r.used = 4;
    return r;
}

uint32_t rng_u32(rng_t *r) {
    if (r->used == 4) {
        philox4x32(r->key, r->ctr, r->buf);
        r->ctr[3]++;
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t rng_u64(rng_t *r) {
    uint64_t hi = rng_u32(r);
    return (hi << 32) | rng_u32(r);
}

float rng_uniform(rng_t *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double rng_uniform_double(rng_t *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t rng_below(rng_t *r, uint64_t n) {
    if (n <= 1) return 0;
    /* rejection: draw from the largest multiple of n below 2^64 */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x < limit) return x % n;
    }
}

float rng_normal(rng_t *r) {
    double u1 = rng_uniform_double(r), u2 = rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float rng_trunc_normal(rng_t *r, float std) {
    for (;;) {
        float z = rng_normal(r);
        if (z >= -2.0f && z <= 2.0f) return z * std;
    }
}

uint64_t beit_fnv1a64(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

rng_t rng_init_stream(uint64_t seed, const char *name) { return rng_stream(seed, RNG_INIT, beit_fnv1a64(name), 0); }
