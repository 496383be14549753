/* dvae_setup.c: the dVAE's parameters and memory (include/beit/dvae.h): dvae_build registers
 * the parameter tensors, dvae_init draws their initial values, dvae_alloc lays out the
 * activations, the conv scratch and the bias-gradient accumulator for a maximum batch.
 * The passes over a batch (forward, backward, encode / decode) are in dvae.c. */
#include "beit/dvae.h"

#include "beit/conv.h"
#include "beit/error.h"
#include "beit/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Target columns of one im2col sgemm: a conv on maps smaller than this batches
 * ceil(DVAE_CONV_COLS / (side*side)) images per sgemm (small maps: the whole batch), one
 * on larger maps goes image by image, so the scratch stays about
 * (Cin*9 + Cout) * max(side^2, DVAE_CONV_COLS) floats whatever the batch. */
#define DVAE_CONV_COLS 4096

/* ================================ build ================================ */

static int add_tensor(param_table *pt, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d,
                      int decay) {
    int64_t shape[4] = {a, b, c, d};
    return params_add(pt, name, ndim, shape, decay, -1);
}

/* adds <prefix>.weight [cout,cin,k,k] and <prefix>.bias [cout] */
static dvae_conv add_conv(param_table *pt, const char *prefix, int cin, int cout, int k, int side) {
    dvae_conv c = {.cin = cin, .cout = cout, .k = k, .side = side};
    char name[4 * PARAM_NAME_MAX]; /* params_add rejects names that do not fit the table */
    snprintf(name, sizeof name, "%s.weight", prefix);
    c.w = add_tensor(pt, name, 4, cout, cin, k, k, 1);
    snprintf(name, sizeof name, "%s.bias", prefix);
    c.b = add_tensor(pt, name, 1, cout, 0, 0, 0, 0);
    return c;
}

static void add_block(param_table *pt, dvae_block *blk, const char *prefix, int cin, int cout, int side) {
    char name[2 * PARAM_NAME_MAX];
    blk->cin = cin;
    blk->cout = cout;
    blk->side = side;
    snprintf(name, sizeof name, "%s.conv2", prefix);
    blk->conv2 = add_conv(pt, name, cout, cout, 3, side);
    snprintf(name, sizeof name, "%s.conv1", prefix);
    blk->conv1 = add_conv(pt, name, cin, cout, 3, side);
    if (cin != cout) {
        snprintf(name, sizeof name, "%s.idconv", prefix);
        blk->idconv = add_conv(pt, name, cin, cout, 1, side);
    } else {
        blk->idconv = (dvae_conv){.w = -1, .b = -1, .cin = cin, .cout = cout, .k = 1, .side = side};
    }
}

