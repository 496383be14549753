/* conv.c: conv2d and transposed conv2d via im2col / col2im + gemm (gemm.h).
 *
 *   conv2d            inp[B,Cin,H,W], weight[Cout,Cin,k,k], bias[Cout] -> out[B,Cout,Ho,Wo]
 *   conv_transpose2d  inp[B,Cin,H,W], weight[Cin,Cout,k,k], bias[Cout] -> out[B,Cout,Ho,Wo]
 *
 * The column matrix of an image img[C,Hi,Wi] for a k x k / stride s / pad p window grid of
 * Ho x Wo positions is col[C*k*k, Ho*Wo]: row (c*k + i)*k + j, column y*Wo + x holds
 * img[c, y*s - p + i, x*s - p + j] (0 outside). Row-major [C,k,k] is exactly how a weight row
 * [Cin,k,k] is laid out, so conv = W[Cout, Cin*k*k] @ col. Several images share one column
 * matrix side by side (image n at column offset n*Ho*Wo, leading dimension nb*Ho*Wo) so a
 * whole chunk of the batch is one sgemm.
 */
#include "beit/conv.h"
#include "beit/error.h"
#include "beit/gemm.h"
#include "beit/prof.h"

#include <string.h>

/* The output columns x whose input column ix = x*s - p + j lies inside [0, Wi): [*x0, *x1).
 * Hoisting the bounds out of the copy loops leaves them branch-free (memcpy / vector adds):
 * im2col was a fifth of a dVAE step with a bounds test per element. */
static void valid_cols(int Wi, int Wo, int s, int p, int j, int *x0, int *x1) {
    int a = p - j > 0 ? (p - j + s - 1) / s : 0; /* first x with x*s >= p - j */
    int b = Wi - 1 + p - j >= 0 ? (Wi - 1 + p - j) / s + 1 : 0; /* first x with x*s - p + j >= Wi */
    if (b > Wo) b = Wo;
    if (a > b) a = b;
    *x0 = a;
    *x1 = b;
}

/* col[C*k*k, ld] (first Ho*Wo columns) <- im2col(img[C,Hi,Wi]) */
static void im2col(float *col, size_t ld, const float *img, int C, int Hi, int Wi, int k, int s, int p, int Ho,
                   int Wo) {
    for (int c = 0; c < C; c++) {
        const float *plane = img + (size_t)c * Hi * Wi;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                float *row = col + ((size_t)(c * k + i) * k + j) * ld;
                int x0, x1;
                valid_cols(Wi, Wo, s, p, j, &x0, &x1);
                for (int y = 0; y < Ho; y++) {
                    float *dst = row + (size_t)y * Wo;
                    int iy = y * s - p + i;
                    if (iy < 0 || iy >= Hi || x0 == x1) {
                        memset(dst, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *src = plane + (size_t)iy * Wi - p + j;
                    for (int x = 0; x < x0; x++) dst[x] = 0.0f;
                    if (s == 1)
                        memcpy(dst + x0, src + x0, (size_t)(x1 - x0) * sizeof(float));
                    else
                        for (int x = x0; x < x1; x++) dst[x] = src[(size_t)x * s];
                    for (int x = x1; x < Wo; x++) dst[x] = 0.0f;
                }
            }
    }
}

/* img[C,Hi,Wi] += col2im(col[C*k*k, ld]): the transpose of im2col */
static void col2im(float *img, const float *col, size_t ld, int C, int Hi, int Wi, int k, int s, int p, int Ho,
                   int Wo) {
    for (int c = 0; c < C; c++) {
        float *plane = img + (size_t)c * Hi * Wi;
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                const float *row = col + ((size_t)(c * k + i) * k + j) * ld;
                int x0, x1;
                valid_cols(Wi, Wo, s, p, j, &x0, &x1);
                for (int y = 0; y < Ho; y++) {
                    int iy = y * s - p + i;
                    if (iy < 0 || iy >= Hi) continue;
                    const float *src = row + (size_t)y * Wo;
                    float *dst = plane + (size_t)iy * Wi - p + j;
                    if (s == 1)
                        for (int x = x0; x < x1; x++) dst[x] += src[x];
                    else
                        for (int x = x0; x < x1; x++) dst[(size_t)x * s] += src[x];
                }
            }
    }
}

