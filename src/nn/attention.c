/* attention.c: multi-head self-attention core and BEiT's relative position bias.
 *
 *   qkv[B,T,3C] = [q | k | v]; head h of q is qkv[b,t, h*hd .. h*hd+hd), of k at +C, of v at +2C
 *   att[B,NH,T,T] = softmax_keys(scale * q k^T + bias[NH,T,T])
 *   out[B,T,C]    = att @ v, heads concatenated (head h -> channels h*hd ..)
 *
 * Every (b,h) product is one gemm() reading q, k, v in place from qkv with leading
 * dimension 3C (and writing out / dqkv in place with ld C / 3C): no packing copies. */
#include "beit/error.h"
#include "beit/gemm.h"
#include "beit/nn.h"
#include "beit/prof.h"

#include <math.h>
#include <string.h>

static void check_heads(int C, int NH) {
    if (NH <= 0 || C % NH != 0) beit_fatal(BEIT_EXIT_FAILURE, "attention: C=%d not divisible by NH=%d", C, NH);
}

void attention_forward(float *out, float *att, const float *qkv, const float *bias, int B, int T, int C,
                       int NH, float scale) {
    check_heads(C, NH);
    const int hd = C / NH, C3 = 3 * C;
    const size_t TT = (size_t)T * T;
    PROF_BEGIN(PROF_ATTENTION);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * C3;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hd, *k = base + C + h * hd, *v = base + 2 * C + h * hd;
            float *a = att + ((size_t)b * NH + h) * TT;
            float beta = 0.0f;
            if (bias) {
                memcpy(a, bias + (size_t)h * TT, TT * sizeof(float));
                beta = 1.0f;
            }
            /* a[T,T] = scale * q[T,hd] k[T,hd]^T (+ bias) */
            PROF_BEGIN(PROF_ATTN_GEMM);
            gemm(&gemm_fp32, GEMM_N, GEMM_T, T, T, hd, scale, q, C3, k, C3, beta, a, T);
            PROF_END(PROF_ATTN_GEMM);
            softmax_forward(a, a, T, T);
            /* out[T, hd] (ld C) = a[T,T] @ v[T,hd] */
            PROF_BEGIN(PROF_ATTN_GEMM);
            gemm(&gemm_fp32, GEMM_N, GEMM_N, T, hd, T, 1.0f, a, T, v, C3, 0.0f, out + (size_t)b * T * C + h * hd, C);
            PROF_FLOPS(PROF_ATTN_GEMM, 4.0 * T * T * hd);
            PROF_END(PROF_ATTN_GEMM);
        }
    }
    PROF_END(PROF_ATTENTION);
}

size_t attention_scratch_size(int B, int T, int C, int NH) {
    (void)B;
    (void)C;
    (void)NH;
    return (size_t)T * T;
}

void attention_backward(float *dqkv, float *dbias, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH, float scale) {
    check_heads(C, NH);
    if (!dqkv && !dbias) return;
    const int hd = C / NH, C3 = 3 * C;
    const size_t TT = (size_t)T * T;
    float *dl = scratch; /* [T,T]: d att, then d logits */
    PROF_BEGIN(PROF_ATTENTION);
    for (int b = 0; b < B; b++) {
        const float *base = qkv + (size_t)b * T * C3;
        for (int h = 0; h < NH; h++) {
            const float *q = base + h * hd, *k = base + C + h * hd, *v = base + 2 * C + h * hd;
            const float *a = att + ((size_t)b * NH + h) * TT;
            const float *dy = dout + (size_t)b * T * C + h * hd; /* [T,hd], ld C */
            /* d att[T,T] = dy @ v^T */
            PROF_BEGIN(PROF_ATTN_GEMM);
            PROF_FLOPS(PROF_ATTN_GEMM, 2.0 * T * T * hd * (1 + (dqkv ? 3 : 0)));
            gemm(&gemm_fp32, GEMM_N, GEMM_T, T, T, hd, 1.0f, dy, C, v, C3, 0.0f, dl, T);
            if (dqkv) {
                float *dv = dqkv + (size_t)b * T * C3 + 2 * C + h * hd;
                /* dv[T,hd] += a^T @ dy */
                gemm(&gemm_fp32, GEMM_T, GEMM_N, T, hd, T, 1.0f, a, T, dy, C, 1.0f, dv, C3);
            }
            PROF_END(PROF_ATTN_GEMM);
            /* softmax backward in place: dlogits = a * (datt - <datt, a>) */
            PROF_BEGIN(PROF_SOFTMAX);
            for (int i = 0; i < T; i++) {
                float *r = dl + (size_t)i * T;
                const float *p = a + (size_t)i * T;
                double dot = 0;
                for (int j = 0; j < T; j++) dot += (double)r[j] * p[j];
                for (int j = 0; j < T; j++) r[j] = p[j] * (r[j] - (float)dot);
            }
            PROF_END(PROF_SOFTMAX);
            if (dbias) {
                float *db = dbias + (size_t)h * TT;
                for (size_t i = 0; i < TT; i++) db[i] += dl[i];
            }
            if (dqkv) {
                float *dq = dqkv + (size_t)b * T * C3 + h * hd, *dk = dq + C;
                /* logits = scale q k^T:  dq += scale dl @ k;  dk += scale dl^T @ q */
                PROF_BEGIN(PROF_ATTN_GEMM);
                gemm(&gemm_fp32, GEMM_N, GEMM_N, T, hd, T, scale, dl, T, k, C3, 1.0f, dq, C3);
                gemm(&gemm_fp32, GEMM_T, GEMM_N, T, hd, T, scale, dl, T, q, C3, 1.0f, dk, C3);
                PROF_END(PROF_ATTN_GEMM);
            }
        }
    }
    PROF_END(PROF_ATTENTION);
}

/* ---- relative position bias ---- */

void relpos_bias_forward(float *bias, const float *table, const int *index, int NH, int T) {
    const size_t TT = (size_t)T * T;
    PROF_BEGIN(PROF_ATTENTION);
    for (size_t i = 0; i < TT; i++) {
        const float *row = table + (size_t)index[i] * NH;
        for (int h = 0; h < NH; h++) bias[(size_t)h * TT + i] = row[h];
    }
    PROF_END(PROF_ATTENTION);
}

void relpos_bias_backward(float *dtable, const float *dbias, const int *index, int NH, int T) {
    const size_t TT = (size_t)T * T;
    PROF_BEGIN(PROF_ATTENTION);
    for (size_t i = 0; i < TT; i++) {
        float *row = dtable + (size_t)index[i] * NH;
        for (int h = 0; h < NH; h++) row[h] += dbias[(size_t)h * TT + i];
    }
    PROF_END(PROF_ATTENTION);
}

int relpos_table_rows(int H, int W) { return (2 * H - 1) * (2 * W - 1) + 3; }

void relpos_index_build(int *index, int H, int W) {
    const int T = H * W + 1, R = relpos_table_rows(H, W);
    for (int i = 0; i < T; i++) {
        for (int j = 0; j < T; j++) {
            int v;
            if (i == 0 && j == 0) v = R - 1;      /* cls -> cls */
            else if (i == 0) v = R - 3;           /* cls -> token */
            else if (j == 0) v = R - 2;           /* token -> cls */
            else {
                int y1 = (i - 1) / W, x1 = (i - 1) % W, y2 = (j - 1) / W, x2 = (j - 1) % W;
                v = (y1 - y2 + H - 1) * (2 * W - 1) + (x1 - x2 + W - 1);
            }
            index[(size_t)i * T + j] = v;
        }
    }
}
