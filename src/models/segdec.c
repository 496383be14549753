/* segdec.c: the light segmentation decoder on ViT block outputs, its per-pixel cross-entropy
 * and the segmentation metric. Model, table layout and init are documented in
 * include/beit/segdec.h; the PyTorch twin is tools/torchref/segdec.py.
 *
 * Shapes: B images, T = Np + 1 tokens (Np = gh*gw), D tap channels, E decoder channels,
 * NC classes, output map S x Sw = gh*P x gw*P, HW = S*Sw. Token-major buffers are [B,Np,C],
 * image buffers NCHW [B,C,H,W]. Per-tap slabs: tap i's slice starts at i * (max_batch * size).
 */
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/segdec.h"

#include "beit/conv.h"
#include "beit/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* building the table                                                                         */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* decay 0 for 1-D tensors and *.bias, 1 otherwise */
static int add(param_table *pt, const char *name, int ndim, const int64_t *shape, int layer_id) {
    int decay = !(ndim == 1 || ends_with(name, ".bias"));
    return params_add(pt, name, ndim, shape, decay, layer_id);
}
static int add1(param_table *pt, const char *name, int64_t a, int layer_id) {
    int64_t sh[1] = {a};
    return add(pt, name, 1, sh, layer_id);
}
static int add2(param_table *pt, const char *name, int64_t a, int64_t b, int layer_id) {
    int64_t sh[2] = {a, b};
    return add(pt, name, 2, sh, layer_id);
}
static int add4(param_table *pt, const char *name, int64_t a, int64_t b, int64_t c, int64_t d, int layer_id) {
    int64_t sh[4] = {a, b, c, d};
    return add(pt, name, 4, sh, layer_id);
}

static void check_dims(const segdec_dims *d) {
#define REQUIRE(cond, ...) \
    do { \
        if (!(cond)) beit_fatal_user(BEIT_EXIT_USAGE, "segmentation decoder: " __VA_ARGS__); \
    } while (0)
    REQUIRE(d->ntaps >= 1 && d->ntaps <= SEGDEC_MAX_TAPS, "ntaps %d not in [1, %d]", d->ntaps, SEGDEC_MAX_TAPS);
    REQUIRE(d->D >= 1 && d->E >= 1, "D %d and E %d must be >= 1", d->D, d->E);
    REQUIRE(d->gh >= 1 && d->gw >= 1 && d->patch >= 1, "grid %dx%d and patch %d must be >= 1", d->gh, d->gw,
            d->patch);
    REQUIRE((int64_t)d->gh * d->patch <= 1 << 15 && (int64_t)d->gw * d->patch <= 1 << 15,
            "output map %dx%d too large", d->gh * d->patch, d->gw * d->patch);
    REQUIRE(d->ncls >= 1 && d->ncls <= 256, "ncls %d not in [1, 256] (labels are uint8)", d->ncls);
    REQUIRE(d->ln_eps > 0, "ln_eps %g must be > 0", (double)d->ln_eps);
#undef REQUIRE
}