/* mat[C, nb*HW] (image n at column n*HW) <- imgs[nb, C, HW] */
static void gather_cols(float *mat, const float *imgs, int nb, int C, size_t HW) {
    size_t ld = (size_t)nb * HW;
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++)
            memcpy(mat + (size_t)c * ld + (size_t)n * HW, imgs + ((size_t)n * C + c) * HW, HW * sizeof(float));
}

/* imgs[nb, C, HW] += mat[C, nb*HW] */
static void scatter_add_cols(float *imgs, const float *mat, int nb, int C, size_t HW) {
    size_t ld = (size_t)nb * HW;
    for (int n = 0; n < nb; n++)
        for (int c = 0; c < C; c++) {
            float *dst = imgs + ((size_t)n * C + c) * HW;
            const float *src = mat + (size_t)c * ld + (size_t)n * HW;
            for (size_t i = 0; i < HW; i++) dst[i] += src[i];
        }
}

/* out[B,C,HW] <- bias[c] (or 0) */
static void fill_bias(float *out, const float *bias, int B, int C, size_t HW) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *dst = out + ((size_t)b * C + c) * HW;
            float v = bias ? bias[c] : 0.0f;
            for (size_t i = 0; i < HW; i++) dst[i] = v;
        }
}

/* dbias[C] += sum over b and HW of d[B,C,HW]; double accumulation (B*HW can be large) */
static void bias_grad(float *dbias, const float *d, int B, int C, size_t HW) {
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int b = 0; b < B; b++) {
            const float *src = d + ((size_t)b * C + c) * HW;
            for (size_t i = 0; i < HW; i++) acc += src[i];
        }
        dbias[c] += (float)acc;
    }
}

/* Images per sgemm: the largest nb in [1, B] whose scratch fits in `have` floats, where one
 * image needs need1 floats and nb > 1 images need nb * per_image. */
static int pick_chunk(const char *op, size_t have, int B, size_t need1, size_t per_image) {
    if (B <= 0) return 1; /* nothing to do (e.g. an empty shard) */
    if (have < need1)
        beit_fatal(BEIT_EXIT_FAILURE, "%s: scratch of %zu floats < %zu needed for one image", op, have, need1);
    size_t nb = have / per_image;
    if (B <= 1 || nb < 2) return 1;
    return nb >= (size_t)B ? B : (int)nb;
}

static void check_geometry(const char *op, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad,
                           int Ho, int Wo) {
    if (B < 0 || Cin <= 0 || H <= 0 || W <= 0 || Cout <= 0 || k <= 0 || stride <= 0 || pad < 0 || Ho <= 0 ||
        Wo <= 0)
        beit_fatal(BEIT_EXIT_FAILURE, "%s: invalid geometry B=%d Cin=%d H=%d W=%d Cout=%d k=%d stride=%d pad=%d", op,
                   B, Cin, H, W, Cout, k, stride, pad);
}

/* ============================== conv2d ============================== */

int conv2d_out_dim(int in, int k, int stride, int pad) {
    if (stride <= 0 || in + 2 * pad < k) return 0;
    return (in + 2 * pad - k) / stride + 1;
}

static int is_pointwise(int k, int stride, int pad) { return k == 1 && stride == 1 && pad == 0; }

size_t conv2d_scratch_size(int nb, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    size_t HWo = (size_t)conv2d_out_dim(H, k, stride, pad) * (size_t)conv2d_out_dim(W, k, stride, pad);
    if (nb <= 1) return is_pointwise(k, stride, pad) ? 0 : (size_t)Cin * k * k * HWo;
    return ((size_t)Cin * k * k + (size_t)Cout) * (size_t)nb * HWo;
}

