/* losses.c: cross-entropy with label smoothing over rows of logits[N,V], argmax accuracy,
 * mean-squared-error sums. Forward losses are SUMS (double); the caller scales the gradient,
 * e.g. by 1 / (global number of masked tokens across ranks). */
#include "beit/error.h"
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/vmath.h"

#include <math.h>

double crossentropy_forward(float *probs, const float *logits, const int *targets, int N, int V,
                            float eps) {
    PROF_BEGIN(PROF_LOSS);
    double total = 0;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = logits + n * (size_t)V;
        const int t = targets[n];
        if (t >= V) beit_fatal(BEIT_EXIT_MISMATCH, "cross-entropy: target %d of row %zu is >= V=%d", t, n, V);
        /* 16 lanes at a time (vmath.h's exp; double partial sums in a fixed order) */
        const int Vv = V - V % VM_LANES;
        float mx = vm_max(x, (size_t)V);
        vm_d se = {0}, sx = {0};
        for (int v = 0; v < Vv; v += VM_LANES) {
            vm_f xv = vm_load(x + v);
            se += vm_to_d(vm_exp(xv - mx));
            sx += vm_to_d(xv);
        }
        double sum = vm_hsum(se), sumx = vm_hsum(sx);
        for (int v = Vv; v < V; v++) {
            sum += vm_expf(x[v] - mx);
            sumx += x[v];
        }
        const double logz = mx + log(sum);
        if (probs) {
            float *p = probs + n * (size_t)V;
            const float lz = (float)logz;
            for (int v = 0; v < Vv; v += VM_LANES) vm_store(p + v, vm_exp(vm_load(x + v) - lz));
            for (int v = Vv; v < V; v++) p[v] = vm_expf(x[v] - lz);
        }
        if (t < 0) continue; /* ignored row */
        /* -sum_v q_v log p_v = -(1-eps) log p_t - eps/V sum_v log p_v */
        total += -(1.0 - eps) * (x[t] - logz) - (double)eps / V * (sumx - V * logz);
    }
    PROF_END(PROF_LOSS);
    return total;
}

void crossentropy_backward(float *dlogits, const float *probs, const int *targets, int N, int V,
                           float eps, float scale) {
    PROF_BEGIN(PROF_LOSS);
    const float off = eps / V;
    for (size_t n = 0; n < (size_t)N; n++) {
        const int t = targets[n];
        if (t < 0) continue;
        const float *p = probs + n * (size_t)V;
        float *d = dlogits + n * (size_t)V;
        for (int v = 0; v < V; v++) d[v] += scale * (p[v] - off);
        d[t] -= scale * (1.0f - eps);
    }
    PROF_END(PROF_LOSS);
}

int argmax_correct(const float *logits, const int *targets, int N, int V) {
    PROF_BEGIN(PROF_LOSS);
    int correct = 0;
    for (size_t n = 0; n < (size_t)N; n++) {
        if (targets[n] < 0) continue;
        const float *x = logits + n * (size_t)V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (x[v] > x[best]) best = v;
        correct += best == targets[n];
    }
    PROF_END(PROF_LOSS);
    return correct;
}

double mse_forward(const float *pred, const float *target, size_t n) {
    PROF_BEGIN(PROF_LOSS);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - target[i];
        s += d * d;
    }
    PROF_END(PROF_LOSS);
    return s;
}

void mse_backward(float *dpred, const float *pred, const float *target, size_t n, float scale) {
    PROF_BEGIN(PROF_LOSS);
    for (size_t i = 0; i < n; i++) dpred[i] += scale * 2.0f * (pred[i] - target[i]);
    PROF_END(PROF_LOSS);
}
