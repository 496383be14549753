#include "beit/optim.h"

#include <math.h>

void adamw_update(float *p, const float *g, float *m, float *v, size_t n, double lr, double wd,
                  const adamw_config *cfg, int64_t t) {
    const float b1 = (float)cfg->beta1, b2 = (float)cfg->beta2, eps = (float)cfg->eps;
    const double bc1 = 1.0 - pow(cfg->beta1, (double)t), bc2 = 1.0 - pow(cfg->beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = (float)(1.0 - lr * wd);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + (1.0f - b1) * gi; /* torch 1.13: exp_avg.mul_(b1).add_(g, alpha=1-b1) */
        float vi = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void adamw_step_range(const param_table *pt, size_t lo, size_t hi, float *m, float *v, double lr,
                      const adamw_config *cfg, int64_t t) {
    for (int i = 0; i < pt->n; i++) {
        const param_info *pi = &pt->t[i];
        size_t a = pi->offset, b = pi->offset + pi->numel;
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (a >= b) continue;
        double lr_i = lr * pi->lr_scale;
        double wd_i = pi->decay ? cfg->weight_decay : 0.0;
        adamw_update(pt->data + a, pt->grad + a, m + (a - lo), v + (a - lo), b - a, lr_i, wd_i, cfg, t);
    }
}

double grad_sumsq(const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    return s;
}

double grad_clip_scale(float *g, size_t n, double norm, double max_norm) {
    if (max_norm <= 0) return 1.0;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return 1.0;
    float c = (float)coef;
    for (size_t i = 0; i < n; i++) g[i] *= c;
    return coef;
}

double schedule_cosine(int64_t s, int64_t total, int64_t warm, double base, double final, double start) {
    if (s < warm) {
        if (warm == 1) return start;
        return start + (base - start) * (double)s / (double)(warm - 1);
    }
    if (s >= total || total <= warm) return final;
    double x = (double)(s - warm) / (double)(total - warm);
    return final + 0.5 * (base - final) * (1.0 + cos(3.14159265358979323846 * x));
}