void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, float *scratch,
                    size_t scratch_n, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    PROF_BEGIN(PROF_CONV);
    int Ho = conv2d_out_dim(H, k, stride, pad), Wo = conv2d_out_dim(W, k, stride, pad);
    check_geometry("conv2d_forward", B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    size_t HWo = (size_t)Ho * Wo, HWi = (size_t)H * W, CKK = (size_t)Cin * k * k;
    int pw = is_pointwise(k, stride, pad);
    PROF_FLOPS(PROF_CONV, 2.0 * B * Cout * (double)CKK * (double)HWo);
    int nb = pick_chunk("conv2d_forward", scratch_n, B, pw ? 0 : CKK * HWo, (CKK + (size_t)Cout) * HWo);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        const float *x = inp + (size_t)b0 * Cin * HWi;
        float *y = out + (size_t)b0 * Cout * HWo;
        if (n == 1) {
            /* y[Cout, HWo] = W[Cout, CKK] @ col[CKK, HWo] (+ bias) */
            const float *col = x;
            if (!pw) {
                im2col(scratch, HWo, x, Cin, H, W, k, stride, pad, Ho, Wo);
                col = scratch;
            }
            fill_bias(y, bias, 1, Cout, HWo);
            gemm(&gemm_fp32, GEMM_N, GEMM_N, Cout, (int)HWo, (int)CKK, 1.0f, weight, (int)CKK, col, (int)HWo, 1.0f, y,
                 (int)HWo);
        } else {
            /* res[Cout, n*HWo] = W @ col[CKK, n*HWo], then re-laid to NCHW */
            size_t ld = (size_t)n * HWo;
            float *col = scratch, *res = scratch + CKK * ld;
            for (int i = 0; i < n; i++)
                im2col(col + (size_t)i * HWo, ld, x + (size_t)i * Cin * HWi, Cin, H, W, k, stride, pad, Ho, Wo);
            gemm(&gemm_fp32, GEMM_N, GEMM_N, Cout, (int)ld, (int)CKK, 1.0f, weight, (int)CKK, col, (int)ld, 0.0f, res,
                 (int)ld);
            fill_bias(y, bias, n, Cout, HWo);
            scatter_add_cols(y, res, n, Cout, HWo);
        }
    }
    PROF_END(PROF_CONV);
}

