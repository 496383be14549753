/* activations.c: elementwise GELU (erf form) and ReLU on n floats; row softmax on [N,L]. */
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/vmath.h"

#include <math.h>

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

/* GELU is on the largest activation (B*T*4D): 16 lanes at a time with vmath.h's erf and exp
 * (absolute error <= 3e-7 in erf); libm's scalar erff made it a sixth of a pre-training step */
void gelu_forward(float *out, const float *inp, size_t n) {
    PROF_BEGIN(PROF_GELU);
    size_t i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES) {
        vm_f x = vm_load(inp + i);
        vm_store(out + i, 0.5f * x * (1.0f + vm_erf(x * (float)INV_SQRT2)));
    }
    for (; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + vm_erff(x * (float)INV_SQRT2));
    }
    PROF_END(PROF_GELU);
}

/* gelu'(x) = Phi(x) + x phi(x) */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    PROF_BEGIN(PROF_GELU);
    size_t i = 0;
    for (; i + VM_LANES <= n; i += VM_LANES) {
        vm_f x = vm_load(inp + i);
        vm_f cdf = 0.5f * (1.0f + vm_erf(x * (float)INV_SQRT2));
        vm_f pdf = (float)INV_SQRT2PI * vm_exp(-0.5f * x * x);
        vm_store(dinp + i, vm_load(dinp + i) + vm_load(dout + i) * (cdf + x * pdf));
    }
    for (; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + vm_erff(x * (float)INV_SQRT2));
        float pdf = (float)INV_SQRT2PI * vm_expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
    PROF_END(PROF_GELU);
}

void relu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (inp[i] > 0.0f) dinp[i] += dout[i];
}

void softmax_forward(float *out, const float *inp, int N, int L) {
    PROF_BEGIN(PROF_SOFTMAX);
    const int Lv = L - L % VM_LANES;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * (size_t)L;
        float *y = out + n * (size_t)L;
        float mx = vm_max(x, (size_t)L);
        vm_d acc = {0};
        for (int j = 0; j < Lv; j += VM_LANES) {
            vm_f e = vm_exp(vm_load(x + j) - mx);
            vm_store(y + j, e);
            acc += vm_to_d(e);
        }
        double sum = vm_hsum(acc);
        for (int j = Lv; j < L; j++) {
            y[j] = vm_expf(x[j] - mx);
            sum += y[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < L; j++) y[j] *= inv;
    }
    PROF_END(PROF_SOFTMAX);
}

void softmax_backward(float *dinp, const float *dout, const float *y, int N, int L) {
    PROF_BEGIN(PROF_SOFTMAX);
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *dy = dout + n * (size_t)L, *p = y + n * (size_t)L;
        double dot = 0;
        for (int j = 0; j < L; j++) dot += (double)dy[j] * p[j];
        float *dx = dinp + n * (size_t)L;
        for (int j = 0; j < L; j++) dx[j] += p[j] * (dy[j] - (float)dot);
    }
    PROF_END(PROF_SOFTMAX);
}
