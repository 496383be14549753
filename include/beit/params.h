/* params.h: the parameter table. One flat float buffer holds every parameter of a model, a
 * second one (same layout) its gradients, and the optimizer keeps its state in the same
 * layout. The table names each tensor (timm's state_dict names), its shape, whether weight
 * decay applies and its layer id (for layer-wise lr decay).
 *
 * Order: a model adds its tensors in the order their gradients become final in backward
 * (heads and the last block first, embeddings last), so all-reduce buckets, optimizer shards
 * and checkpoint slices are contiguous ranges of the buffer. */
#ifndef BEIT_PARAMS_H
#define BEIT_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    size_t offset; /* into the flat buffers, in floats */
    size_t numel;
    int decay;      /* 1: AdamW weight decay applies (weights of linear/conv layers) */
    int layer_id;   /* layer-wise lr decay id (reference §4); -1 = none */
    float lr_scale; /* multiplies the scheduled lr; 1 unless set by layer decay */
} param_info;

/* Gradient-readiness hook (for the overlapped all-reduce, src/train/loop.c): called by a
 * model's backward as soon as the gradients of the floats [0, float_offset) of the table are
 * final for this backward pass. */
typedef void (*params_grad_ready_fn)(void *ctx, size_t float_offset);

typedef struct {
    param_info *t;
    int n, cap;
    size_t total;  /* floats in the flat buffers */
    float *data;   /* parameters, 64-byte aligned */
    float *grad;   /* gradients, same layout */
    /* NULL (the default) = nobody listens. Set and cleared by the training loop around a
     * step's forward/backward; models only call params_grad_ready. */
    params_grad_ready_fn grad_ready;
    void *grad_ready_ctx;
} param_table;

void params_init(param_table *pt);
/* Add a tensor; returns its index. shape has ndim entries. Only before params_alloc. */
int params_add(param_table *pt, const char *name, int ndim, const int64_t *shape, int decay, int layer_id);
/* Allocate data and grad (zeroed). */
void params_alloc(param_table *pt);
void params_free(param_table *pt);
/* Index of a named tensor or -1. */
int params_find(const param_table *pt, const char *name);
static inline float *params_data(const param_table *pt, int i) { return pt->data + pt->t[i].offset; }
static inline float *params_grad(const param_table *pt, int i) { return pt->grad + pt->t[i].offset; }
void params_zero_grad(param_table *pt);
/* Models call this in backward right after the gradient of tensor `last` became final, when
 * the gradients of EVERY tensor before it in the table are final too (true by the table-order
 * rule above: tensors added before a model's own belong to heads whose backward ran first).
 * It reports the float offset of the end of `last` to the hook, if one is set; `last` < 0 is
 * ignored. Reports of one pass are non-decreasing and the last one of a pass that reaches the
 * end of the table is pt->total. Cheap: a NULL test when nobody listens. */
static inline void params_grad_ready(const param_table *pt, int last) {
    if (pt->grad_ready && last >= 0) pt->grad_ready(pt->grad_ready_ctx, pt->t[last].offset + pt->t[last].numel);
}
/* Set lr_scale = decay^(num_layers + 1 - layer_id) for every tensor with layer_id >= 0
 * (reference §4; num_layers = L blocks, ids 0..L+1). decay = 1 gives 1 everywhere. */
void params_set_layer_decay(param_table *pt, double decay, int num_layers);
/* Order-independent 64-bit checksum of the parameter bytes (identical parameters on every
 * rank give identical sums). */
uint64_t params_checksum(const param_table *pt);

#endif
