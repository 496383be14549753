/* train: parameter table layout and layer decay; AdamW vs torch.optim.AdamW (6 steps, three
 * groups); clipping vs clip_grad_norm_; schedule vs unilm's cosine_scheduler. */
#include "beit/error.h"
#include "beit/optim.h"
#include "beit/params.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void build_table(param_table *pt) {
    params_init(pt);
    int64_t s0[2] = {4, 5}, s1[1] = {5}, s2[2] = {3, 4};
    params_add(pt, "a.weight", 2, s0, 1, 2);
    params_add(pt, "a.bias", 1, s1, 0, 2);
    params_add(pt, "b.weight", 2, s2, 1, 1);
    params_alloc(pt);
}

static void test_table(void) {
    param_table pt;
    build_table(&pt);
    t_ok(pt.total == 20 + 5 + 12 && pt.t[1].offset == 20 && pt.t[2].offset == 25,
         "parameter table: contiguous offsets in insertion order");
    t_ok(params_find(&pt, "b.weight") == 2 && params_find(&pt, "nope") == -1, "params_find");
    /* reference §4: scale(id) = decay^(L + 1 - id); with L = 1 block: id 2 -> 1, id 1 -> decay */
    params_set_layer_decay(&pt, 0.5, 1);
    t_ok(pt.t[0].lr_scale == 1.0f && pt.t[2].lr_scale == 0.5f, "layer decay: decay^(L+1-id)");
    uint64_t c0 = params_checksum(&pt);
    pt.data[7] = 1e-30f;
    t_ok(params_checksum(&pt) != c0, "checksum sees a one-float change");
    params_free(&pt);
}

static void test_adamw(fixture *fx) {
    param_table pt;
    build_table(&pt);
    pt.t[0].lr_scale = 1.0f; pt.t[1].lr_scale = 1.0f; pt.t[2].lr_scale = 0.5f;
    size_t n, ng, na, nl;
    float *p0 = fx_floats(fx, "adamw/p0", &n);
    float *grads = fx_floats(fx, "adamw/grads", &ng);
    float *after = fx_floats(fx, "adamw/after", &na);
    float *lrs = fx_floats(fx, "adamw/lrs", &nl);
    if (!t_ok(n == pt.total && ng == 6 * n && na == 6 * n, "adamw fixture shapes")) return;
    memcpy(pt.data, p0, n * sizeof(float));
    float *m = xalloc_floats(n), *v = xalloc_floats(n);
    adamw_config cfg = {0.9, 0.999, 1e-8, fx_scalar(fx, "adamw/weight_decay")};
    for (int s = 0; s < 6; s++) {
        memcpy(pt.grad, grads + (size_t)s * n, n * sizeof(float));
        adamw_step_range(&pt, 0, pt.total, m, v, lrs[s], &cfg, s + 1);
        char name[64];
        snprintf(name, sizeof name, "AdamW vs torch, params after step %d", s + 1);
        t_close(name, pt.data, after + (size_t)s * n, n, 1e-5, 1e-7);
    }
    /* the same steps in two ranges [0,k) and [k,n) (how a ZeRO shard sees it) give the same */
    memcpy(pt.data, p0, n * sizeof(float));
    memset(m, 0, n * sizeof(float));
    memset(v, 0, n * sizeof(float));
    size_t k = 23; /* inside a.bias */
    for (int s = 0; s < 6; s++) {
        memcpy(pt.grad, grads + (size_t)s * n, n * sizeof(float));
        adamw_step_range(&pt, 0, k, m, v, lrs[s], &cfg, s + 1);
        adamw_step_range(&pt, k, n, m + k, v + k, lrs[s], &cfg, s + 1);
    }
    t_close("AdamW over two ranges = torch", pt.data, after + 5 * n, n, 1e-5, 1e-7);
    free(m); free(v); free(p0); free(grads); free(after); free(lrs);
    params_free(&pt);
}

static void test_clip(fixture *fx, const char *name) {
    char key[64];
    size_t n;
    snprintf(key, sizeof key, "%s/grad", name);
    float *g = fx_floats(fx, key, &n);
    snprintf(key, sizeof key, "%s/clipped", name);
    float *want = fx_floats(fx, key, NULL);
    snprintf(key, sizeof key, "%s/norm", name);
    double want_norm = fx_scalar(fx, key);
    snprintf(key, sizeof key, "%s/max_norm", name);
    double max_norm = fx_scalar(fx, key);
    double norm = sqrt(grad_sumsq(g, n));
    t_ok(fabs(norm - want_norm) <= 1e-5 * want_norm, "%s: global norm %.6f vs torch %.6f", name, norm, want_norm);
    grad_clip_scale(g, n, norm, max_norm);
    snprintf(key, sizeof key, "%s: clipped gradients vs clip_grad_norm_", name);
    t_close(key, g, want, n, 1e-5, 1e-7);
    free(g);
    free(want);
}

static void test_schedule(fixture *fx, const char *name, int64_t total, int64_t warm, double base, double fin) {
    char key[32];
    snprintf(key, sizeof key, "sched/%s", name);
    size_t n;
    float *want = fx_floats(fx, key, &n);
    float *got = xmalloc(n * sizeof(float));
    for (size_t s = 0; s < n; s++) got[s] = (float)schedule_cosine((int64_t)s, total, warm, base, fin, 0.0);
    char label[96];
    snprintf(label, sizeof label, "warmup %lld + cosine over %lld steps vs unilm cosine_scheduler",
             (long long)warm, (long long)total);
    t_ok(n == (size_t)total, "schedule %s length", name);
    t_close(label, got, want, n, 1e-6, 1e-12);
    free(want);
    free(got);
}

int main(void) {
    test_table();
    fixture *fx = fx_open("optim.h5");
    test_adamw(fx);
    test_clip(fx, "clip_on");
    test_clip(fx, "clip_off");
    test_schedule(fx, "a", 35, 14, 1.5e-3, 1e-5);
    test_schedule(fx, "b", 30, 4, 4e-3, 1e-6);
    fx_close(fx);
    return t_done();
}
