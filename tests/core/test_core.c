/* core: Philox known answers (Random123's kat_vectors), stream independence, uniform
 * ranges, SHA-256 known answers, duration formatting. */
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/fsutil.h"
#include "harness.h"

#include <math.h>
#include <string.h>

static void test_philox(void) {
    static const uint32_t cases[3][10] = {
        /* ctr[4], key[2], expected[4] */
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e,
         0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb,
         0x5001e420, 0x24126ea1},
    };
    for (int c = 0; c < 3; c++) {
        uint32_t out[4];
        philox4x32(&cases[c][4], &cases[c][0], out);
        t_ok(memcmp(out, &cases[c][6], sizeof out) == 0, "philox4x32-10 known answer %d", c);
    }
}

static void test_streams(void) {
    rng_t a = rng_stream(42, RNG_MASK, 3, 7), b = rng_stream(42, RNG_MASK, 3, 7);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= rng_u32(&a) == rng_u32(&b);
    t_ok(same, "same (seed, purpose, a, b) gives the same stream");
    rng_t c = rng_stream(42, RNG_AUGMENT, 3, 7), d = rng_stream(42, RNG_MASK, 4, 7);
    a = rng_stream(42, RNG_MASK, 3, 7);
    int diff_c = 0, diff_d = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a);
        diff_c += x != rng_u32(&c);
        diff_d += x != rng_u32(&d);
    }
    t_ok(diff_c > 95 && diff_d > 95, "different purpose or counter gives a different stream");

    rng_t r = rng_stream(1, RNG_TEST, 0, 0);
    double sum = 0, sum2 = 0;
    float lo = 1, hi = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&r);
        sum += u;
        sum2 += (double)u * u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    t_ok(lo >= 0 && hi < 1 && fabs(mean - 0.5) < 0.005 && fabs(var - 1.0 / 12) < 0.002,
         "uniform in [0,1): mean %.4f var %.4f", mean, var);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[rng_below(&r, 7)]++;
    int ok = 1;
    for (int k = 0; k < 7; k++) ok &= counts[k] > 9500 && counts[k] < 10500;
    t_ok(ok, "rng_below(7) is uniform");
    double nm = 0, nv = 0;
    int tn_ok = 1;
    for (int i = 0; i < n; i++) {
        float z = rng_normal(&r);
        nm += z;
        nv += (double)z * z;
        float t = rng_trunc_normal(&r, 0.02f);
        tn_ok &= fabsf(t) <= 0.04f;
    }
    nm /= n;
    nv = nv / n - nm * nm;
    t_ok(fabs(nm) < 0.01 && fabs(nv - 1) < 0.02, "normal: mean %.4f var %.4f", nm, nv);
    t_ok(tn_ok, "truncated normal stays within 2 std");
}

static void test_sha256(void) {
    uint8_t d[32];
    char hex[65];
    beit_sha256("abc", 3, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    t_ok(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
         "sha256(\"abc\")");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    beit_sha256(m, strlen(m), d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    t_ok(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
         "sha256 of the 448-bit FIPS message");
}

static void test_misc(void) {
    char b[32];
    t_ok(strcmp(beit_fmt_duration(3723, b, sizeof b), "1h02m03s") == 0, "duration 1h02m03s");
    t_ok(strcmp(beit_fmt_duration(59.4, b, sizeof b), "59s") == 0, "duration 59s");
    char u[37];
    beit_uuid4(u);
    t_ok(strlen(u) == 36 && u[14] == '4' && u[8] == '-', "uuid4 form %s", u);
}

int main(void) {
    test_philox();
    test_streams();
    test_sha256();
    test_misc();
    return t_done();
}
