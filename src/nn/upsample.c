/* upsample.c: nearest (integer factor) and bilinear (any output size, align_corners=False)
 * upsampling of NCHW planes, as F.interpolate does them.
 *   nearest:  inp[B,C,H,W] -> out[B,C,H*f,W*f]
 *   bilinear: inp[B,C,H,W] -> out[B,C,Ho,Wo] */
#include "beit/conv.h"
#include "beit/error.h"

#include <string.h>

void upsample_nearest_forward(float *out, const float *inp, int B, int C, int H, int W, int f) {
    if (f <= 0) beit_fatal(BEIT_EXIT_FAILURE, "upsample_nearest_forward: factor %d", f);
    int Ho = H * f, Wo = W * f;
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = inp + pl * H * W;
        float *y = out + pl * Ho * Wo;
        for (int iy = 0; iy < H; iy++) {
            float *row = y + (size_t)iy * f * Wo;
            for (int ix = 0; ix < W; ix++) {
                float v = x[iy * W + ix];
                for (int j = 0; j < f; j++) row[ix * f + j] = v;
            }
            for (int i = 1; i < f; i++) memcpy(row + (size_t)i * Wo, row, (size_t)Wo * sizeof(float));
        }
    }
}

void upsample_nearest_backward(float *dinp, const float *dout, int B, int C, int H, int W, int f) {
    if (f <= 0) beit_fatal(BEIT_EXIT_FAILURE, "upsample_nearest_backward: factor %d", f);
    int Ho = H * f, Wo = W * f;
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = dinp + pl * H * W;
        const float *g = dout + pl * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            float *drow = dx + (size_t)(oy / f) * W;
            const float *grow = g + (size_t)oy * Wo;
            for (int ox = 0; ox < Wo; ox++) drow[ox / f] += grow[ox];
        }
    }
}

/* PyTorch's align_corners=False source index for output index d along an axis of in -> out
 * (area_pixel_compute_source_index + the linear weights of upsample_bilinear2d), in float as
 * PyTorch computes it for float tensors: src = max(scale * (d + 0.5) - 0.5, 0), scale = in/out. */
static void linear_src(int d, int in, int out, int *i0, int *i1, float *w0, float *w1) {
    float scale = (float)in / (float)out;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int lo = (int)src; /* src >= 0: truncation = floor */
    if (lo > in - 1) lo = in - 1;
    *i0 = lo;
    *i1 = lo < in - 1 ? lo + 1 : lo;
    *w1 = src - (float)lo;
    *w0 = 1.0f - *w1;
}

static void check_bilinear(const char *op, int B, int C, int H, int W, int Ho, int Wo) {
    if (B < 0 || C <= 0 || H <= 0 || W <= 0 || Ho <= 0 || Wo <= 0)
        beit_fatal(BEIT_EXIT_FAILURE, "%s: invalid sizes B=%d C=%d %dx%d -> %dx%d", op, B, C, H, W, Ho, Wo);
}

/* Plane-outer loops keep the reads and writes contiguous; the per-pixel source index is a
 * few flops, cheaper than a table the caller would have to pass in. */
void upsample_bilinear_forward(float *out, const float *inp, int B, int C, int H, int W, int Ho, int Wo) {
    check_bilinear("upsample_bilinear_forward", B, C, H, W, Ho, Wo);
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = inp + pl * H * W;
        float *y = out + pl * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0, y1;
            float wy0, wy1;
            linear_src(oy, H, Ho, &y0, &y1, &wy0, &wy1);
            const float *r0 = x + (size_t)y0 * W, *r1 = x + (size_t)y1 * W;
            for (int ox = 0; ox < Wo; ox++) {
                int x0, x1;
                float wx0, wx1;
                linear_src(ox, W, Wo, &x0, &x1, &wx0, &wx1);
                y[(size_t)oy * Wo + ox] = wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1]);
            }
        }
    }
}

void upsample_bilinear_backward(float *dinp, const float *dout, int B, int C, int H, int W, int Ho, int Wo) {
    check_bilinear("upsample_bilinear_backward", B, C, H, W, Ho, Wo);
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = dinp + pl * H * W;
        const float *g = dout + pl * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            int y0, y1;
            float wy0, wy1;
            linear_src(oy, H, Ho, &y0, &y1, &wy0, &wy1);
            float *r0 = dx + (size_t)y0 * W, *r1 = dx + (size_t)y1 * W;
            for (int ox = 0; ox < Wo; ox++) {
                int x0, x1;
                float wx0, wx1;
                linear_src(ox, W, Wo, &x0, &x1, &wx0, &wx1);
                float gv = g[(size_t)oy * Wo + ox];
                r0[x0] += wy0 * wx0 * gv;
                r0[x1] += wy0 * wx1 * gv;
                r1[x0] += wy1 * wx0 * gv;
                r1[x1] += wy1 * wx1 * gv;
            }
        }
    }
}
