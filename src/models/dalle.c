/* dalle.c: DALL-E's dVAE encoder, forward only (include/beit/dalle.h).
 *
 * Shapes (per image; a batch is B of them, NCHW):
 *   x, xin [C,S,S] -> blocks.input [n,S,S] -> group g blocks [w_g, s_g, s_g] -> (g < G-1) maxpool
 *   -> rows [P, w_{G-1}] (relu, token-major) -> logits [P, V] -> tokens [P]
 *
 * Every conv is conv2d_forward (im2col + one gemm per chunk of images; conv.h); the output 1x1
 * conv is one gemm over the whole batch on token-major rows (M = B*P), which is also the layout
 * the argmax wants (a contiguous row of V per position). Three feature buffers ping-pong
 * (block input, block output, relu(x) / residual) and two hold the residual path's hidden
 * maps, so the memory does not grow with the depth. */
#include "beit/dalle.h"

#include "beit/conv.h"
#include "beit/error.h"
#include "beit/gemm.h"
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/vmath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Target im2col columns of one sgemm: a conv on maps smaller than this takes
 * ceil(DALLE_CONV_COLS / side^2) images per sgemm; larger maps go image by image. */
#define DALLE_CONV_COLS 4096

/* ================================ build ================================ */

/* adds <prefix>.w [cout,cin,k,k] and <prefix>.b [cout] */
static dalle_conv add_conv(param_table *pt, const char *prefix, int cin, int cout, int k, int side) {
    dalle_conv c = {.cin = cin, .cout = cout, .k = k, .side = side};
    char name[2 * PARAM_NAME_MAX];
    int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    snprintf(name, sizeof name, "%s.w", prefix);
    c.w = params_add(pt, name, 4, ws, 1, -1);
    snprintf(name, sizeof name, "%s.b", prefix);
    c.b = params_add(pt, name, 1, bs, 0, -1);
    return c;
}

