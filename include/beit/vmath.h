/* vmath.h: elementwise math on 16-float vectors (GCC/Clang vector extensions).
 *
 * glibc's expf/logf/erff are scalar calls (its vector variants need -ffast-math), and a loop
 * that calls them runs one lane at a time: GELU, the cross-entropy over V and the dVAE's
 * softmax over V were a third of a training step that way. These are branch-free
 * polynomials (Cephes' minimax coefficients) on vm_f = 16 floats; the compiler maps vm_f to
 * whatever the target has (one AVX-512 register, two AVX ones, four SSE ones), so the code
 * is portable and vectorized without relying on the auto-vectorizer.
 *
 * Accuracy (tests/nn/test_vmath.c, against libm in double over dense sweeps):
 *   vm_exp   relative error <= 4e-7 on [-87, 88]; exactly 0 below -87.33 (expf < 1.2e-38)
 *   vm_log   absolute error <= 2e-7 on (1/2, 2), relative <= 4e-7 elsewhere (x >= 2^-126)
 *   vm_erf   absolute error <= 3e-7 (Numerical Recipes' erfc with vm_exp; a series near 0)
 *
 * Reductions: a float sum does not vectorize under strict IEEE semantics (that would reorder
 * the additions), so the kernels keep 16 partial sums in a vector (vm_d: in double) and
 * combine them in a fixed order: the result depends neither on the vector width the
 * compiler targets nor on the machine. The scalar vm_*f forms run the vector code on one
 * lane (tails of loops) so that a value never depends on where it falls in a loop.
 */
#ifndef BEIT_VMATH_H
#define BEIT_VMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#define VM_LANES 16
typedef float vm_f __attribute__((vector_size(4 * VM_LANES)));
typedef int32_t vm_i __attribute__((vector_size(4 * VM_LANES)));
typedef double vm_d __attribute__((vector_size(8 * VM_LANES)));