void segdec_build(segdec *s, param_table *pt, const segdec_dims *d, int layer_id) {
    check_dims(d);
    memset(s, 0, sizeof *s);
    s->d = *d;
    s->S = d->gh * d->patch;
    s->Sw = d->gw * d->patch;
    s->Np = d->gh * d->gw;
    s->T = s->Np + 1;
    const int E = d->E, D = d->D, P = d->patch;
    s->p_cls_w = add4(pt, "decoder.cls.weight", d->ncls, E, 1, 1, layer_id);
    s->p_cls_b = add1(pt, "decoder.cls.bias", d->ncls, layer_id);
    s->p_conv_w = add4(pt, "decoder.conv.weight", E, E, 3, 3, layer_id);
    s->p_conv_b = add1(pt, "decoder.conv.bias", E, layer_id);
    s->p_up_w = add4(pt, "decoder.up.weight", E, E, P, P, layer_id);
    s->p_up_b = add1(pt, "decoder.up.bias", E, layer_id);
    char name[PARAM_NAME_MAX];
    for (int i = d->ntaps - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "decoder.taps.%d.proj.weight", i);
        s->p_proj_w[i] = add2(pt, name, E, D, layer_id);
        snprintf(name, sizeof name, "decoder.taps.%d.proj.bias", i);
        s->p_proj_b[i] = add1(pt, name, E, layer_id);
        snprintf(name, sizeof name, "decoder.taps.%d.norm.weight", i);
        s->p_norm_w[i] = add1(pt, name, D, layer_id);
        snprintf(name, sizeof name, "decoder.taps.%d.norm.bias", i);
        s->p_norm_b[i] = add1(pt, name, D, layer_id);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* init                                                                                       */

static void fill_const(const param_table *pt, int i, float v) {
    float *x = params_data(pt, i);
    for (size_t k = 0; k < pt->t[i].numel; k++) x[k] = v;
}

/* trunc = 1: normal(0, std) cut at +-2 std (rng_trunc_normal); 0: plain normal(0, std) */
static void fill_normal(const param_table *pt, int i, uint64_t seed, float std, int trunc) {
    rng_t r = rng_init_stream(seed, pt->t[i].name);
    float *x = params_data(pt, i);
    for (size_t k = 0; k < pt->t[i].numel; k++) x[k] = trunc ? rng_trunc_normal(&r, std) : rng_normal(&r) * std;
}

void segdec_init(const segdec *s, param_table *pt, uint64_t seed) {
    if (!pt->data) beit_fatal(BEIT_EXIT_FAILURE, "segdec_init: parameters not allocated");
    const int E = s->d.E;
    fill_normal(pt, s->p_cls_w, seed, (float)sqrt(2.0 / E), 0);
    fill_const(pt, s->p_cls_b, 0.0f);
    fill_normal(pt, s->p_conv_w, seed, (float)sqrt(2.0 / (9.0 * E)), 0);
    fill_const(pt, s->p_conv_b, 0.0f);
    fill_normal(pt, s->p_up_w, seed, (float)sqrt(2.0 / E), 0);
    fill_const(pt, s->p_up_b, 0.0f);
    for (int i = 0; i < s->d.ntaps; i++) {
        fill_normal(pt, s->p_proj_w[i], seed, 0.02f, 1);
        fill_const(pt, s->p_proj_b[i], 0.0f);
        fill_const(pt, s->p_norm_w[i], 1.0f);
        fill_const(pt, s->p_norm_b[i], 0.0f);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* activations                                                                                */

/* conv scratch for nb images per sgemm: the largest of the three convolutions' needs */
static size_t scratch_need(const segdec *s, int nb) {
    const int E = s->d.E, NC = s->d.ncls, P = s->d.patch;
    size_t a = conv_transpose2d_scratch_size(nb, E, s->d.gh, s->d.gw, E, P, P, 0);
    size_t b = conv2d_scratch_size(nb, E, s->S, s->Sw, E, 3, 1, 1);
    size_t c = conv2d_scratch_size(nb, E, s->S, s->Sw, NC, 1, 1, 0);
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

void segdec_alloc(segdec *s, int max_batch) {
    if (max_batch < 1) beit_fatal(BEIT_EXIT_FAILURE, "segdec_alloc: max_batch %d < 1", max_batch);
    segdec_free(s);
    const size_t mb = (size_t)max_batch, nt = (size_t)s->d.ntaps, Np = (size_t)s->Np, D = (size_t)s->d.D,
                 E = (size_t)s->d.E, HW = (size_t)s->S * s->Sw, NC = (size_t)s->d.ncls;
    s->x = xalloc_floats(nt * mb * Np * D);
    s->u = xalloc_floats(nt * mb * Np * D);
    s->mean = xalloc_floats(nt * mb * Np);
    s->rstd = xalloc_floats(nt * mb * Np);
    s->tok = xalloc_floats(mb * Np * E);
    s->du = xalloc_floats(mb * Np * D);
    s->simg = xalloc_floats(mb * E * Np);
    s->dsimg = xalloc_floats(mb * E * Np);
    s->h1 = xalloc_floats(mb * E * HW);
    s->h2 = xalloc_floats(mb * E * HW);
    s->g1 = xalloc_floats(mb * E * HW);
    s->g2 = xalloc_floats(mb * E * HW);
    s->logits = xalloc_floats(mb * NC * HW);
    /* images per sgemm: as many as fit in SEGDEC_SCRATCH_FLOATS, at least one */
    int nb = max_batch;
    while (nb > 1 && scratch_need(s, nb) > SEGDEC_SCRATCH_FLOATS) nb--;
    s->scratch_n = scratch_need(s, nb);
    s->scratch = s->scratch_n ? xalloc_floats(s->scratch_n) : NULL;
    s->max_batch = max_batch;
    s->B = 0;
}

void segdec_free(segdec *s) {
    float **bufs[] = {&s->x,  &s->u,  &s->mean, &s->rstd, &s->tok, &s->du,     &s->simg,
                      &s->dsimg, &s->h1, &s->h2, &s->g1,  &s->g2,  &s->logits, &s->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    s->scratch_n = 0;
    s->max_batch = 0;
    s->B = 0;
}

const float *segdec_logits(const segdec *s) { return s->logits; }

/* ---------------------------------------------------------------------------------------- */
/* forward / backward                                                                         */

void segdec_forward(segdec *s, const param_table *pt, const float *const *taps, int B) {
    if (B < 1 || B > s->max_batch)
        beit_fatal(BEIT_EXIT_FAILURE, "segdec_forward: batch %d not in [1, max_batch %d]", B, s->max_batch);
    const int nt = s->d.ntaps, Np = s->Np, T = s->T, D = s->d.D, E = s->d.E, NC = s->d.ncls, P = s->d.patch;
    const size_t mb = (size_t)s->max_batch, N = (size_t)B * Np;
    float *stok = s->dsimg; /* s token-major (dsimg is free until backward), re-laid into simg */
    memset(stok, 0, N * E * sizeof(float));
    for (int i = 0; i < nt; i++) {
        float *x = s->x + i * mb * Np * D, *u = s->u + i * mb * Np * D;
        float *mean = s->mean + i * mb * Np, *rstd = s->rstd + i * mb * Np;
        for (int b = 0; b < B; b++)
            memcpy(x + (size_t)b * Np * D, taps[i] + ((size_t)b * T + 1) * D, (size_t)Np * D * sizeof(float));
        layernorm_forward(u, mean, rstd, x, params_data(pt, s->p_norm_w[i]), params_data(pt, s->p_norm_b[i]),
                          (int)N, D, s->d.ln_eps);
        linear_forward(s->tok, u, params_data(pt, s->p_proj_w[i]), params_data(pt, s->p_proj_b[i]), (int)N, D, E);
        for (size_t k = 0; k < N * E; k++) stok[k] += s->tok[k];
    }
    transpose_batched(s->simg, stok, B, Np, E); /* [B,Np,E] -> [B,E,Np] */
    const size_t HW = (size_t)s->S * s->Sw;
    conv_transpose2d_forward(s->h1, s->simg, params_data(pt, s->p_up_w), params_data(pt, s->p_up_b), s->scratch,
                             s->scratch_n, B, E, s->d.gh, s->d.gw, E, P, P, 0);
    relu_forward(s->h1, s->h1, (size_t)B * E * HW);
    conv2d_forward(s->h2, s->h1, params_data(pt, s->p_conv_w), params_data(pt, s->p_conv_b), s->scratch,
                   s->scratch_n, B, E, s->S, s->Sw, E, 3, 1, 1);
    relu_forward(s->h2, s->h2, (size_t)B * E * HW);
    conv2d_forward(s->logits, s->h2, params_data(pt, s->p_cls_w), params_data(pt, s->p_cls_b), s->scratch,
                   s->scratch_n, B, E, s->S, s->Sw, NC, 1, 1, 0);
    s->B = B;
}

void segdec_backward(segdec *s, param_table *pt, const float *dlogits, float *const *dtaps, int B) {
    if (B != s->B || B < 1)
        beit_fatal(BEIT_EXIT_FAILURE, "segdec_backward: batch %d != the last forward's %d", B, s->B);
    const int nt = s->d.ntaps, Np = s->Np, T = s->T, D = s->d.D, E = s->d.E, NC = s->d.ncls, P = s->d.patch;
    const size_t mb = (size_t)s->max_batch, N = (size_t)B * Np, HW = (size_t)s->S * s->Sw,
                 nimg = (size_t)B * E * HW;
    /* cls: g2 = d h2 */
    memset(s->g2, 0, nimg * sizeof(float));
    conv2d_backward(s->g2, params_grad(pt, s->p_cls_w), params_grad(pt, s->p_cls_b), dlogits, s->h2,
                    params_data(pt, s->p_cls_w), s->scratch, s->scratch_n, B, E, s->S, s->Sw, NC, 1, 1, 0);
    /* ReLU (h2 > 0 iff its input > 0): g1 = d(pre-ReLU h2) */
    memset(s->g1, 0, nimg * sizeof(float));
    relu_backward(s->g1, s->g2, s->h2, nimg);
    /* conv: g2 = d h1 */
    memset(s->g2, 0, nimg * sizeof(float));
    conv2d_backward(s->g2, params_grad(pt, s->p_conv_w), params_grad(pt, s->p_conv_b), s->g1, s->h1,
                    params_data(pt, s->p_conv_w), s->scratch, s->scratch_n, B, E, s->S, s->Sw, E, 3, 1, 1);
    memset(s->g1, 0, nimg * sizeof(float));
    relu_backward(s->g1, s->g2, s->h1, nimg);
    /* up: dsimg = d s (image layout), then ds token-major into tok */
    memset(s->dsimg, 0, N * E * sizeof(float));
    conv_transpose2d_backward(s->dsimg, params_grad(pt, s->p_up_w), params_grad(pt, s->p_up_b), s->g1, s->simg,
                              params_data(pt, s->p_up_w), s->scratch, s->scratch_n, B, E, s->d.gh, s->d.gw, E,
                              P, P, 0);
    transpose_batched(s->tok, s->dsimg, B, E, Np); /* [B,E,Np] -> [B,Np,E] */
    /* every tap's z_i receives ds */
    for (int i = 0; i < nt; i++) {
        const float *x = s->x + i * mb * Np * D, *u = s->u + i * mb * Np * D;
        const float *mean = s->mean + i * mb * Np, *rstd = s->rstd + i * mb * Np;
        memset(s->du, 0, N * D * sizeof(float));
        linear_backward(s->du, params_grad(pt, s->p_proj_w[i]), params_grad(pt, s->p_proj_b[i]), s->tok, u,
                        params_data(pt, s->p_proj_w[i]), (int)N, D, E);
        float *dnw = params_grad(pt, s->p_norm_w[i]), *dnb = params_grad(pt, s->p_norm_b[i]);
        const float *nw = params_data(pt, s->p_norm_w[i]);
        float *dt = dtaps ? dtaps[i] : NULL;
        /* per image, so the input gradient lands directly in rows 1..T-1 of dtaps[i] */
        for (int b = 0; b < B; b++) {
            const size_t r0 = (size_t)b * Np;
            layernorm_backward(dt ? dt + ((size_t)b * T + 1) * D : NULL, dnw, dnb, s->du + r0 * D, x + r0 * D, nw,
                               mean + r0, rstd + r0, Np, D);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* loss and metric                                                                            */

static void check_label(uint8_t l, int ncls, const char *op, size_t pixel) {
    if (l >= ncls)
        beit_fatal(BEIT_EXIT_MISMATCH, "%s: label %d of pixel %zu is >= ncls=%d", op, (int)l, pixel, ncls);
}

double seg_ce_forward_backward(float *dlogits, const float *logits, const uint8_t *labels, int B, int ncls,
                               int HW, float scale) {
    const size_t hw = (size_t)HW;
    double total = 0;
    for (size_t b = 0; b < (size_t)B; b++) {
        const float *lg = logits + b * ncls * hw;
        float *dl = dlogits ? dlogits + b * ncls * hw : NULL;
        for (size_t p = 0; p < hw; p++) {
            const int t = labels[b * hw + p];
            check_label((uint8_t)t, ncls, "seg_ce_forward_backward", b * hw + p);
            double mx = lg[p];
            for (int c = 1; c < ncls; c++) mx = fmax(mx, (double)lg[c * hw + p]);
            double sum = 0;
            for (int c = 0; c < ncls; c++) sum += exp((double)lg[c * hw + p] - mx);
            const double lse = mx + log(sum);
            total += lse - (double)lg[t * hw + p];
            if (dl)
                for (int c = 0; c < ncls; c++)
                    dl[c * hw + p] = (float)(scale * (exp((double)lg[c * hw + p] - lse) - (c == t ? 1.0 : 0.0)));
        }
    }
    return total;
}

void seg_confusion_add(int64_t *conf, const float *logits, const uint8_t *labels, int B, int ncls, int HW) {
    const size_t hw = (size_t)HW;
    for (size_t b = 0; b < (size_t)B; b++) {
        const float *lg = logits + b * ncls * hw;
        for (size_t p = 0; p < hw; p++) {
            const int t = labels[b * hw + p];
            check_label((uint8_t)t, ncls, "seg_confusion_add", b * hw + p);
            int best = 0;
            float bv = lg[p];
            for (int c = 1; c < ncls; c++)
                if (lg[c * hw + p] > bv) {
                    bv = lg[c * hw + p];
                    best = c;
                }
            conf[(size_t)t * ncls + best]++;
        }
    }
}

seg_scores seg_scores_from_confusion(const int64_t *conf, int ncls) {
    seg_scores r = {NAN, NAN, 0};
    int64_t trace = 0, total = 0;
    double iou_sum = 0;
    for (int c = 0; c < ncls; c++) {
        int64_t tp = conf[(size_t)c * ncls + c], row = 0, col = 0;
        for (int k = 0; k < ncls; k++) {
            row += conf[(size_t)c * ncls + k]; /* TP + FN: pixels of class c */
            col += conf[(size_t)k * ncls + c]; /* TP + FP: pixels predicted c */
        }
        trace += tp;
        total += row;
        int64_t uni = row + col - tp; /* TP + FP + FN */
        if (uni > 0) {
            iou_sum += (double)tp / (double)uni;
            r.classes_counted++;
        }
    }
    if (r.classes_counted > 0) r.miou = iou_sum / r.classes_counted;
    if (total > 0) r.pixel_acc = (double)trace / (double)total;
    return r;
}
