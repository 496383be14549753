/* dvae.c: the dVAE tokenizer (include/beit/dvae.h), forward and backward over a batch, and
 * encode / decode. Building, initialising and allocating the model: dvae_setup.c.
 *
 * Shapes (per image; a batch is B of them, NCHW):
 *   x, xin [C,S,S] -> e_stem [w0,S,S] -> encoder blocks [w_g, S_g, S_g] (S_g = S >> g)
 *   -> e_aout [w_{G-1},h,h] -> logits [V,h,h] -> z [V,h,h]
 *   -> d_stem [w_{G-1},h,h] -> decoder blocks / upsampling -> d_aout [w0,S,S] -> out [C',S,S]
 *
 * The V-wide tensors (logits, z, dz; P = h*h positions) are held token-major, [B*P, V]: the
 * two 1x1 convs into and out of them (encoder.out, decoder.stem: half the step's FLOPs) are
 * then one sgemm each over the whole batch (M = B*P) rather than B sgemms with N = P, and the
 * softmax over V runs on contiguous rows of V floats that stay in cache, with vectorized
 * exp (vmath.h). The KL term is fused into the same passes; its gradient is recomputed in
 * backward from the logits and two saved per-position numbers (log-sum-exp and sum q ln q)
 * instead of storing q. Only the small w-wide maps next to them are transposed
 * (transpose_batched).
 */
#include "beit/dvae.h"

#include "beit/conv.h"
#include "beit/error.h"
#include "beit/gemm.h"
#include "beit/rng.h"
#include "beit/nn.h"
#include "beit/prof.h"
#include "beit/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LN2 0.69314718055994530942

/* ================================ helpers ================================ */

static void conv_fwd(dvae_model *m, const param_table *pt, const dvae_conv *c, float *out, const float *inp,
                     int B) {
    conv2d_forward(out, inp, params_data(pt, c->w), params_data(pt, c->b), m->scratch, m->scratch_n, B, c->cin,
                   c->side, c->side, c->cout, c->k, 1, c->k / 2);
}

/* dinp (may be NULL) += ..., and the conv's parameter gradients in pt->grad */
static void conv_bwd(dvae_model *m, param_table *pt, const dvae_conv *c, float *dinp, const float *dout,
                     const float *inp, int B) {
    conv2d_backward(dinp, params_grad(pt, c->w), params_grad(pt, c->b), dout, inp, params_data(pt, c->w),
                    m->scratch, m->scratch_n, B, c->cin, c->side, c->side, c->cout, c->k, 1, c->k / 2);
}

/* d[i] = 0 where the forward activation a[i] = relu(.) is not positive (in place) */
static void relu_mask(float *d, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = a[i] > 0.0f ? d[i] : 0.0f;
}

