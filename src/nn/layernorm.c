/* layernorm.c: LayerNorm over the last dim.
 *   inp[N,C], weight[C], bias[C] -> out[N,C]; cache mean[N], rstd[N] */
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/vmath.h"

#include <math.h>

/* Rows run 16 floats at a time (vmath.h vectors) with the reductions in 16 double partial
 * sums combined in a fixed order; the tail of a row that is not a multiple of 16 lane by lane. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps) {
    PROF_BEGIN(PROF_LAYERNORM);
    const int Cv = C - C % VM_LANES;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * (size_t)C;
        float *y = out + n * (size_t)C;
        /* two passes in double: the mean can be large relative to the spread */
        vm_d acc = {0};
        for (int c = 0; c < Cv; c += VM_LANES) acc += vm_to_d(vm_load(x + c));
        double m = vm_hsum(acc);
        for (int c = Cv; c < C; c++) m += x[c];
        m /= C;
        vm_d acc2 = {0};
        for (int c = 0; c < Cv; c += VM_LANES) {
            vm_d d = vm_to_d(vm_load(x + c)) - m;
            acc2 += d * d;
        }
        double v = vm_hsum(acc2);
        for (int c = Cv; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        v /= C; /* biased, as PyTorch */
        double rs = 1.0 / sqrt(v + (double)eps);
        for (int c = 0; c < Cv; c += VM_LANES) {
            vm_f nrm = __builtin_convertvector((vm_to_d(vm_load(x + c)) - m) * rs, vm_f);
            if (weight) nrm = nrm * vm_load(weight + c);
            if (bias) nrm = nrm + vm_load(bias + c);
            vm_store(y + c, nrm);
        }
        for (int c = Cv; c < C; c++) {
            float nrm = (float)((x[c] - m) * rs);
            float w = weight ? weight[c] : 1.0f, b = bias ? bias[c] : 0.0f;
            y[c] = nrm * w + b;
        }
        if (mean) mean[n] = (float)m;
        if (rstd) rstd[n] = (float)rs;
    }
    PROF_END(PROF_LAYERNORM);
}

/* dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)),  dnorm = dout * weight;
 * dweight += norm * dout; dbias += dout */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C) {
    PROF_BEGIN(PROF_LAYERNORM);
    const int Cv = C - C % VM_LANES;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * (size_t)C, *dy = dout + n * (size_t)C;
        float m = mean[n], rs = rstd[n];
        vm_d a1 = {0}, a2 = {0};
        for (int c = 0; c < Cv; c += VM_LANES) {
            vm_f nrm = (vm_load(x + c) - m) * rs;
            vm_f dn = weight ? vm_load(dy + c) * vm_load(weight + c) : vm_load(dy + c);
            a1 += vm_to_d(dn);
            a2 += vm_to_d(dn) * vm_to_d(nrm);
        }
        double dmean = vm_hsum(a1), dnmean = vm_hsum(a2);
        for (int c = Cv; c < C; c++) {
            float nrm = (x[c] - m) * rs;
            float dn = dy[c] * (weight ? weight[c] : 1.0f);
            dmean += dn;
            dnmean += (double)dn * nrm;
        }
        dmean /= C;
        dnmean /= C;
        float *dx = dinp ? dinp + n * (size_t)C : NULL;
        for (int c = 0; c < Cv; c += VM_LANES) {
            vm_f g = vm_load(dy + c);
            vm_f nrm = (vm_load(x + c) - m) * rs;
            vm_f dn = weight ? g * vm_load(weight + c) : g;
            if (dweight) vm_store(dweight + c, vm_load(dweight + c) + nrm * g);
            if (dbias) vm_store(dbias + c, vm_load(dbias + c) + g);
            if (dx) {
                vm_d t = (vm_to_d(dn) - dmean - vm_to_d(nrm) * dnmean) * (double)rs;
                vm_store(dx + c, vm_load(dx + c) + __builtin_convertvector(t, vm_f));
            }
        }
        for (int c = Cv; c < C; c++) {
            float nrm = (x[c] - m) * rs;
            float dn = dy[c] * (weight ? weight[c] : 1.0f);
            if (dweight) dweight[c] += nrm * dy[c];
            if (dbias) dbias[c] += dy[c];
            if (dx) dx[c] += (float)((dn - dmean - nrm * dnmean) * rs);
        }
    }
    PROF_END(PROF_LAYERNORM);
}
