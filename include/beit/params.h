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

typedef struct {
    param_info *t;
    int n, cap;
    size_t total;  /* floats in the flat buffers */
    float *data;   /* parameters, 64-byte aligned */
    float *grad;   /* gradients, same layout */
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
/* Set lr_scale = decay^(num_layers + 1 - layer_id) for every tensor with layer_id >= 0
 * (reference §4; num_layers = L blocks, ids 0..L+1). decay = 1 gives 1 everywhere. */
void params_set_layer_decay(param_table *pt, double decay, int num_layers);
/* Order-independent 64-bit checksum of the parameter bytes (identical parameters on every
 * rank give identical sums). */
uint64_t params_checksum(const param_table *pt);

#endif
