/* linear.c: fully connected layer in PyTorch's nn.Linear layout.
 *   inp[N,C], weight[OC,C], bias[OC] (may be NULL) -> out[N,OC] */
#include "beit/gemm.h"
#include "beit/nn.h"
#include "beit/prof.h"

#include <string.h>

/* out[N,OC] = inp[N,C] @ weight^T + bias */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC) {
    if (N <= 0 || OC <= 0) return; /* e.g. no masked token on this rank */
    PROF_BEGIN(PROF_GEMM);
    float beta = 0.0f;
    if (bias) {
        for (size_t n = 0; n < (size_t)N; n++) memcpy(out + n * (size_t)OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    if (C <= 0) {
        if (!bias) memset(out, 0, (size_t)N * (size_t)OC * sizeof(float));
        PROF_END(PROF_GEMM);
        return;
    }
    gemm(&gemm_fp32, GEMM_N, GEMM_T, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
    PROF_FLOPS(PROF_GEMM, 2.0 * N * C * OC);
    PROF_END(PROF_GEMM);
}

/* dinp[N,C] += dout[N,OC] @ weight[OC,C]; dweight[OC,C] += dout^T @ inp; dbias[OC] += column sums */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    PROF_BEGIN(PROF_GEMM);
    PROF_FLOPS(PROF_GEMM, 2.0 * N * C * OC * ((C > 0 && dinp) + (C > 0 && dweight)));
    if (C > 0 && dinp)
        gemm(&gemm_fp32, GEMM_N, GEMM_N, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (C > 0 && dweight)
        gemm(&gemm_fp32, GEMM_T, GEMM_N, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        /* column sums in double over blocks of columns: N can be ~1e5 rows (batch x tokens) */
        enum { BLK = 64 };
        for (int o0 = 0; o0 < OC; o0 += BLK) {
            int nb = OC - o0 < BLK ? OC - o0 : BLK;
            double acc[BLK] = {0};
            for (size_t n = 0; n < (size_t)N; n++) {
                const float *row = dout + n * (size_t)OC + o0;
                for (int j = 0; j < nb; j++) acc[j] += row[j];
            }
            for (int j = 0; j < nb; j++) dbias[o0 + j] += (float)acc[j];
        }
    }
    PROF_END(PROF_GEMM);
}
