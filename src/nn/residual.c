/* residual.c: residual add with LayerScale (gamma) and per-sample drop path.
 *   out[B,T,C] = x + s[b] * gamma[c] * y;  gamma[C] (NULL = 1), s[B] (NULL = 1) */
#include "beit/error.h"
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/rng.h"

void residual_forward(float *out, const float *x, const float *y, const float *gamma, const float *s,
                      int B, int T, int C) {
    PROF_BEGIN(PROF_RESIDUAL);
    for (size_t n = 0; n < (size_t)B * T; n++) { /* row n = b*T + t */
        const float sb = s ? s[n / T] : 1.0f;
        const size_t o = n * C;
        for (int c = 0; c < C; c++) {
            float g = gamma ? gamma[c] : 1.0f;
            out[o + c] = x[o + c] + sb * (g * y[o + c]);
        }
    }
    PROF_END(PROF_RESIDUAL);
}

void residual_backward(float *dx, float *dy, float *dgamma, const float *dout, const float *y,
                       const float *gamma, const float *s, int B, int T, int C) {
    PROF_BEGIN(PROF_RESIDUAL);
    for (size_t n = 0; n < (size_t)B * T; n++) { /* row n = b*T + t */
        const float sb = s ? s[n / T] : 1.0f;
        const size_t o = n * C;
        for (int c = 0; c < C; c++) {
            float d = dout[o + c];
            if (dx) dx[o + c] += d;
            if (dy) dy[o + c] += sb * (gamma ? gamma[c] : 1.0f) * d;
            if (dgamma) dgamma[c] += sb * y[o + c] * d;
        }
    }
    PROF_END(PROF_RESIDUAL);
}

void droppath_scales(float *s, int B, float p, rng_t *r) {
    if (!(p >= 0.0f && p < 1.0f)) beit_fatal(BEIT_EXIT_FAILURE, "droppath_scales: p=%g not in [0, 1)", (double)p);
    const float keep = 1.0f / (1.0f - p);
    for (int b = 0; b < B; b++) {
        float u = rng_uniform(r); /* drawn for every sample, whatever p is */
        s[b] = u < p ? 0.0f : keep;
    }
}
