/* nn.h: dense / transformer layer kernels, forward and backward (llm.c style).
 *
 * Conventions (all ops):
 *  - row-major float32 buffers; shapes are given in each comment as [dim0, dim1, ...];
 *  - op_forward(out, cache..., inputs, weights..., dims)
 *    op_backward(dinput, dweights..., dout, cache/inputs..., dims);
 *  - gradients ACCUMULATE (+=): callers zero them; a NULL gradient pointer = "not needed";
 *  - every matrix product is one gemm() (gemm.h, fp32 today); no allocation inside the ops
 *    (attention backward takes a caller-provided scratch whose size is attention_scratch_size());
 *  - integer index arrays (targets, gather indices, relative-position index) are int32 (`int`).
 *
 * Tested against PyTorch (tests/fixtures/gen_nn.py -> nn.h5) and finite differences in
 * tests/nn/test_dense.c.
 */
#ifndef BEIT_NN_H
#define BEIT_NN_H

#include "beit/rng.h"

#include <stddef.h>

/* ---- linear (linear.c) ------------------------------------------------------------------ */
/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC]   (PyTorch nn.Linear layout; bias may be NULL) */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                    int OC);
/* dinp[N,C] += dout @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += sum_n dout[n,:] */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC);

/* ---- layernorm (layernorm.c) ------------------------------------------------------------ */
/* out[N,C] = (inp - mean) * rstd * weight[C] + bias[C], statistics over the last dim (biased
 * variance, like PyTorch). Caches mean[N], rstd[N] for backward (either may be NULL when no
 * backward follows). weight / bias may be NULL (= 1 / 0). BEiT uses eps = 1e-6. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C, float eps);
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C);

/* ---- activations and softmax (activations.c) ------------------------------------------- */
/* GELU, erf form: out = 0.5 x (1 + erf(x / sqrt 2)). n elements; out may alias inp. */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * gelu'(inp). dinp must not alias dout. */
void gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* out = max(x, 0); backward dinp += dout * [inp > 0] (subgradient 0 at 0, like PyTorch). */
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *inp, size_t n);
/* Row softmax: out[N,L] = softmax(inp[N,L]) over each row (max-subtracted). out may alias inp. */
void softmax_forward(float *out, const float *inp, int N, int L);
/* Given the forward OUTPUT y: dinp += y * (dout - <dout, y>) per row. */
void softmax_backward(float *dinp, const float *dout, const float *y, int N, int L);

/* ---- multi-head self-attention core (attention.c) -------------------------------------- */
/* qkv[B,T,3C] = [q | k | v] along the last dim (as one PyTorch qkv Linear produces), each of
 * q, k, v split into NH heads of hd = C/NH contiguous channels (head h = channels h*hd..).
 *   logits[b,h] = scale * q[b,h] k[b,h]^T + bias[h]     (bias[NH,T,T] additive, shared by the
 *                                                         batch; may be NULL)
 *   att[b,h]    = softmax over keys (rows of logits)      cached: att[B,NH,T,T]
 *   out[b,:,h*hd:(h+1)*hd] = att[b,h] @ v[b,h]          out[B,T,C], heads concatenated
 * BEiT: scale = hd^-0.5. q, k, v are read in place from qkv through sgemm's leading
 * dimension (3C), so there is no packing and the forward needs no scratch. */
void attention_forward(float *out, float *att, const float *qkv, const float *bias, int B, int T, int C,
                       int NH, float scale);
/* floats of scratch attention_backward needs: T*T (one (b,h) logit-gradient tile) */
size_t attention_scratch_size(int B, int T, int C, int NH);
/* dqkv[B,T,3C] += ...; dbias[NH,T,T] += gradient summed over the batch (NULL = skip). */
void attention_backward(float *dqkv, float *dbias, const float *dout, const float *qkv, const float *att,
                        float *scratch, int B, int T, int C, int NH, float scale);

/* Relative position bias (BEiT / timm): a table[R,NH] gathered into bias[NH,T,T] by
 *   bias[h,i,j] = table[index[i*T+j]*NH + h].  */
void relpos_bias_forward(float *bias, const float *table, const int *index, int NH, int T);
/* dtable[R,NH] += scatter-add of dbias[NH,T,T] along the same index */
void relpos_bias_backward(float *dtable, const float *dbias, const int *index, int NH, int T);
/* Rows of the table for an H x W patch grid with a CLS token: (2H-1)(2W-1) + 3. */
int relpos_table_rows(int H, int W);
/* BEiT's index[T*T], T = H*W + 1 (token 0 = CLS, token 1 + y*W + x = patch (y, x)):
 * patch (y1,x1) -> patch (y2,x2): (y1-y2+H-1)*(2W-1) + (x1-x2+W-1); CLS -> patch: R-3;
 * patch -> CLS: R-2; CLS -> CLS: R-1 (R = relpos_table_rows(H, W)). Same as timm's
 * gen_relative_position_index / unilm's relative_position_index. */
void relpos_index_build(int *index, int H, int W);

/* ---- residual with LayerScale and drop path (residual.c) ------------------------------- */
/* out[B,T,C] = x + s[b] * gamma[c] * y. gamma[C] may be NULL (no LayerScale = 1); s[B] holds
 * per-sample drop-path scales (0 or 1/(1-p); NULL = all 1). out may alias x (in-place
 * residual stream). */
void residual_forward(float *out, const float *x, const float *y, const float *gamma, const float *s,
                      int B, int T, int C);