void dalle_build(dalle_model *m, param_table *pt, const dalle_dims *d) {
    memset(m, 0, sizeof *m);
    m->d = *d;
    const int G = d->group_count, nb = d->n_blk_per_group;
    if (G < 1 || G > DALLE_MAX_GROUPS)
        beit_fatal_user(BEIT_EXIT_USAGE, "dalle: group_count %d; expected 1..%d", G, DALLE_MAX_GROUPS);
    if (d->n_hid < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dalle: n_hid %d; expected >= 1", d->n_hid);
    if (nb < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dalle: n_blk_per_group %d; expected >= 1", nb);
    if (d->in_chans < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dalle: in_chans %d; expected >= 1", d->in_chans);
    if (d->vocab < 2) beit_fatal_user(BEIT_EXIT_USAGE, "dalle: vocab_size %d; expected >= 2", d->vocab);
    if (d->image_size < (1 << (G - 1)))
        beit_fatal_user(BEIT_EXIT_USAGE, "dalle: image_size %d is smaller than 2^(group_count-1) = %d", d->image_size,
                        1 << (G - 1));
    /* EncoderBlock asserts n_out % 4 == 0: with w_g = n_hid << g that is n_hid % 4 for g = 0 */
    if (d->n_hid % 4)
        beit_fatal_user(BEIT_EXIT_USAGE, "dalle: n_hid %d is not a multiple of 4 (hidden width n_out / 4)", d->n_hid);
    m->G = G;
    m->nb = nb;
    m->S = d->image_size;
    m->V = d->vocab;
    m->C = d->in_chans;
    m->post_gain = 1.0f / (float)((double)(G * nb) * (G * nb));
    for (int g = 0; g < G; g++) {
        m->side[g] = g ? m->side[g - 1] / 2 : m->S;
        m->width[g] = d->n_hid << g;
    }
    m->h = m->side[G - 1];
    m->P = m->h * m->h;
    m->blk = xcalloc((size_t)G * nb, sizeof *m->blk);

    /* the order gradients would become final: output first, input last */
    m->output = add_conv(pt, "blocks.output.conv", m->width[G - 1], m->V, 1, m->h);
    char name[PARAM_NAME_MAX];
    for (int g = G - 1; g >= 0; g--)
        for (int i = nb - 1; i >= 0; i--) {
            dalle_block *b = &m->blk[g * nb + i];
            b->cin = i == 0 && g > 0 ? m->width[g - 1] : m->width[g];
            b->cout = m->width[g];
            b->hid = b->cout / 4;
            b->side = m->side[g];
            const int s = b->side;
            snprintf(name, sizeof name, "blocks.group_%d.block_%d.res_path.conv_4", g + 1, i + 1);
            b->c4 = add_conv(pt, name, b->hid, b->cout, 1, s);
            snprintf(name, sizeof name, "blocks.group_%d.block_%d.res_path.conv_3", g + 1, i + 1);
            b->c3 = add_conv(pt, name, b->hid, b->hid, 3, s);
            snprintf(name, sizeof name, "blocks.group_%d.block_%d.res_path.conv_2", g + 1, i + 1);
            b->c2 = add_conv(pt, name, b->hid, b->hid, 3, s);
            snprintf(name, sizeof name, "blocks.group_%d.block_%d.res_path.conv_1", g + 1, i + 1);
            b->c1 = add_conv(pt, name, b->cin, b->hid, 3, s);
            if (b->cin != b->cout) {
                snprintf(name, sizeof name, "blocks.group_%d.block_%d.id_path", g + 1, i + 1);
                b->id = add_conv(pt, name, b->cin, b->cout, 1, s);
            } else {
                b->id = (dalle_conv){.w = -1, .b = -1, .cin = b->cin, .cout = b->cout, .k = 1, .side = s};
            }
        }
    m->input = add_conv(pt, "blocks.input", m->C, d->n_hid, 7, m->S);
}

/* ================================ alloc ================================ */

static size_t conv_scratch(const dalle_conv *c, int max_batch) {
    if (c->w < 0 || c->k == 1) return 0; /* pointwise convs run without scratch (nb = 1) */
    size_t s2 = (size_t)c->side * c->side, nb = (DALLE_CONV_COLS + s2 - 1) / s2;
    if (nb > (size_t)max_batch) nb = (size_t)max_batch;
    return conv2d_scratch_size((int)nb, c->cin, c->side, c->side, c->cout, c->k, 1, c->k / 2);
}

/* per-image floats: feature maps (fa, fb, ft), hidden maps (h1, h2), scratch for max_batch */
static void sizes(const dalle_model *m, int max_batch, size_t *feat, size_t *hid, size_t *scratch) {
    size_t f = (size_t)m->d.n_hid * m->S * m->S, hd = 0, sc = conv_scratch(&m->input, max_batch);
    for (int i = 0; i < m->G * m->nb; i++) {
        const dalle_block *b = &m->blk[i];
        size_t s2 = (size_t)b->side * b->side, c = b->cin > b->cout ? b->cin : b->cout;
        if (c * s2 > f) f = c * s2;
        if ((size_t)b->hid * s2 > hd) hd = (size_t)b->hid * s2;
        const dalle_conv *cs[3] = {&b->c1, &b->c2, &b->c3};
        for (int k = 0; k < 3; k++) {
            size_t s = conv_scratch(cs[k], max_batch);
            if (s > sc) sc = s;
        }
    }
    *feat = f;
    *hid = hd;
    *scratch = sc;
}

static size_t arena_floats(const dalle_model *m, int B, size_t feat, size_t hid) {
    size_t Bs = (size_t)B;
    return Bs * m->C * m->S * m->S + 3 * Bs * feat + 2 * Bs * hid + Bs * m->P * m->width[m->G - 1] +
           Bs * m->P * m->V;
}

size_t dalle_activation_bytes(const dalle_model *m, int max_batch) {
    size_t feat, hid, sc;
    sizes(m, max_batch, &feat, &hid, &sc);
    return (arena_floats(m, max_batch, feat, hid) + sc) * sizeof(float);
}

void dalle_alloc(dalle_model *m, int max_batch) {
    if (max_batch < 1) beit_fatal(BEIT_EXIT_FAILURE, "dalle_alloc: max_batch %d", max_batch);
    if (m->arena) beit_fatal(BEIT_EXIT_FAILURE, "dalle_alloc called twice");
    sizes(m, max_batch, &m->feat_n, &m->hid_n, &m->scratch_n);
    size_t B = (size_t)max_batch;
    float *a = m->arena = xalloc_floats(arena_floats(m, max_batch, m->feat_n, m->hid_n));
    m->xin = a, a += B * m->C * m->S * m->S;
    m->fa = a, a += B * m->feat_n;
    m->fb = a, a += B * m->feat_n;
    m->ft = a, a += B * m->feat_n;
    m->h1 = a, a += B * m->hid_n;
    m->h2 = a, a += B * m->hid_n;
    m->rows = a, a += B * m->P * m->width[m->G - 1];
    m->logits = a;
    m->scratch = m->scratch_n ? xalloc_floats(m->scratch_n) : NULL;
    m->max_batch = max_batch;
}

void dalle_free(dalle_model *m) {
    free(m->arena);
    free(m->scratch);
    free(m->blk);
    memset(m, 0, sizeof *m);
}

static double conv_flops(const dalle_conv *c) {
    return c->w < 0 ? 0.0 : 2.0 * c->cin * c->cout * c->k * c->k * (double)c->side * c->side;
}

double dalle_flops_per_image(const dalle_model *m) {
    double f = conv_flops(&m->input) + conv_flops(&m->output);
    for (int i = 0; i < m->G * m->nb; i++) {
        const dalle_block *b = &m->blk[i];
        f += conv_flops(&b->id) + conv_flops(&b->c1) + conv_flops(&b->c2) + conv_flops(&b->c3) + conv_flops(&b->c4);
    }
    return f;
}

/* ================================ forward ================================ */

static void conv_fwd(dalle_model *m, const param_table *pt, const dalle_conv *c, float *out, const float *inp, int B) {
    conv2d_forward(out, inp, params_data(pt, c->w), params_data(pt, c->b), m->scratch, m->scratch_n, B, c->cin,
                   c->side, c->side, c->cout, c->k, 1, c->k / 2);
}

static void relu_inplace(float *x, size_t n) { relu_forward(x, x, n); }

/* y[B,cout,s,s] = id_path(x) + post_gain * res_path(x), x[B,cin,s,s]; uses ft, h1, h2 */
static void block_forward(dalle_model *m, const param_table *pt, const dalle_block *b, float *y, const float *x,
                          int B) {
    const size_t s2 = (size_t)b->side * b->side, nh = (size_t)B * b->hid * s2, nout = (size_t)B * b->cout * s2;
    relu_forward(m->ft, x, (size_t)B * b->cin * s2);
    conv_fwd(m, pt, &b->c1, m->h1, m->ft, B);
    relu_inplace(m->h1, nh);
    conv_fwd(m, pt, &b->c2, m->h2, m->h1, B);
    relu_inplace(m->h2, nh);
    conv_fwd(m, pt, &b->c3, m->h1, m->h2, B);
    relu_inplace(m->h1, nh);
    conv_fwd(m, pt, &b->c4, m->ft, m->h1, B); /* the residual (relu(x) is no longer needed) */
    if (b->id.w >= 0) conv_fwd(m, pt, &b->id, y, x, B);
    else memcpy(y, x, nout * sizeof(float));
    const float g = m->post_gain;
    for (size_t i = 0; i < nout; i++) y[i] += g * m->ft[i];
}

void dalle_encode(dalle_model *m, const param_table *pt, const float *x, int B, int32_t *tokens, float *logits_out) {
    if (!m->arena) beit_fatal(BEIT_EXIT_FAILURE, "dalle_encode before dalle_alloc");
    if (B < 0 || B > m->max_batch)
        beit_fatal(BEIT_EXIT_FAILURE, "dalle_encode: batch %d outside [0, max_batch %d]", B, m->max_batch);
    if (B == 0) return;
    const int G = m->G, nb = m->nb;
    const size_t nx = (size_t)B * m->C * m->S * m->S;
    /* map_pixels: (1 - 2 eps) x + eps, eps = 0.1, as two float32 operations like torch */
    for (size_t i = 0; i < nx; i++) {
        float t = 0.8f * x[i];
        m->xin[i] = t + 0.1f;
    }
    conv_fwd(m, pt, &m->input, m->fa, m->xin, B);
    float *cur = m->fa, *nxt = m->fb;
    for (int g = 0; g < G; g++) {
        for (int i = 0; i < nb; i++) {
            block_forward(m, pt, &m->blk[g * nb + i], nxt, cur, B);
            float *t = cur;
            cur = nxt;
            nxt = t;
        }
        if (g + 1 < G) {
            maxpool2d_forward(nxt, NULL, cur, B, m->width[g], m->side[g], m->side[g], 2, 2);
            float *t = cur;
            cur = nxt;
            nxt = t;
        }
    }
    /* blocks.output: relu, then a 1x1 conv as one gemm on token-major rows */
    const int w = m->width[G - 1], V = m->V, P = m->P;
    const size_t R = (size_t)B * P, nf = R * w;
    relu_inplace(cur, nf);
    transpose_batched(m->rows, cur, B, w, P); /* [B,w,P] -> [B*P,w] */
    PROF_BEGIN(PROF_CONV);
    PROF_FLOPS(PROF_CONV, 2.0 * V * w * (double)R);
    const float *bias = params_data(pt, m->output.b);
    for (size_t r = 0; r < R; r++) memcpy(m->logits + r * V, bias, (size_t)V * sizeof(float));
    gemm(&gemm_fp32, GEMM_N, GEMM_T, (int)R, V, w, 1.0f, m->rows, w, params_data(pt, m->output.w), w, 1.0f, m->logits,
         V);
    PROF_END(PROF_CONV);
    /* argmax per position: the maximum by vectors, then its first index (torch.argmax keeps
     * the first maximum); a row of NaNs gives 0 */
    for (size_t r = 0; r < R; r++) {
        const float *l = m->logits + r * V;
        float mx = vm_max(l, (size_t)V);
        int v = 0;
        while (v < V && !(l[v] == mx)) v++;
        tokens[r] = v < V ? v : 0;
    }
    if (logits_out) /* [B, V, P] as torch's */
        for (int b = 0; b < B; b++)
            for (int v = 0; v < V; v++)
                for (int p = 0; p < P; p++)
                    logits_out[((size_t)b * V + v) * P + p] = m->logits[((size_t)b * P + p) * V + v];
}
