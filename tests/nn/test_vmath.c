/* test_vmath.c: the vectorizable math of include/beit/vmath.h against libm in double, over
 * dense sweeps of the ranges the training code feeds them, with the bounds vmath.h states;
 * and the lane reductions against a plain loop. */
#include "harness.h"

#include "beit/vmath.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the float n representable values above x > 0 (a sweep that visits every binade evenly) */
static float step_up(float x, int n) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    i += n;
    memcpy(&x, &i, sizeof x);
    return x;
}

int main(void) {
    /* exp: relative error on [-87, 88], every 97th float */
    double worst = 0;
    float at = 0;
    size_t count = 0;
    for (int i = -2900000; i <= 2930000; i++) {
        float x = (float)i * 3e-5f;
        double want = exp((double)x), got = vm_expf(x);
        double e = fabs(got - want) / want;
        if (e > worst) worst = e, at = x;
        count++;
    }
    t_ok(worst <= 4e-7, "vm_expf: relative error %.3g (at %.9g) <= 4e-7 over %zu points of [-87, 88] (step 3e-5)", worst, at,
         count);
    t_ok(vm_expf(-88.0f) == 0.0f && vm_expf(-1000.0f) == 0.0f && vm_expf(-INFINITY) == 0.0f,
         "vm_expf: 0 below -87.34 (and at -inf)");
    t_ok(vm_expf(0.0f) == 1.0f, "vm_expf(0) = 1 exactly");

    /* log: every 61st float of (0, 3.4e38): absolute error near 1, relative elsewhere */
    double worst_abs = 0, worst_rel = 0;
    float at_abs = 0, at_rel = 0;
    count = 0;
    for (float x = 1.17549435e-38f; x < 3.0e38f; x = step_up(x, 61)) {
        double want = log((double)x), got = vm_logf(x);
        double ea = fabs(got - want), er = want != 0 ? ea / fabs(want) : ea;
        if (x > 0.5f && x < 2.0f) {
            if (ea > worst_abs) worst_abs = ea, at_abs = x;
        } else if (er > worst_rel) {
            worst_rel = er, at_rel = x;
        }
        count++;
    }
    t_ok(worst_abs <= 2e-7, "vm_logf: absolute error %.3g (at %.9g) <= 2e-7 on (0.5, 2)", worst_abs, at_abs);
    t_ok(worst_rel <= 4e-7, "vm_logf: relative error %.3g (at %.9g) <= 4e-7 elsewhere (%zu points in all)",
         worst_rel, at_rel, count);
    /* relative accuracy just below 1: what -log(-log(u)) needs for u -> 1 */
    double worst_near1 = 0;
    for (int k = 1; k < 200000; k++) {
        float x = 1.0f - (float)k * 0x1p-24f;
        double want = log((double)x), got = vm_logf(x);
        double e = fabs(got - want) / fabs(want);
        if (e > worst_near1) worst_near1 = e;
    }
    t_ok(worst_near1 <= 4e-7, "vm_logf: relative error %.3g <= 4e-7 on 1 - k 2^-24, k < 200000", worst_near1);

    /* erf: absolute error on [-6, 6] */
    worst = 0;
    for (int i = -600000; i <= 600000; i++) {
        float x = (float)i * 1e-5f;
        double e = fabs((double)vm_erff(x) - erf((double)x));
        if (e > worst) worst = e, at = x;
    }
    t_ok(worst <= 3e-7, "vm_erff: absolute error %.3g (at %.6g) <= 3e-7 on [-6, 6] (step 1e-5)", worst, at);
    t_ok(vm_erff(20.0f) == 1.0f && vm_erff(-20.0f) == -1.0f && vm_erff(0.0f) == 0.0f,
         "vm_erff: +-1 in the tails, 0 at 0");

    /* reductions */
    enum { N = 1000 };
    float x[N];
    t_fill_normal(x, N, 3.0f, 7);
    int ok = 1;
    for (size_t n = 1; n <= N; n += 37) {
        float m = -INFINITY;
        for (size_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
        ok &= vm_max(x, n) == m;
    }
    t_ok(ok, "vm_max equals a plain loop's maximum for 28 lengths 1..1000 (tails included)");
    return t_done();
}
