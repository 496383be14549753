/* dvae.h: the dVAE image tokenizer (DALL-E style, small), forward and backward over a batch.
 *
 * Architecture, parameter names and losses are DEFINED by tools/torchref/dvae.py (class DVAE);
 * this is the C implementation, checked against it by tests/models/test_dvae.c.
 *
 *   S = image_size, G = ngroups, w_g = widths[g], h = S / 2^(G-1), P = h*h, V = vocab,
 *   C = in_chans, C' = C (MSE) or 2C (logit-Laplace). All tensors NCHW float32.
 *
 * Encoder:  x[B,C,S,S] in [0,1] -> 0.8x + 0.1 -> stem conv3x3(C -> w0)
 *           group g = 0..G-1: (g > 0: maxpool 2x2) `blocks` residual blocks at width w_g
 *           relu, conv1x1(w_{G-1} -> V)                            -> logits[B,V,h,h]
 * Relax:    z = softmax over V of (logits + g) / tau                -> z[B,V,h,h]
 * Decoder:  stem conv1x1(V -> w_{G-1}); group i = 0..G-1 at width w_{G-1-i}: `blocks` residual
 *           blocks, then (i < G-1) nearest x2; relu, conv3x3(w0 -> C') -> out[B,C',S,S]
 * Block:    y = id(x) + conv3x3(relu(conv3x3(relu(x)))), id = conv1x1 when widths differ.
 *
 * Loss (the caller normalises, so data-parallel ranks can divide by GLOBAL counts):
 *   recon_sum = sum over the B*C*S*S pixels of (out - x)^2             (MSE)
 *             = sum of ln(2b) + |logit(x') - mu| / b + ln(x'(1-x'))    (logit-Laplace;
 *               x' = 0.8x + 0.1, mu = out[:, :C], ln b = out[:, C:])
 *   kl_sum    = sum over the B*P positions of KL(softmax(logits) || uniform(V))
 *   loss      = recon_scale * recon_sum + kl_scale * kl_sum,
 *               with recon_scale = 1/global pixels, kl_scale = kl_weight/global positions,
 *   which is torchref's recon + kl_weight * kl.
 *
 * Usage: params_init(&pt); dvae_build(&m, &pt, &dims); params_alloc(&pt); dvae_init(&m, &pt,
 * seed) (or load a checkpoint); dvae_alloc(&m, max_batch); then per step dvae_forward,
 * dvae_backward (after the caller zeroes pt.grad); dvae_free at the end.
 */
#ifndef BEIT_DVAE_H
#define BEIT_DVAE_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

#define DVAE_MAX_GROUPS 8

enum { DVAE_MSE = 0, DVAE_LOGIT_LAPLACE = 1 };

typedef struct {
    int in_chans, image_size, vocab, ngroups, widths[DVAE_MAX_GROUPS], blocks;
    int recon; /* DVAE_MSE or DVAE_LOGIT_LAPLACE */
    int codebook_unit; /* decoder.stem (the codebook) at U(+-1) instead of U(+-1/sqrt(V)) */
} dvae_dims;

/* One conv layer: its tensors' indices in the param_table and its geometry. */
typedef struct {
    int w, b;            /* param indices; w = -1: absent (identity shortcut) */
    int cin, cout, k;    /* k = 3 (pad 1) or 1 (pad 0), stride 1 */
    int side;            /* input = output side (square maps) */
} dvae_conv;

/* A residual block and its saved activations (per image [c, side, side]):
 *   a1 = relu(x)[cin], a2 = relu(conv1(a1))[cout], out = id(x) + conv2(a2)[cout] */
typedef struct {
    dvae_conv conv1, conv2, idconv;
    int cin, cout, side;
    float *a1, *a2, *out;
} dvae_block;

typedef struct {
    dvae_dims d;
    int G, S, h, P;  /* groups, image side, token grid side, positions per image (h*h) */
    int V, C, Cout;  /* vocab, input channels, output channels (C or 2C) */
    dvae_conv enc_stem, enc_out, dec_stem, dec_out;
    /* enc[g*blocks + b] runs at width widths[g]; dec[i*blocks + b] at width widths[G-1-i] */
    dvae_block *enc, *dec;

    /* ---- activations (dvae_alloc), sized for max_batch images ---- */
    int max_batch;
    float *arena;
    int *iarena;
    float *x;                   /* [B,C,S,S] copy of the input (targets of the recon loss) */
    float *xin;                 /* [B,C,S,S] 0.8x + 0.1 (stem input) */
    float *e_stem;              /* [B,w0,S,S] */
    float *pool[DVAE_MAX_GROUPS]; /* encoder group g > 0 input: maxpool of group g-1 output */
    int *pool_idx[DVAE_MAX_GROUPS];
    float *e_aout;              /* [B,w_{G-1},h,h] relu of the last encoder block */
    /* The V-wide tensors are token-major, [B*P, V] (row b*P + p: image b, position p), so the
     * 1x1 convs into and out of them are one sgemm each over the batch (dvae.c). */
    float *ea_rows;             /* [B*P, w_{G-1}] e_aout as rows (encoder.out input) */
    float *ds_rows;             /* [B*P, w_{G-1}] decoder.stem output / its gradient, as rows */
    float *logits;              /* [B*P, V] */
    float *z;                   /* [B*P, V] relaxed one-hot (forward) */
    float *lse, *negent;        /* [B*P] log-sum-exp of the logits, sum_v q ln q */
    double *acc;                /* max(V, w_{G-1}) partial sums (bias gradients) */
    float *d_stem;              /* [B,w_{G-1},h,h] */
    float *up[DVAE_MAX_GROUPS]; /* decoder group i > 0 input: nearest x2 of group i-1 output */
    float *d_aout;              /* [B,w0,S,S] relu of the last decoder block */
    float *out;                 /* [B,C',S,S] decoder output (stats) */
    float *gbuf[3];             /* gradient ping-pong (forward: gbuf[0] is a temporary) */
    size_t gbuf_n;              /* floats in each */
    float *dz;                  /* [B*P, V] dz, turned into dlogits in place */
    float *scratch;             /* conv scratch, scratch_n floats */
    size_t scratch_n;

    /* ---- state left by dvae_forward for dvae_backward ---- */
    int fwd_B;                  /* batch of the saved forward; 0 = none */
    float tau;
} dvae_model;

