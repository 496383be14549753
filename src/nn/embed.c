/* embed.c: patch embedding (im2col for a stride-P conv), pixel targets, token mean pooling,
 * row gather/scatter, per-sample transpose. */
#include "beit/error.h"
#include "beit/nn.h"
#include "beit/prof.h"

#include <math.h>
#include <string.h>

static void check_grid(int H, int W, int P) {
    if (P <= 0 || H % P != 0 || W % P != 0)
        beit_fatal(BEIT_EXIT_FAILURE, "patchify: image %dx%d is not a multiple of patch size %d", H, W, P);
}

/* img[B,Cin,H,W] -> patches[B, (H/P)(W/P), Cin*P*P], per-patch order (c, py, px) */
void patchify_forward(float *patches, const float *img, int B, int Cin, int H, int W, int P) {
    PROF_BEGIN(PROF_EMBED);
    check_grid(H, W, P);
    const int Gh = H / P, Gw = W / P, K = Cin * P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < Gh; gy++)
            for (int gx = 0; gx < Gw; gx++) {
                float *dst = patches + ((size_t)b * Gh * Gw + (size_t)gy * Gw + gx) * K;
                for (int c = 0; c < Cin; c++)
                    for (int py = 0; py < P; py++) {
                        const float *src = img + (((size_t)b * Cin + c) * H + (size_t)gy * P + py) * W + (size_t)gx * P;
                        memcpy(dst + ((size_t)c * P + py) * P, src, (size_t)P * sizeof(float));
                    }
            }
    PROF_END(PROF_EMBED);
}

void patchify_backward(float *dimg, const float *dpatches, int B, int Cin, int H, int W, int P) {
    check_grid(H, W, P);
    const int Gh = H / P, Gw = W / P, K = Cin * P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < Gh; gy++)
            for (int gx = 0; gx < Gw; gx++) {
                const float *src = dpatches + ((size_t)b * Gh * Gw + (size_t)gy * Gw + gx) * K;
                for (int c = 0; c < Cin; c++)
                    for (int py = 0; py < P; py++) {
                        float *dst = dimg + (((size_t)b * Cin + c) * H + (size_t)gy * P + py) * W + (size_t)gx * P;
                        const float *s = src + ((size_t)c * P + py) * P;
                        for (int px = 0; px < P; px++) dst[px] += s[px];
                    }
            }
}

void pixel_targets(float *out, const float *img, int B, int Cin, int H, int W, int P, int norm_per_patch) {
    patchify_forward(out, img, B, Cin, H, W, P);
    if (!norm_per_patch) return;
    const int K = Cin * P * P;
    if (K < 2) beit_fatal(BEIT_EXIT_FAILURE, "pixel_targets: per-patch normalisation needs >= 2 values");
    const size_t rows = (size_t)B * (H / P) * (W / P);
    for (size_t n = 0; n < rows; n++) {
        float *x = out + n * K;
        double m = 0, v = 0;
        for (int k = 0; k < K; k++) m += x[k];
        m /= K;
        for (int k = 0; k < K; k++) v += (x[k] - m) * (x[k] - m);
        v /= (K - 1); /* unbiased, as torch.var's default in MAE's recipe */
        double rs = 1.0 / sqrt(v + 1e-6);
        for (int k = 0; k < K; k++) x[k] = (float)((x[k] - m) * rs);
    }
}

static void check_pool(int T, int t0) {
    if (t0 < 0 || t0 >= T) beit_fatal(BEIT_EXIT_FAILURE, "meanpool: t0=%d not in [0, T=%d)", t0, T);
}

void meanpool_forward(float *out, const float *x, int B, int T, int C, int t0) {
    check_pool(T, t0);
    const double inv = 1.0 / (T - t0);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int t = t0; t < T; t++) s += x[((size_t)b * T + t) * C + c];
            out[(size_t)b * C + c] = (float)(s * inv);
        }
}

void meanpool_backward(float *dx, const float *dout, int B, int T, int C, int t0) {
    check_pool(T, t0);
    const float inv = (float)(1.0 / (T - t0));
    for (int b = 0; b < B; b++)
        for (int t = t0; t < T; t++) {
            float *d = dx + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) d[c] += dout[(size_t)b * C + c] * inv;
        }
}

void gather_rows(float *out, const float *x, const int *idx, int M, int C) {
    PROF_BEGIN(PROF_EMBED);
    for (int m = 0; m < M; m++)
        memcpy(out + (size_t)m * C, x + (size_t)idx[m] * C, (size_t)C * sizeof(float));
    PROF_END(PROF_EMBED);
}

void gather_rows_backward(float *dx, const float *dout, const int *idx, int M, int C) {
    PROF_BEGIN(PROF_EMBED);
    for (int m = 0; m < M; m++) {
        float *d = dx + (size_t)idx[m] * C;
        const float *s = dout + (size_t)m * C;
        for (int c = 0; c < C; c++) d[c] += s[c];
    }
    PROF_END(PROF_EMBED);
}

void transpose_batched(float *out, const float *x, int B, int R, int S) {
    for (int b = 0; b < B; b++) {
        const float *src = x + (size_t)b * R * S;
        float *dst = out + (size_t)b * S * R;
        for (int r = 0; r < R; r++)
            for (int s = 0; s < S; s++) dst[(size_t)s * R + r] = src[(size_t)r * S + s];
    }
}