void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, float *scratch, size_t scratch_n, int B, int Cin, int H, int W,
                     int Cout, int k, int stride, int pad) {
    int Ho = conv2d_out_dim(H, k, stride, pad), Wo = conv2d_out_dim(W, k, stride, pad);
    check_geometry("conv2d_backward", B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    size_t HWo = (size_t)Ho * Wo, HWi = (size_t)H * W, CKK = (size_t)Cin * k * k;
    PROF_BEGIN(PROF_CONV);
    if (dbias) bias_grad(dbias, dout, B, Cout, HWo);
    if (!dinp && !dweight) {
        PROF_END(PROF_CONV);
        return;
    }
    int pw = is_pointwise(k, stride, pad);
    PROF_FLOPS(PROF_CONV, 2.0 * B * Cout * (double)CKK * (double)HWo * ((dinp != NULL) + (dweight != NULL)));
    int nb = pick_chunk("conv2d_backward", scratch_n, B, pw ? 0 : CKK * HWo, (CKK + (size_t)Cout) * HWo);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        const float *x = inp + (size_t)b0 * Cin * HWi;
        const float *g = dout + (size_t)b0 * Cout * HWo;
        float *dx = dinp ? dinp + (size_t)b0 * Cin * HWi : NULL;
        if (n == 1) {
            if (pw) {
                /* col is the image itself and dcol is dinp itself */
                if (dweight)
                    gemm(&gemm_fp32, GEMM_N, GEMM_T, Cout, (int)CKK, (int)HWo, 1.0f, g, (int)HWo, x, (int)HWo, 1.0f,
                         dweight, (int)CKK);
                if (dx)
                    gemm(&gemm_fp32, GEMM_T, GEMM_N, (int)CKK, (int)HWo, Cout, 1.0f, weight, (int)CKK, g, (int)HWo,
                         1.0f, dx, (int)HWo);
                continue;
            }
            if (dweight) {
                /* dW[Cout, CKK] += g[Cout, HWo] @ col^T */
                im2col(scratch, HWo, x, Cin, H, W, k, stride, pad, Ho, Wo);
                gemm(&gemm_fp32, GEMM_N, GEMM_T, Cout, (int)CKK, (int)HWo, 1.0f, g, (int)HWo, scratch, (int)HWo, 1.0f,
                     dweight, (int)CKK);
            }
            if (dx) {
                /* dcol[CKK, HWo] = W^T @ g, reusing the column buffer */
                gemm(&gemm_fp32, GEMM_T, GEMM_N, (int)CKK, (int)HWo, Cout, 1.0f, weight, (int)CKK, g, (int)HWo, 0.0f,
                     scratch, (int)HWo);
                col2im(dx, scratch, HWo, Cin, H, W, k, stride, pad, Ho, Wo);
            }
        } else {
            size_t ld = (size_t)n * HWo;
            float *col = scratch, *gm = scratch + CKK * ld;
            gather_cols(gm, g, n, Cout, HWo); /* gm[Cout, n*HWo] */
            if (dweight) {
                for (int i = 0; i < n; i++)
                    im2col(col + (size_t)i * HWo, ld, x + (size_t)i * Cin * HWi, Cin, H, W, k, stride, pad, Ho,
                           Wo);
                gemm(&gemm_fp32, GEMM_N, GEMM_T, Cout, (int)CKK, (int)ld, 1.0f, gm, (int)ld, col, (int)ld, 1.0f,
                     dweight, (int)CKK);
            }
            if (dx) {
                gemm(&gemm_fp32, GEMM_T, GEMM_N, (int)CKK, (int)ld, Cout, 1.0f, weight, (int)CKK, gm, (int)ld, 0.0f,
                     col, (int)ld);
                for (int i = 0; i < n; i++)
                    col2im(dx + (size_t)i * Cin * HWi, col + (size_t)i * HWo, ld, Cin, H, W, k, stride, pad, Ho,
                           Wo);
            }
        }
    }
    PROF_END(PROF_CONV);
}

/* ========================= transposed conv2d ========================= */
/* The conv2d with the same (k, stride, pad) maps the OUTPUT grid Ho x Wo to the input grid
 * H x W. With Wt = weight viewed as [Cin, Cout*k*k]:
 *   forward:  out_b += col2im(Wt^T @ inp_b)      (the conv's data gradient)
 *   backward: col = im2col(dout_b); dinp_b += Wt @ col; dWt += inp_b @ col^T */

int conv_transpose2d_out_dim(int in, int k, int stride, int pad) {
    if (in <= 0 || stride <= 0) return 0;
    return (in - 1) * stride - 2 * pad + k;
}

size_t conv_transpose2d_scratch_size(int nb, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    (void)stride;
    (void)pad;
    size_t HW = (size_t)H * W, CKK = (size_t)Cout * k * k;
    if (nb <= 1) return CKK * HW;
    return (CKK + (size_t)Cin) * (size_t)nb * HW;
}

