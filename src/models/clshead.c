/* clshead.c: pooling + fc_norm + linear classifier, forward and backward (include/beit/clshead.h).
 * Shapes: B images, T tokens (row 0 = CLS), D channels, NC classes. */
#include "beit/clshead.h"

#include "beit/error.h"
#include "beit/rng.h"
#include "beit/nn.h"

#include <stdlib.h>
#include <string.h>

void clshead_build(clshead *h, param_table *pt, int D, int T, int ncls, int pool, int layer_id) {
    if (ncls < 2) beit_fatal_user(BEIT_EXIT_USAGE, "classifier: %d classes (need at least 2)", ncls);
    if (pool != CLSHEAD_POOL_MEAN && pool != CLSHEAD_POOL_CLS) beit_fatal(BEIT_EXIT_FAILURE, "clshead: pool %d", pool);
    memset(h, 0, sizeof *h);
    h->D = D;
    h->T = T;
    h->ncls = ncls;
    h->pool = pool;
    h->ln_eps = 1e-6f;
    int64_t w[2] = {ncls, D}, b[1] = {ncls}, d1[1] = {D};
    h->p_w = params_add(pt, "head.weight", 2, w, 1, layer_id);
    h->p_b = params_add(pt, "head.bias", 1, b, 0, layer_id);
    h->p_fcn_w = h->p_fcn_b = -1;
    if (pool == CLSHEAD_POOL_MEAN) {
        h->p_fcn_w = params_add(pt, "fc_norm.weight", 1, d1, 0, layer_id);
        h->p_fcn_b = params_add(pt, "fc_norm.bias", 1, d1, 0, layer_id);
    }
}

void clshead_init(const clshead *h, param_table *pt, uint64_t seed, float init_scale) {
    rng_t r = rng_init_stream(seed, "head.weight");
    float *w = params_data(pt, h->p_w);
    for (size_t k = 0; k < pt->t[h->p_w].numel; k++) w[k] = 0.02f * rng_normal(&r) * init_scale;
    memset(params_data(pt, h->p_b), 0, (size_t)h->ncls * sizeof(float)); /* 0 * init_scale */
    if (h->p_fcn_w >= 0) {
        float *g = params_data(pt, h->p_fcn_w), *b = params_data(pt, h->p_fcn_b);
        for (int c = 0; c < h->D; c++) g[c] = 1.0f, b[c] = 0.0f;
    }
}

void clshead_alloc(clshead *h, int max_batch) {
    const size_t mb = (size_t)max_batch, D = (size_t)h->D, NC = (size_t)h->ncls;
    h->max_batch = max_batch;
    h->pooled = xalloc_floats(mb * D);
    h->u = xalloc_floats(mb * D);
    h->u_mean = xalloc_floats(mb);
    h->u_rstd = xalloc_floats(mb);
    h->logits = xalloc_floats(mb * NC);
    h->probs = xalloc_floats(mb * NC);
    h->du = xalloc_floats(mb * D);
    h->dpooled = xalloc_floats(mb * D);
    h->tgt = xcalloc(mb, sizeof(int));
}

void clshead_free(clshead *h) {
    void *p[] = {h->pooled, h->u, h->u_mean, h->u_rstd, h->logits, h->probs, h->du, h->dpooled, h->tgt};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
    memset(h, 0, sizeof *h);
}

void clshead_forward(clshead *h, const param_table *pt, const float *feat, int B) {
    if (B < 1 || B > h->max_batch) beit_fatal(BEIT_EXIT_FAILURE, "clshead_forward: batch %d outside 1..%d", B, h->max_batch);
    const int D = h->D, T = h->T;
    h->B = B;
    if (h->pool == CLSHEAD_POOL_MEAN) {
        meanpool_forward(h->pooled, feat, B, T, D, 1);
        layernorm_forward(h->u, h->u_mean, h->u_rstd, h->pooled, params_data(pt, h->p_fcn_w),
                          params_data(pt, h->p_fcn_b), B, D, h->ln_eps);
    } else {
        for (int b = 0; b < B; b++) memcpy(h->u + (size_t)b * D, feat + (size_t)b * T * D, (size_t)D * sizeof(float));
    }
    linear_forward(h->logits, h->u, params_data(pt, h->p_w), params_data(pt, h->p_b), B, D, h->ncls);
}

const float *clshead_logits(const clshead *h) { return h->logits; }

int topk_correct(const float *logits, const int32_t *labels, int B, int ncls, int k) {
    int n = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * ncls;
        float zt = z[labels[b]];
        int above = 0;
        for (int c = 0; c < ncls; c++) above += z[c] > zt;
        n += above < k;
    }
    return n;
}

double clshead_loss(clshead *h, const int32_t *labels, int B, float smoothing, int *top1, int *top5) {
    if (B != h->B) beit_fatal(BEIT_EXIT_FAILURE, "clshead_loss: batch %d, forward ran %d", B, h->B);
    for (int b = 0; b < B; b++) {
        if (labels[b] < 0 || labels[b] >= h->ncls)
            beit_fatal(BEIT_EXIT_FAILURE, "clshead_loss: label %d outside [0, %d)", (int)labels[b], h->ncls);
        h->tgt[b] = labels[b];
    }
    h->smoothing = smoothing;
    if (top1) *top1 = argmax_correct(h->logits, h->tgt, B, h->ncls);
    if (top5) *top5 = topk_correct(h->logits, labels, B, h->ncls, 5);
    return crossentropy_forward(h->probs, h->logits, h->tgt, B, h->ncls, smoothing);
}

void clshead_backward(clshead *h, param_table *pt, float *dfeat, float scale) {
    const int B = h->B, D = h->D, T = h->T, NC = h->ncls;
    float *dlogits = h->logits; /* the logits are dead after the loss */
    memset(dlogits, 0, (size_t)B * NC * sizeof(float));
    crossentropy_backward(dlogits, h->probs, h->tgt, B, NC, h->smoothing, scale);
    memset(h->du, 0, (size_t)B * D * sizeof(float));
    linear_backward(h->du, params_grad(pt, h->p_w), params_grad(pt, h->p_b), dlogits, h->u, params_data(pt, h->p_w), B,
                    D, NC);
    if (h->pool == CLSHEAD_POOL_MEAN) {
        memset(h->dpooled, 0, (size_t)B * D * sizeof(float));
        layernorm_backward(h->dpooled, params_grad(pt, h->p_fcn_w), params_grad(pt, h->p_fcn_b), h->du, h->pooled,
                           params_data(pt, h->p_fcn_w), h->u_mean, h->u_rstd, B, D);
        meanpool_backward(dfeat, h->dpooled, B, T, D, 1);
    } else {
        for (int b = 0; b < B; b++) {
            float *d = dfeat + (size_t)b * T * D;
            const float *g = h->du + (size_t)b * D;
            for (int c = 0; c < D; c++) d[c] += g[c];
        }
    }
}