void dvae_build(dvae_model *m, param_table *pt, const dvae_dims *d) {
    memset(m, 0, sizeof *m);
    m->d = *d;
    int G = d->ngroups, nb = d->blocks;
    if (G < 1 || G > DVAE_MAX_GROUPS)
        beit_fatal_user(BEIT_EXIT_USAGE, "dvae: %d groups (len(widths)); expected 1..%d", G, DVAE_MAX_GROUPS);
    for (int g = 0; g < G; g++)
        if (d->widths[g] < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dvae: widths[%d] = %d; expected >= 1", g, d->widths[g]);
    if (d->in_chans < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dvae: in_chans = %d; expected >= 1", d->in_chans);
    if (d->vocab < 2) beit_fatal_user(BEIT_EXIT_USAGE, "dvae: vocab = %d; expected >= 2", d->vocab);
    if (nb < 1) beit_fatal_user(BEIT_EXIT_USAGE, "dvae: blocks = %d; expected >= 1", nb);
    if (d->recon != DVAE_MSE && d->recon != DVAE_LOGIT_LAPLACE)
        beit_fatal_user(BEIT_EXIT_USAGE, "dvae: unknown reconstruction loss %d", d->recon);
    int down = 1 << (G - 1);
    if (d->image_size < down || d->image_size % down)
        beit_fatal_user(BEIT_EXIT_USAGE, "dvae: image_size %d is not a positive multiple of 2^(groups-1) = %d",
                        d->image_size, down);
    m->G = G;
    m->S = d->image_size;
    m->h = d->image_size / down;
    m->P = m->h * m->h;
    m->V = d->vocab;
    m->C = d->in_chans;
    m->Cout = d->in_chans * (d->recon == DVAE_LOGIT_LAPLACE ? 2 : 1);
    m->enc = xcalloc((size_t)G * nb, sizeof *m->enc);
    m->dec = xcalloc((size_t)G * nb, sizeof *m->dec);
    const int *w = d->widths;
    char name[PARAM_NAME_MAX];

    /* gradient-final order: decoder output end first, encoder stem last */
    m->dec_out = add_conv(pt, "decoder.out", w[0], m->Cout, 3, m->S);
    for (int i = G - 1; i >= 0; i--) {
        int g = G - 1 - i, side = m->S >> g;
        int cin0 = i == 0 ? w[G - 1] : w[g + 1];
        for (int b = nb - 1; b >= 0; b--) {
            snprintf(name, sizeof name, "decoder.groups.%d.%d", i, b);
            add_block(pt, &m->dec[i * nb + b], name, b == 0 ? cin0 : w[g], w[g], side);
        }
    }
    m->dec_stem = add_conv(pt, "decoder.stem", m->V, w[G - 1], 1, m->h);
    m->enc_out = add_conv(pt, "encoder.out", w[G - 1], m->V, 1, m->h);
    for (int g = G - 1; g >= 0; g--) {
        int side = m->S >> g, cin0 = g == 0 ? w[0] : w[g - 1];
        for (int b = nb - 1; b >= 0; b--) {
            snprintf(name, sizeof name, "encoder.groups.%d.%d", g, b);
            add_block(pt, &m->enc[g * nb + b], name, b == 0 ? cin0 : w[g], w[g], side);
        }
    }
    m->enc_stem = add_conv(pt, "encoder.stem", m->C, w[0], 3, m->S);
}

/* ================================ init ================================ */

static void init_conv(const dvae_conv *c, param_table *pt, uint64_t seed) {
    if (c->w < 0) return;
    /* kaiming_uniform_(a=sqrt 5): gain sqrt(2/6) * sqrt(3/fan_in) = 1/sqrt(fan_in); the bias
     * uses the same bound (nn.Conv2d.reset_parameters) */
    float bound = (float)(1.0 / sqrt((double)c->cin * c->k * c->k));
    int idx[2] = {c->w, c->b};
    for (int t = 0; t < 2; t++) {
        rng_t r = rng_stream(seed, RNG_INIT, (uint64_t)idx[t], 0);
        float *p = params_data(pt, idx[t]);
        size_t n = pt->t[idx[t]].numel;
        for (size_t i = 0; i < n; i++) p[i] = (2.0f * rng_uniform(&r) - 1.0f) * bound;
    }
}

void dvae_init(dvae_model *m, param_table *pt, uint64_t seed) {
    if (!pt->data) beit_fatal(BEIT_EXIT_FAILURE, "dvae_init before params_alloc");
    int nblk = m->G * m->d.blocks;
    init_conv(&m->enc_stem, pt, seed);
    init_conv(&m->enc_out, pt, seed);
    init_conv(&m->dec_stem, pt, seed);
    if (m->d.codebook_unit) { /* U(+-1/sqrt(V)) -> U(+-1): the codebook at embedding scale */
        float *w = params_data(pt, m->dec_stem.w), f = sqrtf((float)m->V);
        for (size_t i = 0; i < pt->t[m->dec_stem.w].numel; i++) w[i] *= f;
    }
    init_conv(&m->dec_out, pt, seed);
    for (int i = 0; i < nblk; i++) {
        dvae_block *bs[2] = {&m->enc[i], &m->dec[i]};
        for (int k = 0; k < 2; k++) {
            init_conv(&bs[k]->conv1, pt, seed);
            init_conv(&bs[k]->conv2, pt, seed);
            init_conv(&bs[k]->idconv, pt, seed);
        }
    }
}

/* ================================ alloc ================================ */

/* Bump allocator run twice: once with base NULL to count, once to hand out pointers. */
typedef struct {
    float *base;
    int *ibase;
    size_t used, iused;
} arena;

static float *take(arena *a, size_t n) {
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(size_t)15; /* keep every buffer 64-byte aligned */
    return p;
}

static int *itake(arena *a, size_t n) {
    int *p = a->ibase ? a->ibase + a->iused : NULL;
    a->iused += (n + 15) & ~(size_t)15;
    return p;
}

/* the largest per-image feature map (floats) outside the V-wide tensors */
static size_t max_feature(const dvae_model *m) {
    size_t mx = (size_t)m->Cout * m->S * m->S;
    if ((size_t)m->C * m->S * m->S > mx) mx = (size_t)m->C * m->S * m->S;
    int nblk = m->G * m->d.blocks;
    for (int i = 0; i < nblk; i++) {
        const dvae_block *bs[2] = {&m->enc[i], &m->dec[i]};
        for (int k = 0; k < 2; k++) {
            size_t s2 = (size_t)bs[k]->side * bs[k]->side;
            size_t c = bs[k]->cin > bs[k]->cout ? bs[k]->cin : bs[k]->cout;
            if (c * s2 > mx) mx = c * s2;
        }
    }
    /* the decoder's upsampled maps (also the next block's input, listed for clarity) */
    for (int i = 1; i < m->G; i++) {
        int g = m->G - 1 - i;
        size_t s = (size_t)(m->S >> g);
        size_t c = (size_t)m->d.widths[g + 1];
        if (c * s * s > mx) mx = c * s * s;
    }
    return mx;
}

static void layout(dvae_model *m, arena *a, int B) {
    size_t SS = (size_t)m->S * m->S, VP = (size_t)m->V * m->P, Bs = (size_t)B;
    const int *w = m->d.widths;
    int G = m->G, nb = m->d.blocks;
    m->x = take(a, Bs * m->C * SS);
    m->xin = take(a, Bs * m->C * SS);
    m->e_stem = take(a, Bs * w[0] * SS);
    for (int g = 0; g < G; g++) {
        size_t s2 = (size_t)(m->S >> g) * (m->S >> g);
        if (g > 0) {
            m->pool[g] = take(a, Bs * w[g - 1] * s2);
            m->pool_idx[g] = itake(a, Bs * w[g - 1] * s2);
        }
        for (int b = 0; b < nb; b++) {
            dvae_block *blk = &m->enc[g * nb + b];
            blk->a1 = take(a, Bs * blk->cin * s2);
            blk->a2 = take(a, Bs * blk->cout * s2);
            blk->out = take(a, Bs * blk->cout * s2);
        }
    }
    m->e_aout = take(a, Bs * w[G - 1] * m->P);
    m->ea_rows = take(a, Bs * w[G - 1] * m->P);
    m->ds_rows = take(a, Bs * w[G - 1] * m->P);
    m->logits = take(a, Bs * VP);
    m->z = take(a, Bs * VP);
    m->dz = take(a, Bs * VP);
    m->lse = take(a, Bs * m->P);
    m->negent = take(a, Bs * m->P);
    m->d_stem = take(a, Bs * w[G - 1] * m->P);
    for (int i = 0; i < G; i++) {
        int g = G - 1 - i;
        size_t s2 = (size_t)(m->S >> g) * (m->S >> g);
        if (i > 0) m->up[i] = take(a, Bs * w[g + 1] * s2);
        for (int b = 0; b < nb; b++) {
            dvae_block *blk = &m->dec[i * nb + b];
            blk->a1 = take(a, Bs * blk->cin * s2);
            blk->a2 = take(a, Bs * blk->cout * s2);
            blk->out = take(a, Bs * blk->cout * s2);
        }
    }
    m->d_aout = take(a, Bs * w[0] * SS);
    m->out = take(a, Bs * m->Cout * SS);
    m->gbuf_n = Bs * max_feature(m);
    for (int k = 0; k < 3; k++) m->gbuf[k] = take(a, m->gbuf_n);
}

static size_t conv_scratch(const dvae_conv *c, int max_batch) {
    if (c->w < 0 || c->k == 1) return 0; /* pointwise convs run without scratch (nb = 1) */
    size_t s2 = (size_t)c->side * c->side;
    size_t nb = (DVAE_CONV_COLS + s2 - 1) / s2;
    if (nb > (size_t)max_batch) nb = (size_t)max_batch;
    if (nb < 1) nb = 1;
    int pad = c->k / 2;
    return conv2d_scratch_size((int)nb, c->cin, c->side, c->side, c->cout, c->k, 1, pad);
}

/* The scratch serves every conv2d call: 3x3 convs get their planned images per sgemm
 * (DVAE_CONV_COLS); the 1x1 idconvs need none for one image and batch as many images as the
 * buffer happens to hold (conv2d picks nb by size). encoder.out and decoder.stem are not
 * conv2d calls: one sgemm on the token rows each (enc_out_forward, dec_stem_forward). */
static size_t scratch_floats(const dvae_model *m, int max_batch) {
    size_t mx = 0;
    const dvae_conv *top[2] = {&m->enc_stem, &m->dec_out};
    for (int k = 0; k < 2; k++) {
        size_t s = conv_scratch(top[k], max_batch);
        if (s > mx) mx = s;
    }
    int nblk = m->G * m->d.blocks;
    for (int i = 0; i < nblk; i++) {
        const dvae_block *bs[2] = {&m->enc[i], &m->dec[i]};
        for (int k = 0; k < 2; k++) {
            const dvae_conv *cs[3] = {&bs[k]->conv1, &bs[k]->conv2, &bs[k]->idconv};
            for (int j = 0; j < 3; j++) {
                size_t s = conv_scratch(cs[j], max_batch);
                if (s > mx) mx = s;
            }
        }
    }
    return mx;
}

/* per-column sums of a [rows, V] or [rows, w] matrix (bias gradients) */
static size_t acc_doubles(const dvae_model *m) {
    size_t w = (size_t)m->d.widths[m->G - 1];
    return (size_t)m->V > w ? (size_t)m->V : w;
}

size_t dvae_activation_bytes(const dvae_model *m, int max_batch) {
    dvae_model tmp = *m; /* layout() writes pointers into blocks: count on copies */
    int nblk = m->G * m->d.blocks;
    tmp.enc = xmalloc((size_t)nblk * sizeof *tmp.enc);
    tmp.dec = xmalloc((size_t)nblk * sizeof *tmp.dec);
    memcpy(tmp.enc, m->enc, (size_t)nblk * sizeof *tmp.enc);
    memcpy(tmp.dec, m->dec, (size_t)nblk * sizeof *tmp.dec);
    arena a = {0};
    layout(&tmp, &a, max_batch);
    free(tmp.enc);
    free(tmp.dec);
    return (a.used + scratch_floats(m, max_batch)) * sizeof(float) + a.iused * sizeof(int) +
           acc_doubles(m) * sizeof(double);
}

void dvae_alloc(dvae_model *m, int max_batch) {
    if (max_batch < 1) beit_fatal(BEIT_EXIT_FAILURE, "dvae_alloc: max_batch %d", max_batch);
    if (m->arena) beit_fatal(BEIT_EXIT_FAILURE, "dvae_alloc called twice");
    arena a = {0};
    layout(m, &a, max_batch);
    a.base = xalloc_floats(a.used);
    a.ibase = xmalloc((a.iused ? a.iused : 1) * sizeof(int));
    size_t fl = a.used, il = a.iused;
    a.used = a.iused = 0;
    layout(m, &a, max_batch);
    if (a.used != fl || a.iused != il) beit_fatal(BEIT_EXIT_FAILURE, "dvae_alloc: layout mismatch");
    m->arena = a.base;
    m->iarena = a.ibase;
    m->acc = xmalloc(acc_doubles(m) * sizeof(double));
    m->scratch_n = scratch_floats(m, max_batch);
    m->scratch = m->scratch_n ? xalloc_floats(m->scratch_n) : NULL;
    m->max_batch = max_batch;
    m->fwd_B = 0;
}

void dvae_free(dvae_model *m) {
    free(m->arena);
    free(m->iarena);
    free(m->acc);
    free(m->scratch);
    free(m->enc);
    free(m->dec);
    memset(m, 0, sizeof *m);
}
