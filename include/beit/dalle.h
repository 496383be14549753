/* dalle.h: DALL-E's dVAE encoder (openai/DALL-E dall_e/encoder.py), the tokenizer of the BEiT
 * paper, FORWARD ONLY: it is a frozen tokenizer here (beit tokenize, pretrain.target
 * tokens_online); nothing trains it. Architecture and parameter names are DEFINED by
 * tools/torchref/dalle_encoder.py (a twin of the source); tests/models/dalle.sh checks this
 * implementation against it.
 *
 *   G = group_count (4 in the source), n = n_hid, nb = n_blk_per_group, L = G * nb,
 *   w_g = n << g (g = 0..G-1), s_0 = S, s_g = s_{g-1} / 2 (floor, MaxPool2d(2)), h = s_{G-1},
 *   P = h*h, V = vocab, C = in_chans. All maps NCHW float32.
 *
 *   x [B,C,S,S] in [0,1] -> map_pixels: 0.8 x + 0.1  (logit-Laplace eps 0.1)
 *   blocks.input      conv7x7 (C -> n), pad 3                            -> [B,n,S,S]
 *   blocks.group_{g+1}.block_{i+1}  (cin = w_{g-1} for i = 0 and g > 0, else w_g; cout = w_g;
 *                     hid = cout / 4), at side s_g:
 *       y = id_path(x) + (1 / L^2) * conv_4(relu(conv_3(relu(conv_2(relu(conv_1(relu(x))))))))
 *       conv_1 3x3 cin -> hid, conv_2 / conv_3 3x3 hid -> hid, conv_4 1x1 hid -> cout,
 *       id_path = 1x1 conv cin -> cout when cin != cout, else identity
 *     then (g < G-1) maxpool 2x2 stride 2                                -> [B,w_g,s_{g+1},s_{g+1}]
 *   blocks.output     relu, conv1x1 (w_{G-1} -> V)                       -> logits [B*P, V] (token-major)
 *   tokens = argmax over V (first maximum on ties, as torch.argmax)
 *
 * Parameters (names as the twin's state_dict; every conv: <prefix>.w [cout,cin,k,k], <prefix>.b [cout]):
 *   blocks.input, blocks.group_{g}.block_{i}.{id_path, res_path.conv_1..conv_4}, blocks.output.conv
 *
 * Usage: params_init(&pt); dalle_build(&m, &pt, &dims); params_alloc(&pt); load the
 * checkpoint (ckpt_load_params); dalle_alloc(&m, max_batch); dalle_encode per batch;
 * dalle_free. */
#ifndef BEIT_DALLE_H
#define BEIT_DALLE_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

#define DALLE_MAX_GROUPS 8
#define DALLE_KIND "dalle-encoder" /* the checkpoint kind tools/import_dalle.py writes */

typedef struct {
    int group_count, n_hid, n_blk_per_group, in_chans, vocab, image_size;
} dalle_dims;

/* One conv: its tensors' indices in the param_table and its geometry (stride 1, pad k/2). */
typedef struct {
    int w, b;          /* w = -1: absent (identity id_path) */
    int cin, cout, k, side;
} dalle_conv;

typedef struct {
    dalle_conv id, c1, c2, c3, c4;
    int cin, cout, hid, side;
} dalle_block;

typedef struct {
    dalle_dims d;
    int G, nb, S, h, P, V, C;
    int side[DALLE_MAX_GROUPS], width[DALLE_MAX_GROUPS];
    float post_gain;          /* 1 / (G * nb)^2 */
    dalle_conv input, output;
    dalle_block *blk;         /* [G * nb], group-major */

    /* ---- activations (dalle_alloc), for up to max_batch images ---- */
    int max_batch;
    float *arena;
    float *xin;               /* [B,C,S,S] map_pixels(x) */
    float *fa, *fb, *ft;      /* [B, max c * side^2] block input / output / relu(x), then the residual */
    float *h1, *h2;           /* [B, max hid * side^2] the residual path's hidden maps */
    float *rows;              /* [B*P, w_{G-1}] relu of the last block, token-major */
    float *logits;            /* [B*P, V] */
    float *scratch;           /* conv scratch (conv.h), scratch_n floats */
    size_t scratch_n, feat_n, hid_n;
} dalle_model;

/* Validate the dims (BEIT_EXIT_USAGE naming the field on nonsense: group_count in
 * 1..DALLE_MAX_GROUPS, n_hid >= 1, n_blk_per_group >= 1, in_chans >= 1, vocab >= 2,
 * image_size >= 2^(group_count-1)) and add every tensor to pt, blocks.output.conv first and
 * blocks.input last (the order gradients would become final; decay 1 on weights, -1 layer id). */
void dalle_build(dalle_model *m, param_table *pt, const dalle_dims *d);
/* Activation buffers and conv scratch for batches of up to max_batch images. */
void dalle_alloc(dalle_model *m, int max_batch);
/* Bytes dalle_alloc(m, max_batch) takes (for planning the encoder batch). */
size_t dalle_activation_bytes(const dalle_model *m, int max_batch);
void dalle_free(dalle_model *m);
/* Forward FLOPs of one image (multiply-adds counted as 2), for logs and benchmarks. */
double dalle_flops_per_image(const dalle_model *m);

/* tokens[B,h,h] = argmax over V of the logits of x[B,C,S,S] in [0,1] (map_pixels applied
 * here); logits_out [B,V,h,h] receives the logits when not NULL. 0 <= B <= max_batch. */
void dalle_encode(dalle_model *m, const param_table *pt, const float *x, int B, int32_t *tokens,
                  float *logits_out);

#endif