typedef struct {
    double recon_sum;  /* sum over pixels of the per-pixel recon loss */
    double kl_sum;     /* sum over positions of KL(q || uniform) */
    double sq_err_sum; /* sum over pixels of (mean output - x)^2 (mean output as dvae_decode) */
    int64_t pixels;    /* B*C*S*S */
    int64_t positions; /* B*h*h */
} dvae_sums;

/* Validate the dims (beit_fatal_user, exit code BEIT_EXIT_USAGE, on nonsense) and add every
 * tensor to pt with torchref's state_dict names and shapes (conv weight decay 1, bias 0,
 * layer_id -1), in the order their gradients become final in backward: decoder.out,
 * decoder.groups.{G-1..0}.{blocks-1..0}, decoder.stem, encoder.out, encoder.groups.{G-1..0}...,
 * encoder.stem (within a block: conv2, conv1, idconv). */
void dvae_build(dvae_model *m, param_table *pt, const dvae_dims *d);
/* PyTorch's default Conv2d init after params_alloc: weight and bias ~ U(-1/sqrt(fan_in),
 * 1/sqrt(fan_in)), fan_in = cin*k*k; tensor i draws from rng_stream(seed, RNG_INIT, i, 0). */
void dvae_init(dvae_model *m, param_table *pt, uint64_t seed);
/* Activation buffers and the conv scratch for batches of up to max_batch images. */
void dvae_alloc(dvae_model *m, int max_batch);
/* Free what dvae_build and dvae_alloc allocated (not the param_table). */
void dvae_free(dvae_model *m);
/* Bytes of activation memory dvae_alloc(m, max_batch) takes (for logging / planning). */
size_t dvae_activation_bytes(const dvae_model *m, int max_batch);

/* Training forward over 0 <= B <= max_batch images x[B,C,S,S] in [0,1] (not checked; the
 * logit-Laplace loss needs 0.8x + 0.1 inside (0, 1)). gumbel[B,h,h,V] is the noise,
 * token-major like the logits (NULL: none, a plain tempered softmax); tau > 0. Fills *out with sums over the local batch and
 * keeps what dvae_backward needs (x is copied; the caller may reuse it). */
void dvae_forward(dvae_model *m, const param_table *pt, const float *x, const float *gumbel, float tau, int B,
                  dvae_sums *out);
/* Accumulates (+=) into pt->grad the gradient of recon_scale * recon_sum + kl_scale * kl_sum
 * of the last dvae_forward (B must match it). */
void dvae_backward(dvae_model *m, param_table *pt, float recon_scale, float kl_scale, int B);

/* ---- inference (these overwrite the saved forward state) ---- */
/* tokens[B,h,h] = argmax over V of the encoder logits (first maximum on ties, like torch);
 * logits_out [B,V,h,h] receives the logits when not NULL. */
void dvae_encode(dvae_model *m, const param_table *pt, const float *x, int B, int32_t *tokens,
                 float *logits_out);
/* The decoder on soft codes z[B,V,h,h]: stats_out [B,C',S,S] (may be NULL) and mean_out
 * [B,C,S,S] (may be NULL), the mean image in [0,1] exactly as torchref's reconstruct():
 * clamp(out, 0, 1) for MSE, clamp((sigmoid(mu) - 0.1) / 0.8, 0, 1) for logit-Laplace. */
void dvae_decode(dvae_model *m, const param_table *pt, const float *z, int B, float *stats_out,
                 float *mean_out);
/* dvae_decode of the one-hot codes of tokens[B,h,h] (values in [0, V); else a fatal
 * BEIT_EXIT_MISMATCH), with the 1x1 stem as a gather of weight columns. */
void dvae_decode_tokens(dvae_model *m, const param_table *pt, const int32_t *tokens, int B, float *mean_out);

#endif