static void add_into(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* every row of out[R, n] <- bias[n] */
static void fill_rows(float *out, const float *bias, size_t R, int n) {
    for (size_t r = 0; r < R; r++) memcpy(out + r * n, bias, (size_t)n * sizeof(float));
}

/* dbias[j] += sum over the R rows of d[R, n] (column sums; double partials in acc[n]) */
static void column_sums(float *dbias, const float *d, size_t R, int n, double *acc) {
    for (int j = 0; j < n; j++) acc[j] = 0;
    for (size_t r = 0; r < R; r++)
        for (int j = 0; j < n; j++) acc[j] += d[r * n + j];
    for (int j = 0; j < n; j++) dbias[j] += (float)acc[j];
}

/* encoder.out, a 1x1 conv w -> V: logits[B*P, V] = ea_rows[B*P, w] W[V, w]^T + bias */
static void enc_out_forward(dvae_model *m, const param_table *pt, int B) {
    PROF_BEGIN(PROF_CONV);
    int w = m->enc_out.cin, V = m->V, R = B * m->P;
    PROF_FLOPS(PROF_CONV, 2.0 * V * w * (double)R);
    transpose_batched(m->ea_rows, m->e_aout, B, w, m->P); /* [B,w,P] -> rows [B*P,w] */
    fill_rows(m->logits, params_data(pt, m->enc_out.b), (size_t)R, V);
    gemm(&gemm_fp32, GEMM_N, GEMM_T, R, V, w, 1.0f, m->ea_rows, w, params_data(pt, m->enc_out.w), w, 1.0f, m->logits,
         V);
    PROF_END(PROF_CONV);
}

/* decoder.stem, a 1x1 conv V -> w: d_stem[B, w, P] <- z[B*P, V] W[w, V]^T + bias */
static void dec_stem_forward(dvae_model *m, const param_table *pt, int B) {
    PROF_BEGIN(PROF_CONV);
    int w = m->dec_stem.cout, V = m->V, R = B * m->P;
    PROF_FLOPS(PROF_CONV, 2.0 * V * w * (double)R);
    fill_rows(m->ds_rows, params_data(pt, m->dec_stem.b), (size_t)R, w);
    gemm(&gemm_fp32, GEMM_N, GEMM_T, R, w, V, 1.0f, m->z, V, params_data(pt, m->dec_stem.w), V, 1.0f, m->ds_rows, w);
    transpose_batched(m->d_stem, m->ds_rows, B, m->P, w); /* rows [B*P,w] -> [B,w,P] */
    PROF_END(PROF_CONV);
}

static void check_batch(const dvae_model *m, const char *op, int B) {
    if (!m->arena) beit_fatal(BEIT_EXIT_FAILURE, "%s before dvae_alloc", op);
    if (B < 0 || B > m->max_batch)
        beit_fatal(BEIT_EXIT_FAILURE, "%s: batch %d outside [0, max_batch %d]", op, B, m->max_batch);
}

/* ================================ forward ================================ */

/* out = id(x) + conv2(relu(conv1(relu(x)))); keeps a1, a2 (and out) in the block */
static void block_forward(dvae_model *m, const param_table *pt, dvae_block *blk, const float *x, int B) {
    size_t s2 = (size_t)blk->side * blk->side;
    size_t nin = (size_t)B * blk->cin * s2, nout = (size_t)B * blk->cout * s2;
    relu_forward(blk->a1, x, nin);
    conv_fwd(m, pt, &blk->conv1, blk->a2, blk->a1, B);
    relu_forward(blk->a2, blk->a2, nout);
    if (blk->idconv.w >= 0) {
        float *tmp = m->gbuf[0];
        conv_fwd(m, pt, &blk->idconv, blk->out, x, B);
        conv_fwd(m, pt, &blk->conv2, tmp, blk->a2, B);
        add_into(blk->out, tmp, nout);
    } else {
        conv_fwd(m, pt, &blk->conv2, blk->out, blk->a2, B);
        add_into(blk->out, x, nout);
    }
}

/* x[B,C,S,S] -> m->logits[B,V,h,h] (keeps every activation) */
static void encoder_forward(dvae_model *m, const param_table *pt, const float *x, int B) {
    int G = m->G, nb = m->d.blocks;
    size_t nx = (size_t)B * m->C * m->S * m->S;
    memcpy(m->x, x, nx * sizeof(float));
    for (size_t i = 0; i < nx; i++) m->xin[i] = 0.8f * x[i] + 0.1f;
    conv_fwd(m, pt, &m->enc_stem, m->e_stem, m->xin, B);
    const float *h = m->e_stem;
    for (int g = 0; g < G; g++) {
        if (g > 0) {
            int side = m->S >> (g - 1);
            maxpool2d_forward(m->pool[g], m->pool_idx[g], h, B, m->d.widths[g - 1], side, side, 2, 2);
            h = m->pool[g];
        }
        for (int b = 0; b < nb; b++) {
            dvae_block *blk = &m->enc[g * nb + b];
            block_forward(m, pt, blk, h, B);
            h = blk->out;
        }
    }
    relu_forward(m->e_aout, h, (size_t)B * m->d.widths[G - 1] * m->P);
    enc_out_forward(m, pt, B);
}

/* m->d_stem[B,w_{G-1},h,h] -> m->out[B,C',S,S] */
static void decoder_forward(dvae_model *m, const param_table *pt, int B) {
    int G = m->G, nb = m->d.blocks;
    const float *h = m->d_stem;
    for (int i = 0; i < G; i++) {
        int g = G - 1 - i;
        if (i > 0) {
            int side = m->S >> (g + 1);
            upsample_nearest_forward(m->up[i], h, B, m->d.widths[g + 1], side, side, 2);
            h = m->up[i];
        }
        for (int b = 0; b < nb; b++) {
            dvae_block *blk = &m->dec[i * nb + b];
            block_forward(m, pt, blk, h, B);
            h = blk->out;
        }
    }
    relu_forward(m->d_aout, h, (size_t)B * m->d.widths[0] * m->S * m->S);
    conv_fwd(m, pt, &m->dec_out, m->out, m->d_aout, B);
}

/* One position: l, g [V] -> z [V] = softmax of (l + g) / tau (g may be NULL); *lse =
 * logsumexp l, *negent = sum q ln q with q = softmax(l). Returns KL(q || uniform) =
 * negent + ln V. Three passes over the row (max; exp and sums; normalise), which stays in
 * L1/L2; VM_LANES independent partials so that every pass vectorizes. */
static double row_softmax(float *z, float *lse, float *negent, const float *l, const float *g, int V, float tau) {
    const float inv_tau = 1.0f / tau;
    const int Vv = V - V % VM_LANES; /* vector part; the tail runs lane by lane */
    vm_f mx1 = vm_splat(-INFINITY), mx2 = mx1;
    for (int v = 0; v < Vv; v += VM_LANES) {
        vm_f lv = vm_load(l + v), s = g ? (lv + vm_load(g + v)) * inv_tau : lv * inv_tau;
        mx1 = vm_maxv(lv, mx1);
        mx2 = vm_maxv(s, mx2);
    }
    float m1 = vm_hmax(mx1), m2 = vm_hmax(mx2);
    for (int v = Vv; v < V; v++) {
        float s = (l[v] + (g ? g[v] : 0.0f)) * inv_tau;
        m1 = l[v] > m1 ? l[v] : m1;
        m2 = s > m2 ? s : m2;
    }
    vm_d s1 = {0}, t1 = {0}, s2 = {0};
    for (int v = 0; v < Vv; v += VM_LANES) {
        vm_f lv = vm_load(l + v);
        vm_f d = lv - m1, e = vm_exp(d);
        s1 += vm_to_d(e);
        t1 += vm_to_d(e * d);
        vm_f s = g ? (lv + vm_load(g + v)) * inv_tau : lv * inv_tau;
        vm_f zz = vm_exp(s - m2);
        vm_store(z + v, zz);
        s2 += vm_to_d(zz);
    }
    double S1 = vm_hsum(s1), T1 = vm_hsum(t1), S2 = vm_hsum(s2);
    for (int v = Vv; v < V; v++) {
        float d = l[v] - m1, e = vm_expf(d);
        S1 += e;
        T1 += (double)(e * d);
        z[v] = vm_expf((l[v] + (g ? g[v] : 0.0f)) * inv_tau - m2);
        S2 += z[v];
    }
    double ls = log(S1);
    *lse = (float)(m1 + ls);
    double ne = T1 / S1 - ls; /* sum q ln q = sum q (l - m1) - ln s1 */
    *negent = (float)ne;
    const float inv = (float)(1.0 / S2);
    for (int v = 0; v < V; v++) z[v] *= inv;
    return ne + log((double)V);
}

/* mean image value of output pixel (b, c, i): out = m->out[B,C',S,S] */
static inline float mean_pixel(int recon, float o) {
    float v = recon == DVAE_MSE ? o : ((1.0f / (1.0f + expf(-o))) - 0.1f) / 0.8f;
    return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
}

/* out[B,C',S,S] -> mean[B,C,S,S] */
static void mean_image(const dvae_model *m, float *mean, int B) {
    size_t SS = (size_t)m->S * m->S, CSS = (size_t)m->C * SS;
    for (int b = 0; b < B; b++) {
        const float *o = m->out + (size_t)b * m->Cout * SS; /* mu = the first C channels */
        float *y = mean + (size_t)b * CSS;
        for (size_t i = 0; i < CSS; i++) y[i] = mean_pixel(m->d.recon, o[i]);
    }
}

void dvae_forward(dvae_model *m, const param_table *pt, const float *x, const float *gumbel, float tau, int B,
                  dvae_sums *out) {
    check_batch(m, "dvae_forward", B);
    memset(out, 0, sizeof *out);
    m->fwd_B = 0;
    if (B == 0) return;
    if (!(tau > 0.0f)) beit_fatal(BEIT_EXIT_FAILURE, "dvae_forward: temperature %g is not positive", tau);
    encoder_forward(m, pt, x, B);
    PROF_BEGIN(PROF_SOFTMAX);
    size_t V = (size_t)m->V, R = (size_t)B * m->P;
    double kl = 0;
    for (size_t r = 0; r < R; r++)
        kl += row_softmax(m->z + r * V, m->lse + r, m->negent + r, m->logits + r * V, gumbel ? gumbel + r * V : NULL,
                          m->V, tau);
    PROF_END(PROF_SOFTMAX);
    dec_stem_forward(m, pt, B);
    decoder_forward(m, pt, B);

    /* reconstruction sums, per pixel in double (a few C*S*S values per image) */
    size_t SS = (size_t)m->S * m->S, CSS = (size_t)m->C * SS;
    double rec = 0, sq = 0;
    for (int b = 0; b < B; b++) {
        const float *o = m->out + (size_t)b * m->Cout * SS, *xb = x + (size_t)b * CSS;
        for (size_t i = 0; i < CSS; i++) {
            double xi = xb[i];
            if (m->d.recon == DVAE_MSE) {
                double e = (double)o[i] - xi;
                rec += e * e;
            } else {
                double xp = 0.8 * xi + 0.1, mu = o[i], lnb = o[CSS + i];
                double y = log(xp) - log1p(-xp);
                rec += LN2 + lnb + fabs(y - mu) * exp(-lnb) + log(xp * (1.0 - xp));
            }
            double e = (double)mean_pixel(m->d.recon, o[i]) - xi;
            sq += e * e;
        }
    }
    out->recon_sum = rec;
    out->kl_sum = kl;
    out->sq_err_sum = sq;
    out->pixels = (int64_t)B * (int64_t)CSS;
    out->positions = (int64_t)B * m->P;
    m->fwd_B = B;
    m->tau = tau;
}

/* ================================ backward ================================ */

/* dout [B,cout,side,side] of the block output -> dx [B,cin,side,side] (overwritten: the
 * block input's gradient), and the block's parameter gradients (+=). tmp [B,cout,...] is a
 * temporary; the three buffers are distinct. */
static void block_backward(dvae_model *m, param_table *pt, dvae_block *blk, const float *x, float *dout,
                           float *tmp, float *dx, int B) {
    size_t s2 = (size_t)blk->side * blk->side;
    size_t nin = (size_t)B * blk->cin * s2, nout = (size_t)B * blk->cout * s2;
    memset(tmp, 0, nout * sizeof(float));
    conv_bwd(m, pt, &blk->conv2, tmp, dout, blk->a2, B);
    relu_mask(tmp, blk->a2, nout); /* a2 > 0 iff conv1's output > 0 */
    memset(dx, 0, nin * sizeof(float));
    conv_bwd(m, pt, &blk->conv1, dx, tmp, blk->a1, B);
    relu_mask(dx, blk->a1, nin); /* a1 > 0 iff x > 0 */
    if (blk->idconv.w >= 0)
        conv_bwd(m, pt, &blk->idconv, dx, dout, x, B);
    else
        add_into(dx, dout, nout);
}

/* runs a block backward with g = {dout, tmp, dx} and rotates so that g[0] is dx afterwards */
static void block_backward_rot(dvae_model *m, param_table *pt, dvae_block *blk, const float *x, float **g, int B) {
    block_backward(m, pt, blk, x, g[0], g[1], g[2], B);
    float *d = g[2];
    g[2] = g[0];
    g[0] = d;
    params_grad_ready(pt, blk->idconv.w >= 0 ? blk->idconv.b : blk->conv1.b); /* the block's last tensor */
}

/* d/d out of the recon sum, times scale -> dout[B,C',S,S] */
static void recon_grad(const dvae_model *m, float *dout, float scale, int B) {
    size_t SS = (size_t)m->S * m->S, CSS = (size_t)m->C * SS;
    for (int b = 0; b < B; b++) {
        const float *o = m->out + (size_t)b * m->Cout * SS, *xb = m->x + (size_t)b * CSS;
        float *d = dout + (size_t)b * m->Cout * SS;
        for (size_t i = 0; i < CSS; i++) {
            if (m->d.recon == DVAE_MSE) {
                d[i] = scale * 2.0f * (o[i] - xb[i]);
            } else {
                double xp = 0.8 * (double)xb[i] + 0.1, mu = o[i], lnb = o[CSS + i];
                double y = log(xp) - log1p(-xp), r = y - mu, ib = exp(-lnb);
                double sgn = (r > 0) - (r < 0); /* torch's sign: 0 at the kink */
                d[i] = (float)(scale * (-sgn * ib));
                d[CSS + i] = (float)(scale * (1.0 - fabs(r) * ib));
            }
        }
    }
}

/* In place over one position's row of V: dz -> dlogits =
 *   (1/tau) z (dz - <dz, z>)                               (Gumbel softmax)
 * + kl_scale q (ln q - sum q ln q),  ln q = l - lse          (KL to the uniform prior) */
static void row_softmax_backward(float *d, const float *z, const float *l, float lse, float negent, int V, float tau,
                                 float kl_scale) {
    const int Vv = V - V % VM_LANES;
    vm_d dot = {0};
    for (int v = 0; v < Vv; v += VM_LANES) dot += vm_to_d(vm_load(d + v) * vm_load(z + v));
    double dt = vm_hsum(dot);
    for (int v = Vv; v < V; v++) dt += (double)(d[v] * z[v]);
    const float dotf = (float)dt, inv_tau = 1.0f / tau;
    for (int v = 0; v < Vv; v += VM_LANES) {
        vm_f lnq = vm_load(l + v) - lse, q = vm_exp(lnq);
        vm_store(d + v, inv_tau * vm_load(z + v) * (vm_load(d + v) - dotf) + kl_scale * q * (lnq - negent));
    }
    for (int v = Vv; v < V; v++) {
        float lnq = l[v] - lse, q = vm_expf(lnq);
        d[v] = inv_tau * z[v] * (d[v] - dotf) + kl_scale * q * (lnq - negent);
    }
}

void dvae_backward(dvae_model *m, param_table *pt, float recon_scale, float kl_scale, int B) {
    check_batch(m, "dvae_backward", B);
    if (B == 0) return;
    if (m->fwd_B != B)
        beit_fatal(BEIT_EXIT_FAILURE, "dvae_backward: batch %d but the saved forward has %d", B, m->fwd_B);
    int G = m->G, nb = m->d.blocks;
    const int *w = m->d.widths;
    float *g[3] = {m->gbuf[0], m->gbuf[1], m->gbuf[2]};
    size_t SS = (size_t)m->S * m->S;

    /* decoder output conv: g[1] = dout, g[0] = d(last decoder block output) */
    recon_grad(m, g[1], recon_scale, B);
    size_t n = (size_t)B * w[0] * SS;
    memset(g[0], 0, n * sizeof(float));
    conv_bwd(m, pt, &m->dec_out, g[0], g[1], m->d_aout, B);
    params_grad_ready(pt, m->dec_out.b); /* overlapped all-reduce hook (params.h) */
    relu_mask(g[0], m->d_aout, n);

    for (int i = G - 1; i >= 0; i--) {
        int gg = G - 1 - i;
        if (i < G - 1) {
            /* this group's output was upsampled into up[i+1]: g[0] holds d up[i+1] */
            int side = m->S >> gg;
            size_t nn = (size_t)B * w[gg] * side * side;
            memset(g[1], 0, nn * sizeof(float));
            upsample_nearest_backward(g[1], g[0], B, w[gg], side, side, 2);
            float *t = g[0];
            g[0] = g[1];
            g[1] = t;
        }
        for (int b = nb - 1; b >= 0; b--) {
            dvae_block *blk = &m->dec[i * nb + b];
            const float *x = b > 0 ? m->dec[i * nb + b - 1].out : (i > 0 ? m->up[i] : m->d_stem);
            block_backward_rot(m, pt, blk, x, g, B);
        }
    }
    /* decoder stem (1x1, V -> w) on rows: ds_rows = d d_stem [B*P, w]; dW[w, V] += ds_rows^T z;
     * dz[B*P, V] = ds_rows W (the stem's input gradient), then dlogits in place */
    int V = m->V, wl = w[G - 1], R = B * m->P;
    PROF_BEGIN(PROF_CONV);
    PROF_FLOPS(PROF_CONV, 4.0 * V * wl * (double)R);
    transpose_batched(m->ds_rows, g[0], B, wl, m->P);
    column_sums(params_grad(pt, m->dec_stem.b), m->ds_rows, (size_t)R, wl, m->acc);
    gemm(&gemm_fp32, GEMM_T, GEMM_N, wl, V, R, 1.0f, m->ds_rows, wl, m->z, V, 1.0f, params_grad(pt, m->dec_stem.w), V);
    gemm(&gemm_fp32, GEMM_N, GEMM_N, R, V, wl, 1.0f, m->ds_rows, wl, params_data(pt, m->dec_stem.w), V, 0.0f, m->dz, V);
    PROF_END(PROF_CONV);
    params_grad_ready(pt, m->dec_stem.b);
    PROF_BEGIN(PROF_SOFTMAX);
    for (size_t r = 0; r < (size_t)R; r++)
        row_softmax_backward(m->dz + r * V, m->z + r * V, m->logits + r * V, m->lse[r], m->negent[r], V, m->tau,
                             kl_scale);
    PROF_END(PROF_SOFTMAX);
    /* encoder output conv (1x1, w -> V): dW[V, w] += dz^T ea_rows; d e_aout = dz W */
    PROF_BEGIN(PROF_CONV);
    PROF_FLOPS(PROF_CONV, 4.0 * V * wl * (double)R);
    column_sums(params_grad(pt, m->enc_out.b), m->dz, (size_t)R, V, m->acc);
    gemm(&gemm_fp32, GEMM_T, GEMM_N, V, wl, R, 1.0f, m->dz, V, m->ea_rows, wl, 1.0f, params_grad(pt, m->enc_out.w), wl);
    gemm(&gemm_fp32, GEMM_N, GEMM_N, R, wl, V, 1.0f, m->dz, V, params_data(pt, m->enc_out.w), wl, 0.0f, m->ds_rows, wl);
    n = (size_t)R * wl;
    transpose_batched(g[0], m->ds_rows, B, m->P, wl);
    PROF_END(PROF_CONV);
    params_grad_ready(pt, m->enc_out.b);
    relu_mask(g[0], m->e_aout, n);

    for (int gg = G - 1; gg >= 0; gg--) {
        for (int b = nb - 1; b >= 0; b--) {
            dvae_block *blk = &m->enc[gg * nb + b];
            const float *x = b > 0 ? m->enc[gg * nb + b - 1].out : (gg > 0 ? m->pool[gg] : m->e_stem);
            block_backward_rot(m, pt, blk, x, g, B);
        }
        if (gg > 0) {
            int side = m->S >> (gg - 1);
            size_t nn = (size_t)B * w[gg - 1] * side * side;
            memset(g[1], 0, nn * sizeof(float));
            maxpool2d_backward(g[1], g[0], m->pool_idx[gg], B, w[gg - 1], side, side, 2, 2);
            float *t = g[0];
            g[0] = g[1];
            g[1] = t;
        }
    }
    conv_bwd(m, pt, &m->enc_stem, NULL, g[0], m->xin, B);
    params_grad_ready(pt, m->enc_stem.b);
}

/* ================================ inference ================================ */

void dvae_encode(dvae_model *m, const param_table *pt, const float *x, int B, int32_t *tokens,
                 float *logits_out) {
    check_batch(m, "dvae_encode", B);
    m->fwd_B = 0;
    if (B == 0) return;
    encoder_forward(m, pt, x, B);
    /* argmax over each position's row of V; strict > keeps the first maximum, as torch.argmax */
    size_t V = (size_t)m->V, R = (size_t)B * m->P;
    for (size_t r = 0; r < R; r++) {
        /* the maximum by vectors, then its first index (a branchy scalar argmax was 30% of
         * tokenization); rows holding NaN: the first maximum of the other values */
        const float *l = m->logits + r * V;
        float mx = vm_max(l, V);
        size_t v = 0;
        while (v < V && !(l[v] == mx)) v++;
        tokens[r] = v < V ? (int32_t)v : 0;
    }
    if (logits_out) /* [B, V, P] as torch's */
        for (int b = 0; b < B; b++)
            for (size_t v = 0; v < V; v++)
                for (int p = 0; p < m->P; p++)
                    logits_out[((size_t)b * V + v) * m->P + p] = m->logits[((size_t)b * m->P + p) * V + v];
}

static void decode_outputs(dvae_model *m, int B, float *stats_out, float *mean_out) {
    if (stats_out) memcpy(stats_out, m->out, (size_t)B * m->Cout * m->S * m->S * sizeof(float));
    if (mean_out) mean_image(m, mean_out, B);
}

void dvae_decode(dvae_model *m, const param_table *pt, const float *z, int B, float *stats_out,
                 float *mean_out) {
    check_batch(m, "dvae_decode", B);
    m->fwd_B = 0;
    if (B == 0) return;
    /* z [B, V, P] -> the token-major [B*P, V] */
    size_t V = (size_t)m->V;
    for (int b = 0; b < B; b++)
        for (size_t v = 0; v < V; v++)
            for (int p = 0; p < m->P; p++) m->z[((size_t)b * m->P + p) * V + v] = z[((size_t)b * V + v) * m->P + p];
    dec_stem_forward(m, pt, B);
    decoder_forward(m, pt, B);
    decode_outputs(m, B, stats_out, mean_out);
}

void dvae_decode_tokens(dvae_model *m, const param_table *pt, const int32_t *tokens, int B, float *mean_out) {
    check_batch(m, "dvae_decode_tokens", B);
    m->fwd_B = 0;
    if (B == 0) return;
    /* A 1x1 conv of a one-hot code is a column gather: d_stem[b,c,p] = W[c, t] + bias[c].
     * This replaces a [w, V] x [V, P] sgemm over a vector that is all zeros but one. */
    int V = m->V, P = m->P, Cs = m->dec_stem.cout;
    const float *W = params_data(pt, m->dec_stem.w), *bias = params_data(pt, m->dec_stem.b);
    for (int b = 0; b < B; b++) {
        const int32_t *t = tokens + (size_t)b * P;
        for (int p = 0; p < P; p++)
            if (t[p] < 0 || t[p] >= V)
                beit_fatal(BEIT_EXIT_MISMATCH, "dvae_decode_tokens: token %d at image %d position %d outside [0, %d)",
                           (int)t[p], b, p, V);
        float *hb = m->d_stem + (size_t)b * Cs * P;
        for (int c = 0; c < Cs; c++)
            for (int p = 0; p < P; p++) hb[(size_t)c * P + p] = W[(size_t)c * V + t[p]] + bias[c];
    }
    decoder_forward(m, pt, B);
    decode_outputs(m, B, NULL, mean_out);
}
