/* optim.h: AdamW (torch.optim.AdamW's update, operation for operation), global-norm gradient
 * clipping (torch.nn.utils.clip_grad_norm_) and the warmup + cosine schedule (unilm's
 * cosine_scheduler, per step). */
#ifndef BEIT_OPTIM_H
#define BEIT_OPTIM_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double beta1, beta2, eps, weight_decay;
} adamw_config;

/* One AdamW step on n contiguous floats with one lr and weight decay:
 *   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
 * t is the 1-based step count. */
void adamw_update(float *p, const float *g, float *m, float *v, size_t n, double lr, double wd,
                  const adamw_config *cfg, int64_t t);

/* AdamW over the float range [lo, hi) of the table's flat buffers (a ZeRO shard, or the
 * whole [0, total)); each tensor's part uses lr * lr_scale and wd only where decay is set.
 * m and v are indexed from lo (m[0] is the state of float lo). */
void adamw_step_range(const param_table *pt, size_t lo, size_t hi, float *m, float *v, double lr,
                      const adamw_config *cfg, int64_t t);

/* Sum of squares of g[0..n) in double (a partial for the global norm). */
double grad_sumsq(const float *g, size_t n);
/* Clip: given the global norm, scale g by min(1, max_norm / (norm + 1e-6)) (torch's rule).
 * max_norm <= 0 disables. Returns the factor applied. */
double grad_clip_scale(float *g, size_t n, double norm, double max_norm);

/* Warmup + cosine, per optimizer step s in [0, total_steps):
 *   s <  W: start + (base - start) * s / (W - 1)   (np.linspace(start, base, W); W = 1 -> start)
 *   s >= W: final + (base - final) * (1 + cos(pi * (s - W) / (total_steps - W))) / 2
 * Steps past the end keep the final value. */
double schedule_cosine(int64_t s, int64_t total_steps, int64_t warmup_steps, double base, double final,
                       double start);

#endif