/* dx += dout; dy += s[b] * gamma * dout; dgamma[C] += sum_{b,t} s[b] * y * dout. Pass dx = NULL
 * when the caller keeps dout itself as x's gradient (it is exactly dout). dx/dy must not
 * alias dout. */
void residual_backward(float *dx, float *dy, float *dgamma, const float *dout, const float *y,
                       const float *gamma, const float *s, int B, int T, int C);
/* Per-sample drop-path scales: for b = 0..B-1 in order, one rng_uniform(r) draw u_b each
 * (also when p == 0, so the stream position does not depend on p); sample b is dropped iff
 * u_b < p: s[b] = 0, else s[b] = 1/(1-p). Requires 0 <= p < 1. */
void droppath_scales(float *s, int B, float p, rng_t *r);

/* ---- patch embedding, pooling, row gather, layout (embed.c) ---------------------------- */
/* im2col for a stride-P, kernel-P conv: img[B,Cin,H,W] (NCHW) -> patches[B,Np,K] with
 * Np = (H/P)(W/P) patches in row-major grid order (n = gy*(W/P) + gx) and K = Cin*P*P values
 * per patch in (c, py, px) order, so a PyTorch Conv2d weight [D,Cin,P,P] is exactly a linear
 * weight [D,K]: patch embedding = patchify + linear. H and W must be multiples of P. */
void patchify_forward(float *patches, const float *img, int B, int Cin, int H, int W, int P);
/* dimg[B,Cin,H,W] += scatter of dpatches[B,Np,K] (patches do not overlap) */
void patchify_backward(float *dimg, const float *dpatches, int B, int Cin, int H, int W, int P);
/* Pixel-regression targets [B,Np,K] in patchify's layout. norm_per_patch != 0: each patch row is
 * normalised to (x - mean) / sqrt(var + 1e-6) with the UNBIASED variance over its K values
 * (MAE's norm_pix_loss recipe, the "normalised pixels" of BEiT's pixel ablation). */
void pixel_targets(float *out, const float *img, int B, int Cin, int H, int W, int P, int norm_per_patch);
/* out[B,C] = mean over t in [t0, T) of x[B,T,C] (t0 = 1 skips CLS). Requires 0 <= t0 < T. */
void meanpool_forward(float *out, const float *x, int B, int T, int C, int t0);
/* dx[b,t,:] += dout[b,:] / (T - t0) for t >= t0 */
void meanpool_backward(float *dx, const float *dout, int B, int T, int C, int t0);
/* out[M,C] = x[idx[m], :] (rows of x[N,C]; idx values in [0, N)) */
void gather_rows(float *out, const float *x, const int *idx, int M, int C);
/* dx[idx[m], :] += dout[m, :] (repeated indices accumulate) */
void gather_rows_backward(float *dx, const float *dout, const int *idx, int M, int C);
/* out[B,S,R] = x[B,R,S] transposed per sample (e.g. tokens [B,Np,C] <-> maps [B,C,Np]); a copy */
void transpose_batched(float *out, const float *x, int B, int R, int S);

/* ---- losses (losses.c) ------------------------------------------------------------------ */
/* Cross-entropy over rows of logits[N,V] with label smoothing eps (target distribution
 * q = (1-eps) onehot(t) + eps/V). Returns the SUM over rows of -sum_v q_v log p_v (double,
 * = F.cross_entropy(..., label_smoothing=eps, reduction='sum')). Rows with target < 0 are
 * ignored (loss 0, gradient 0), like ignore_index. A target >= V is a fatal mismatch.
 * Caches probs[N,V] = softmax(logits) for backward (may be NULL if no backward follows). */
double crossentropy_forward(float *probs, const float *logits, const int *targets, int N, int V,
                            float eps);
/* dlogits += scale * (probs - q) for every non-ignored row (scale e.g. 1/global count). */
void crossentropy_backward(float *dlogits, const float *probs, const int *targets, int N, int V,
                           float eps, float scale);
/* Number of rows whose argmax (first maximum on ties) equals the target (target < 0 ignored).
 * Works on logits or probs alike. */
int argmax_correct(const float *logits, const int *targets, int N, int V);
/* sum_i (pred_i - target_i)^2 in double */
double mse_forward(const float *pred, const float *target, size_t n);
/* dpred += scale * 2 * (pred - target) */
void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale);

/* ---- Gumbel-softmax (gumbel.c) ---------------------------------------------------------- */
/* y[N,V] = softmax((logits + g) / tau) over the last dim. g[N,V] is the noise (NULL = none:
 * a plain tempered softmax). */
void gumbel_softmax_forward(float *y, const float *logits, const float *g, int N, int V, float tau);
/* dlogits += (1/tau) * y * (dy - <dy, y>) per row, given the forward output y. (The
 * gradient with respect to g is the same, should anyone need it.) */
void gumbel_softmax_backward(float *dlogits, const float *dy, const float *y, int N, int V, float tau);
/* g[i] = -log(-log(u_i)), i = 0..n-1, one rng_u32(r) draw each: u = (2j + 1) 2^-24 with j
 * the draw's top 23 bits (exact in float), so 2^-24 <= u <= 1 - 2^-24: u is never 0 or 1
 * and every g is finite, within [-2.8116, 16.6355]. Logs by vmath.h (relative error
 * <= 4e-7 each). */
void gumbel_noise(float *g, size_t n, rng_t *r);

#endif
