/* layernorm.c: LayerNorm over the last dim.
 *   inp[N,C], weight[C], bias[C] -> out[N,C]; cache mean[N], rstd[N] */
#include "beit/nn.h"
#include "beit/prof.h"

#include <math.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps) {
    PROF_BEGIN(PROF_LAYERNORM);
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * (size_t)C;
        float *y = out + n * (size_t)C;
        /* two passes in double: the mean can be large relative to the spread */
        double m = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        double v = 0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        v /= C; /* biased, as PyTorch */
        double rs = 1.0 / sqrt(v + (double)eps);
        for (int c = 0; c < C; c++) {
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
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = inp + n * (size_t)C, *dy = dout + n * (size_t)C;
        float m = mean[n], rs = rstd[n];
        double dmean = 0, dnmean = 0;
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * rs;
            float dn = dy[c] * (weight ? weight[c] : 1.0f);
            dmean += dn;
            dnmean += (double)dn * nrm;
        }
        dmean /= C;
        dnmean /= C;
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * rs;
            float dn = dy[c] * (weight ? weight[c] : 1.0f);
            if (dweight) dweight[c] += nrm * dy[c];
            if (dbias) dbias[c] += dy[c];
            if (dinp) dinp[n * (size_t)C + c] += (float)((dn - dmean - nrm * dnmean) * rs);
        }
    }
    PROF_END(PROF_LAYERNORM);
}