void conv_transpose2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                              float *scratch, size_t scratch_n, int B, int Cin, int H, int W, int Cout, int k,
                              int stride, int pad) {
    int Ho = conv_transpose2d_out_dim(H, k, stride, pad), Wo = conv_transpose2d_out_dim(W, k, stride, pad);
    check_geometry("conv_transpose2d_forward", B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    size_t HW = (size_t)H * W, HWo = (size_t)Ho * Wo, CKK = (size_t)Cout * k * k;
    int nb = pick_chunk("conv_transpose2d_forward", scratch_n, B, CKK * HW, (CKK + (size_t)Cin) * HW);
    fill_bias(out, bias, B, Cout, HWo);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        const float *x = inp + (size_t)b0 * Cin * HW;
        float *y = out + (size_t)b0 * Cout * HWo;
        size_t ld = (size_t)n * HW;
        float *col = scratch;
        const float *xm = x; /* [Cin, n*HW] */
        if (n > 1) {
            float *xg = scratch + CKK * ld;
            gather_cols(xg, x, n, Cin, HW);
            xm = xg;
        }
        /* col[CKK, n*HW] = Wt^T @ xm */
        gemm(&gemm_fp32, GEMM_T, GEMM_N, (int)CKK, (int)ld, Cin, 1.0f, weight, (int)CKK, xm, (int)ld, 0.0f, col,
             (int)ld);
        for (int i = 0; i < n; i++)
            col2im(y + (size_t)i * Cout * HWo, col + (size_t)i * HW, ld, Cout, Ho, Wo, k, stride, pad, H, W);
    }
}

void conv_transpose2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, float *scratch, size_t scratch_n, int B, int Cin, int H,
                               int W, int Cout, int k, int stride, int pad) {
    int Ho = conv_transpose2d_out_dim(H, k, stride, pad), Wo = conv_transpose2d_out_dim(W, k, stride, pad);
    check_geometry("conv_transpose2d_backward", B, Cin, H, W, Cout, k, stride, pad, Ho, Wo);
    size_t HW = (size_t)H * W, HWo = (size_t)Ho * Wo, CKK = (size_t)Cout * k * k;
    if (dbias) bias_grad(dbias, dout, B, Cout, HWo);
    if (!dinp && !dweight) return;
    int nb = pick_chunk("conv_transpose2d_backward", scratch_n, B, CKK * HW, (CKK + (size_t)Cin) * HW);
    for (int b0 = 0; b0 < B; b0 += nb) {
        int n = B - b0 < nb ? B - b0 : nb;
        const float *x = inp + (size_t)b0 * Cin * HW;
        const float *g = dout + (size_t)b0 * Cout * HWo;
        size_t ld = (size_t)n * HW;
        float *col = scratch;
        for (int i = 0; i < n; i++)
            im2col(col + (size_t)i * HW, ld, g + (size_t)i * Cout * HWo, Cout, Ho, Wo, k, stride, pad, H, W);
        if (n == 1) {
            if (dinp)
                gemm(&gemm_fp32, GEMM_N, GEMM_N, Cin, (int)HW, (int)CKK, 1.0f, weight, (int)CKK, col, (int)HW, 1.0f,
                     dinp + (size_t)b0 * Cin * HW, (int)HW);
            if (dweight)
                gemm(&gemm_fp32, GEMM_N, GEMM_T, Cin, (int)CKK, (int)HW, 1.0f, x, (int)HW, col, (int)HW, 1.0f, dweight,
                     (int)CKK);
        } else {
            float *xm = scratch + CKK * ld; /* [Cin, n*HW] */
            if (dweight) {
                gather_cols(xm, x, n, Cin, HW);
                gemm(&gemm_fp32, GEMM_N, GEMM_T, Cin, (int)CKK, (int)ld, 1.0f, xm, (int)ld, col, (int)ld, 1.0f, dweight,
                     (int)CKK);
            }
            if (dinp) {
                gemm(&gemm_fp32, GEMM_N, GEMM_N, Cin, (int)ld, (int)CKK, 1.0f, weight, (int)CKK, col, (int)ld, 0.0f, xm,
                     (int)ld);
                scatter_add_cols(dinp + (size_t)b0 * Cin * HW, xm, n, Cin, HW);
            }
        }
    }
}
