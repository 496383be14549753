/* gumbel.c: Gumbel-softmax relaxation for the dVAE tokenizer.
 *   y[N,V] = softmax((logits + g) / tau) over the last dim, g = Gumbel(0,1) noise */
#include "beit/nn.h"
#include "beit/rng.h"
#include "beit/vmath.h"

#include <math.h>

void gumbel_softmax_forward(float *y, const float *logits, const float *g, int N, int V, float tau) {
    const float inv_tau = 1.0f / tau;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *x = logits + n * (size_t)V;
        const float *gn = g ? g + n * (size_t)V : NULL;
        float *out = y + n * (size_t)V;
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) {
            out[v] = (x[v] + (gn ? gn[v] : 0.0f)) * inv_tau;
            mx = out[v] > mx ? out[v] : mx;
        }
        double sum = 0;
        for (int v = 0; v < V; v++) {
            out[v] = expf(out[v] - mx);
            sum += out[v];
        }
        const float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) out[v] *= inv;
    }
}

void gumbel_softmax_backward(float *dlogits, const float *dy, const float *y, int N, int V, float tau) {
    const float inv_tau = 1.0f / tau;
    for (size_t n = 0; n < (size_t)N; n++) {
        const float *d = dy + n * (size_t)V, *p = y + n * (size_t)V;
        double dot = 0;
        for (int v = 0; v < V; v++) dot += (double)d[v] * p[v];
        float *dl = dlogits + n * (size_t)V;
        for (int v = 0; v < V; v++) dl[v] += inv_tau * p[v] * (d[v] - (float)dot);
    }
}

void gumbel_noise(float *g, size_t n, rng_t *r) {
    /* u = (2j + 1) 2^-24 with j the top 23 bits of one draw: exact in float, never 0 or 1;
     * the two logs run 16 at a time (vmath.h) -- this was 7% of a dVAE step in libm's log */
    float u[VM_LANES];
    for (size_t i = 0; i < n; i += VM_LANES) {
        size_t m = n - i < VM_LANES ? n - i : VM_LANES;
        for (size_t j = 0; j < VM_LANES; j++) u[j] = j < m ? (float)(2 * (rng_u32(r) >> 9) + 1) * 0x1p-24f : 0.5f;
        vm_f gv = -vm_log(-vm_log(vm_load(u)));
        for (size_t j = 0; j < m; j++) g[i + j] = gv[j];
    }
}
