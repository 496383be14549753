/* clshead.h: the fine-tuning classifier on the encoder's final sequence (unilm
 * modeling_finetune.VisionTransformer's pooling + head).
 *
 *   feat     [B,T,D]  vit_features(): the last block's output (vit_dims.final_norm = 0, mean
 *                     pooling) or its `norm` (final_norm = 1, CLS pooling)
 *   pool mean: u = fc_norm(mean over the patch rows 1..T-1 of feat)      [B,D]
 *   pool cls:  u = feat[:, 0]                                            [B,D]
 *   logits   = u @ head.weight^T + head.bias                            [B,NC]
 *   loss     = cross-entropy with label smoothing (timm LabelSmoothingCrossEntropy: (1-s) NLL
 *              + s * mean over classes of -log p), summed over the batch
 *
 * Parameters fc_norm.{weight,bias} (mean pooling only), head.{weight,bias}; layer id L+1 (after
 * the blocks); head.weight decays, the rest does not. Init: head.weight normal(0, 0.02) (timm's
 * trunc_normal_, whose +-2 cut is absolute: 100 std), then weight and bias * init_scale (the
 * reference's --init_scale 0.001); fc_norm 1 / 0.
 */
#ifndef BEIT_CLSHEAD_H
#define BEIT_CLSHEAD_H

#include "beit/params.h"

#include <stdint.h>

enum { CLSHEAD_POOL_MEAN = 0, CLSHEAD_POOL_CLS = 1 };

typedef struct {
    int D, T, ncls, pool;
    float ln_eps;
    int p_fcn_w, p_fcn_b, p_w, p_b; /* -1 = absent */
    int max_batch, B;
    float *pooled, *u, *u_mean, *u_rstd; /* [B,D], [B,D], [B], [B] */
    float *logits, *probs;               /* [B,NC] */
    float *du, *dpooled;                 /* [B,D] backward workspace */
    int *tgt;                            /* [B] */
    float smoothing;
} clshead;

/* Add the tensors (before params_alloc). */
void clshead_build(clshead *h, param_table *pt, int D, int T, int ncls, int pool, int layer_id);
void clshead_init(const clshead *h, param_table *pt, uint64_t seed, float init_scale);
void clshead_alloc(clshead *h, int max_batch);
void clshead_free(clshead *h);
/* logits of the batch (kept: clshead_logits) */
void clshead_forward(clshead *h, const param_table *pt, const float *feat, int B);
const float *clshead_logits(const clshead *h);
/* Cross-entropy with label smoothing of the last forward: returns the SUM over the batch;
 * top1 / top5 = rows whose label is the argmax / among the 5 largest logits (either may be
 * NULL). Labels outside [0, ncls) are a caller bug (the store validates its labels). */
double clshead_loss(clshead *h, const int32_t *labels, int B, float smoothing, int *top1, int *top5);
/* Gradient of scale * (the summed loss): accumulates (+=) into pt->grad and dfeat [B,T,D]. */
void clshead_backward(clshead *h, param_table *pt, float *dfeat, float scale);
/* rows whose label is among the k largest logits (ties counted by strict greater-than) */
int topk_correct(const float *logits, const int32_t *labels, int B, int ncls, int k);

#endif
