/* pool.c: max-pool, k x k windows, stride s, no padding, floor mode (nn.MaxPool2d(k, s)).
 *   inp[B,C,H,W] -> out[B,C,Ho,Wo], argmax[B,C,Ho,Wo] (int32 index y*W + x within the plane),
 *   Ho = (H - k) / s + 1, Wo = (W - k) / s + 1 */
#include "beit/conv.h"
#include "beit/error.h"

#include <math.h>

static void check_pool(const char *op, int B, int C, int H, int W, int k, int stride) {
    if (B < 0 || C <= 0 || k <= 0 || stride <= 0 || H < k || W < k)
        beit_fatal(BEIT_EXIT_FAILURE, "%s: invalid geometry B=%d C=%d H=%d W=%d k=%d stride=%d", op, B, C, H, W, k,
                   stride);
}

void maxpool2d_forward(float *out, int *argmax, const float *inp, int B, int C, int H, int W, int k,
                       int stride) {
    check_pool("maxpool2d_forward", B, C, H, W, k, stride);
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    size_t planes = (size_t)B * C;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = inp + pl * H * W;
        float *y = out + pl * Ho * Wo;
        int *am = argmax ? argmax + pl * Ho * Wo : NULL;
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                int y0 = oy * stride, x0 = ox * stride;
                /* PyTorch's scan: strict > keeps the first maximum; a NaN wins and sticks */
                int best = y0 * W + x0;
                float m = -INFINITY;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int idx = (y0 + i) * W + (x0 + j);
                        float v = x[idx];
                        if (v > m || isnan(v)) {
                            m = v;
                            best = idx;
                            if (isnan(v)) goto done;
                        }
                    }
            done:
                y[oy * Wo + ox] = m;
                if (am) am[oy * Wo + ox] = best;
            }
    }
}

void maxpool2d_backward(float *dinp, const float *dout, const int *argmax, int B, int C, int H, int W, int k,
                        int stride) {
    check_pool("maxpool2d_backward", B, C, H, W, k, stride);
    int Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    size_t planes = (size_t)B * C, HWo = (size_t)Ho * Wo;
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = dinp + pl * H * W;
        const float *g = dout + pl * HWo;
        const int *am = argmax + pl * HWo;
        for (size_t o = 0; o < HWo; o++) dx[am[o]] += g[o];
    }
}