static inline vm_f vm_load(const float *p) {
    vm_f v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline void vm_store(float *p, vm_f v) { __builtin_memcpy(p, &v, sizeof v); }
static inline vm_f vm_splat(float x) { return (vm_f){0} + x; }
/* mask lanes are -1 (true) or 0 */
static inline vm_f vm_select(vm_i mask, vm_f a, vm_f b) { return (vm_f)((mask & (vm_i)a) | (~mask & (vm_i)b)); }
static inline vm_f vm_maxv(vm_f a, vm_f b) { return vm_select(a > b, a, b); }
static inline vm_d vm_to_d(vm_f a) { return __builtin_convertvector(a, vm_d); }

/* round to the nearest integer (ties to even) for |x| < 2^22, with the 1.5 * 2^23 trick */
static inline vm_f vm_rint(vm_f x) { return (x + 12582912.0f) - 12582912.0f; }

/* e^x: x = n ln2 + r, |r| <= ln2/2, e^r by a degree-7 polynomial, 2^n through the exponent */
static inline vm_f vm_exp(vm_f x) {
    const float lo = -87.3365447504019f, hi = 88.0f;
    vm_f xc = vm_select(x < lo, vm_splat(lo), x);
    xc = vm_select(xc > hi, vm_splat(hi), xc);
    vm_f n = vm_rint(xc * 1.44269504088896341f);
    vm_f r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vm_f p = vm_splat(1.9875691500E-4f);
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    vm_f y = p * (r * r) + r + 1.0f;
    vm_i e = (__builtin_convertvector(n, vm_i) + 127) << 23;
    y = y * (vm_f)e;
    return vm_select(x < lo, vm_splat(0.0f), y);
}

/* ln x for finite x > 0 (x <= 0, inf, nan: unspecified): x = 2^e m, m in [sqrt(1/2),
 * sqrt(2)), ln m = f - f^2/2 + f^3 P(f) with f = m - 1 (exact), which keeps the relative
 * accuracy near x = 1. Denormal x is taken as 2^-126. */
static inline vm_f vm_log(vm_f x) {
    const float tiny = 1.17549435e-38f;
    vm_f xc = vm_select(x < tiny, vm_splat(tiny), x);
    vm_i bits = (vm_i)xc;
    vm_i e = ((bits >> 23) & 0xff) - 126; /* xc = 2^e m, m in [1/2, 1) */
    vm_f m = (vm_f)((bits & 0x007fffff) | 0x3f000000);
    vm_i small = m < 0.707106781186547524f;
    e = e + small; /* small lanes are -1: e - 1 */
    vm_f f = vm_select(small, m + m - 1.0f, m - 1.0f);
    vm_f z = f * f;
    vm_f p = vm_splat(7.0376836292E-2f);
    p = p * f + -1.1514610310E-1f;
    p = p * f + 1.1676998740E-1f;
    p = p * f + -1.2420140846E-1f;
    p = p * f + 1.4249322787E-1f;
    p = p * f + -1.6668057665E-1f;
    p = p * f + 2.0000714765E-1f;
    p = p * f + -2.4999993993E-1f;
    p = p * f + 3.3333331174E-1f;
    vm_f y = f * z * p;
    vm_f fe = __builtin_convertvector(e, vm_f);
    y = y + fe * -2.12194440e-4f;
    y = y - 0.5f * z;
    return f + y + fe * 0.693359375f;
}

/* erf x: |x| >= 1/2: 1 - erfc |x| with erfc(a) = t exp(-a^2 + P(t)), t = 1 / (1 + a/2)
 * (Numerical Recipes 6.2, fractional error < 1.2e-7), sign restored; |x| < 1/2 (where
 * 1 - erfc cancels): the Maclaurin series x sum c_k x^2k to x^15. Both are computed and one
 * selected. */
static inline vm_f vm_erf(vm_f x) {
    vm_i neg = x < 0.0f;
    vm_f a = vm_select(neg, -x, x);
    vm_f t = 1.0f / (1.0f + 0.5f * a);
    vm_f p = vm_splat(0.17087277f);
    p = p * t + -0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t + -1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t + -0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t + -1.26551223f;
    vm_f r = 1.0f - t * vm_exp(-a * a + p);
    r = vm_select(neg, -r, r);
    vm_f x2 = x * x;
    vm_f q = vm_splat(-1.4925650358406251e-05f);
    q = q * x2 + 1.2055332981789664e-04f;
    q = q * x2 + -8.5483270234508530e-04f;
    q = q * x2 + 5.2239776254421880e-03f;
    q = q * x2 + -2.6866170645131252e-02f;
    q = q * x2 + 1.1283791670955126e-01f;
    q = q * x2 + -3.7612638903183754e-01f;
    q = q * x2 + 1.1283791670955126e+00f;
    return vm_select(a < 0.5f, x * q, r);
}

/* one lane of the vector forms (loop tails; tests) */
static inline float vm_expf(float x) { return vm_exp(vm_splat(x))[0]; }
static inline float vm_logf(float x) { return vm_log(vm_splat(x))[0]; }
static inline float vm_erff(float x) { return vm_erf(vm_splat(x))[0]; }

/* horizontal reductions in a fixed lane order */
static inline float vm_hmax(vm_f v) {
    float m = v[0];
    for (int j = 1; j < VM_LANES; j++) m = v[j] > m ? v[j] : m;
    return m;
}
static inline double vm_hsum(vm_d v) {
    double s = 0;
    for (int j = 0; j < VM_LANES; j++) s += v[j];
    return s;
}

/* max of x[0..n) (n >= 1) */
static inline float vm_max(const float *x, size_t n) {
    vm_f acc = vm_splat(-INFINITY);
    size_t i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES) acc = vm_maxv(vm_load(x + i), acc);
    float m = vm_hmax(acc);
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

#endif
