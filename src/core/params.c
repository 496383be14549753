#include "beit/params.h"

#include "beit/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void params_init(param_table *pt) { memset(pt, 0, sizeof *pt); }

int params_add(param_table *pt, const char *name, int ndim, const int64_t *shape, int decay, int layer_id) {
    if (pt->data) beit_fatal(BEIT_EXIT_FAILURE, "params_add(%s) after params_alloc", name);
    if (ndim < 1 || ndim > PARAM_MAX_DIMS) beit_fatal(BEIT_EXIT_FAILURE, "%s: bad ndim %d", name, ndim);
    if (strlen(name) >= PARAM_NAME_MAX) beit_fatal(BEIT_EXIT_FAILURE, "parameter name too long: %s", name);
    if (params_find(pt, name) >= 0) beit_fatal(BEIT_EXIT_FAILURE, "parameter %s added twice", name);
    if (pt->n == pt->cap) {
        pt->cap = pt->cap ? 2 * pt->cap : 64;
        pt->t = xrealloc(pt->t, (size_t)pt->cap * sizeof *pt->t);
    }
    param_info *p = &pt->t[pt->n];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->numel *= (size_t)shape[d];
    }
    p->offset = pt->total;
    p->decay = decay;
    p->layer_id = layer_id;
    p->lr_scale = 1.0f;
    pt->total += p->numel;
    return pt->n++;
}

void params_alloc(param_table *pt) {
    pt->data = xalloc_floats(pt->total);
    pt->grad = xalloc_floats(pt->total);
}

void params_free(param_table *pt) {
    free(pt->t);
    free(pt->data);
    free(pt->grad);
    memset(pt, 0, sizeof *pt);
}

int params_find(const param_table *pt, const char *name) {
    for (int i = 0; i < pt->n; i++)
        if (!strcmp(pt->t[i].name, name)) return i;
    return -1;
}

void params_zero_grad(param_table *pt) { memset(pt->grad, 0, pt->total * sizeof(float)); }

void params_set_layer_decay(param_table *pt, double decay, int num_layers) {
    for (int i = 0; i < pt->n; i++) {
        int id = pt->t[i].layer_id;
        pt->t[i].lr_scale = id >= 0 ? (float)pow(decay, num_layers + 1 - id) : 1.0f;
    }
}

uint64_t params_checksum(const param_table *pt) {
    /* FNV-1a over the raw bytes: any bit difference between ranks shows */
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)pt->data;
    for (size_t i = 0; i < pt->total * sizeof(float); i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
