/* conv.h: spatial layer kernels for the dVAE tokenizer and the segmentation decoder,
 * forward and backward (llm.c style, same conventions as nn.h).
 *
 *  - activations are NCHW float32: [B, C, H, W], row-major;
 *  - weights use PyTorch's layout so a state_dict maps 1:1:
 *      Conv2d            weight [Cout, Cin, k, k], bias [Cout]
 *      ConvTranspose2d   weight [Cin, Cout, k, k], bias [Cout]
 *  - gradients ACCUMULATE (+=): callers zero them; a NULL gradient pointer = "not needed";
 *  - every matrix product is one gemm() (gemm.h; im2col / col2im); no allocation inside the ops:
 *    the convolutions take a caller scratch buffer of `scratch_n` floats. With
 *    conv2d_scratch_size(nb, ...) floats the op processes nb images per sgemm (one im2col
 *    matrix [Cin*k*k, nb*Hout*Wout]); it picks the largest nb <= B that fits scratch_n, so
 *    conv2d_scratch_size(B, ...) gives one sgemm per call and conv2d_scratch_size(1, ...) is
 *    the minimum. The same buffer serves forward and backward.
 *  - integer index arrays (max-pool argmax) are int32 (`int`).
 *
 * Tested against PyTorch (tests/fixtures/gen_conv.py -> conv.h5) and finite differences in
 * tests/nn/test_conv.c.
 */
#ifndef BEIT_CONV_H
#define BEIT_CONV_H

#include "beit/error.h"

#include <stddef.h>

/* ---- conv2d (conv.c) ---------------------------------------------------------------------- */
/* Output side of a k x k conv with stride s and zero padding p: floor((in + 2p - k) / s) + 1
 * (PyTorch's rule; input rows/cols past the last full window are ignored). <= 0 = invalid. */
int conv2d_out_dim(int in, int k, int stride, int pad);
/* Floats of scratch for nb images per sgemm:
 *   Cin*k*k * nb*Ho*Wo            (the im2col matrix)
 * + Cout * nb*Ho*Wo   if nb > 1   (the sgemm result / gathered dout, re-laid to NCHW)
 * A 1x1, stride 1, pad 0 conv with nb = 1 needs none (returns 0; scratch may be NULL). */
size_t conv2d_scratch_size(int nb, int Cin, int H, int W, int Cout, int k, int stride, int pad);
/* out[B,Cout,Ho,Wo] = conv(inp[B,Cin,H,W], weight[Cout,Cin,k,k]) + bias[Cout] (bias may be NULL);
 * Ho = conv2d_out_dim(H, k, stride, pad), Wo likewise. */
void conv2d_forward(float *out, const float *inp, const float *weight, const float *bias, float *scratch,
                    size_t scratch_n, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad);
/* dinp[B,Cin,H,W] += col2im(W^T dout); dweight[Cout,Cin,k,k] += dout im2col(inp)^T;
 * dbias[Cout] += sum over b, y, x of dout. Any of the three may be NULL. */
void conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, float *scratch, size_t scratch_n, int B, int Cin, int H, int W,
                     int Cout, int k, int stride, int pad);

/* ---- transposed conv2d (conv.c) ------------------------------------------------------------ */
/* nn.ConvTranspose2d(Cin, Cout, k, stride, pad) with output_padding 0, dilation 1, groups 1:
 * Ho = (H - 1) * stride - 2 pad + k. <= 0 = invalid. */
int conv_transpose2d_out_dim(int in, int k, int stride, int pad);
/* Floats of scratch for nb images per sgemm (H, W = the INPUT side):
 *   Cout*k*k * nb*H*W             (the column matrix)
 * + Cin * nb*H*W      if nb > 1   (the gathered input / input gradient, re-laid to NCHW) */
size_t conv_transpose2d_scratch_size(int nb, int Cin, int H, int W, int Cout, int k, int stride, int pad);
/* out[B,Cout,Ho,Wo] = col2im(weight[Cin,Cout*k*k]^T inp) + bias[Cout]  (bias may be NULL):
 * the data-gradient of the conv with the same (k, stride, pad). */
void conv_transpose2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                              float *scratch, size_t scratch_n, int B, int Cin, int H, int W, int Cout, int k,
                              int stride, int pad);
/* dinp[B,Cin,H,W] += weight im2col(dout); dweight[Cin,Cout,k,k] += inp im2col(dout)^T;
 * dbias[Cout] += sum of dout. Any of the three may be NULL. */
void conv_transpose2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *weight, float *scratch, size_t scratch_n, int B, int Cin, int H,
                               int W, int Cout, int k, int stride, int pad);

/* ---- max-pool (pool.c) --------------------------------------------------------------------- */
/* k x k windows, stride s, no padding, floor mode (nn.MaxPool2d(k, s)):
 * out[B,C,Ho,Wo] with Ho = (H - k) / s + 1. argmax[B,C,Ho,Wo] caches, per output, the index
 * y*W + x of the winner inside its [H,W] plane (PyTorch's return_indices convention); ties go
 * to the first maximum in row-major scan order and a NaN wins, as in PyTorch. argmax may be
 * NULL when no backward follows. */
void maxpool2d_forward(float *out, int *argmax, const float *inp, int B, int C, int H, int W, int k,
                       int stride);
/* dinp[B,C,H,W] += dout routed to the cached argmax (overlapping windows add up). */
void maxpool2d_backward(float *dinp, const float *dout, const int *argmax, int B, int C, int H, int W,
                        int k, int stride);

/* ---- upsampling (upsample.c) --------------------------------------------------------------- */
/* Nearest, integer factor f (F.interpolate(mode='nearest', scale_factor=f)):
 * out[B,C,H*f,W*f], out[y][x] = inp[y/f][x/f]. */
void upsample_nearest_forward(float *out, const float *inp, int B, int C, int H, int W, int f);
/* dinp[B,C,H,W] += sum of dout over each f x f block. */
void upsample_nearest_backward(float *dinp, const float *dout, int B, int C, int H, int W, int f);

/* Bilinear to an output size, align_corners=False (F.interpolate(size=(Ho, Wo),
 * mode='bilinear')): per axis, src = (in/out) * (dst + 0.5) - 0.5 clamped below at 0,
 * i0 = floor(src), i1 = min(i0 + 1, in - 1), weights (1 - frac, frac). Any ratio, up or down
 * (no antialiasing when shrinking, like PyTorch's default). out[B,C,Ho,Wo]. */
void upsample_bilinear_forward(float *out, const float *inp, int B, int C, int H, int W, int Ho, int Wo);
/* dinp[B,C,H,W] += the transpose of the interpolation applied to dout[B,C,Ho,Wo]. */
void upsample_bilinear_backward(float *dinp, const float *dout, int B, int C, int H, int W, int Ho, int Wo);

#endif
