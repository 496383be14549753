/* gumbel.c: Gumbel-softmax relaxation for the dVAE tokenizer.
 *   y[N,V] = softmax((logits + g) / tau) over the last dim, g = Gumbel(0,1) noise */
#include "beit/nn.h"

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
    for (size_t i = 0; i < n; i++) {
        /* rng_uniform is k * 2^-24, k in [0, 2^24): shifting by half a cell keeps u off 0 and 1
         * (done in double: 1 - 2^-25 is not a float) */
        double u = (double)rng_uniform(r) + 0x1p-25;
        g[i] = (float)(-log(-log(u)));
    }
}
