/* models_dvae: the dVAE tokenizer (include/beit/dvae.h) against PyTorch and finite differences.
 *
 *  (a) tests/fixtures/dvae.h5 from gen_dvae.py: tools/torchref/dvae.py's DVAE, evaluated in
 *      float64 on the same float32 parameters, input and Gumbel noise, B = 3:
 *        mse:    C=1, 8x8, widths [4,6,8], 1 block,  V=16, MSE,           tau 1.0, kl_weight 0.5
 *        ll:     C=3, 8x8, widths [5,7],   2 blocks, V=13, logit-Laplace, tau 0.7, kl_weight 2.0
 *      plus two tiny states for (c) (B = 1, 4x4, widths [2,3], V=5, tau 1, kl_weight 1):
 *        fd_mse: 1 block, MSE;   fd_ll: 2 blocks, logit-Laplace.
 *      The parameters are loaded into the table by state_dict name. Checked: loss, recon, kl
 *      and the squared error (rtol 1e-5), logits and decoder output (elementwise rtol 1e-4,
 *      atol 1e-5), EVERY parameter gradient (normwise t_close_norm 1e-4: gradient entries
 *      span orders of magnitude and some are exactly 0 behind ReLUs, so an elementwise
 *      relative bound would judge float32 rounding of the smallest entries; normwise bounds
 *      each entry by 1e-4 of the tensor's largest), argmax tokens exactly, the reconstruction
 *      from tokens (rtol 1e-4, atol 1e-5, against torch's float32 reconstruct()).
 *  (b) the table: names in the gradient-final order, written out by hand for the mse
 *      configuration; shapes; decay 1 for weights, 0 for biases; layer id -1.
 *  (c) finite differences of the loss through the whole model, every parameter tensor, on
 *      the fd_* states only. Why not on mse / ll: at a random init many ReLU inputs, max-pool
 *      window gaps and logit-Laplace |logit(x') - mu| lie within 1e-4..1e-5 of their kinks
 *      (hundreds of units), so any eps that beats float32 noise crosses kinks and the
 *      central difference is off by 1..30% although the gradients equal torch's to 1e-4. The
 *      generator searches tiny states whose every kink is >= 3e-3 away (in float64), where
 *      eps 1e-3 sees a smooth function.
 *  (d) gradients accumulate (+=): a second backward gives twice the reference.
 *  (e) init statistics and determinism; decode_tokens (gather) == decode of dense one-hots.
 */
#include "harness.h"

#include "beit/error.h"
#include "beit/dvae.h"
#include "beit/params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a[B, V, P] (torch's NCHW) -> a new [B, P, V] (the model's token-major V-wide layout) */
static float *to_token_major(const float *a, int B, int V, int P) {
    float *t = malloc((size_t)B * V * P * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V; v++)
            for (int p = 0; p < P; p++) t[((size_t)b * P + p) * V + v] = a[((size_t)b * V + v) * P + p];
    return t;
}

#define RTOL 1e-4
#define ATOL 1e-5
#define RTOL_SUM 1e-5
/* FD (on the fd_* states, see (c)): the objective is the float32 forward summed in double.
 * Its rounding noise (~2e-8 absolute, seen) over 2 eps = 2e-3 gives up to ~1e-5 absolute in
 * the finite difference; the floor 2e-3 turns rtol 1e-2 into an absolute 2e-5 for the
 * small directional derivatives (|<g,v>| down to ~1e-4), above that noise, while a wrong
 * gradient is off by O(|<g,v>|). Seen: the worst error over 8 direction seeds x 72 tensors
 * was within the bound; mutations (KL gradient x0.7, a missing idconv input gradient, the
 * logit-Laplace ln b gradient 10% off, a missing ReLU mask) each fail 15..34 of these checks.
 * eps 1e-3 moves activations by less than the 3e-3 kink margin of those states. */
#define FD_EPS 1e-3
#define FD_RTOL 1e-2
#define FD_FLOOR 2e-3
#define FD_DIRS 3

static int close_d(const char *name, double got, double want, double rtol) {
    double err = fabs(got - want);
    int ok = err <= rtol * fabs(want) + 1e-12;
    if (!ok) t_diag("%s: got %.10g want %.10g", name, got, want);
    return t_ok(ok, "%s: %.8g vs torch %.8g (rtol %.0e)", name, got, want, rtol);
}

typedef struct {
    fixture *fx;
    const char *cfg;
    dvae_dims d;
    dvae_model m;
    param_table pt;
    int B;
    float *x, *gumbel, tau, klw;
    float rs, ks; /* recon_scale, kl_scale */
} setup;

static void fx_path(char *buf, size_t n, const char *cfg, const char *name) { snprintf(buf, n, "%s/%s", cfg, name); }

static float *fx_sized(setup *s, const char *name, size_t want) {
    char path[1024];
    fx_path(path, sizeof path, s->cfg, name);
    size_t n = 0;
    float *x = fx_floats(s->fx, path, &n);
    if (n != want) {
        t_ok(0, "fixture %s has %zu elements, the model says %zu", path, n, want);
        exit(t_done());
    }
    return x;
}

static double fx_sc(setup *s, const char *name) {
    char path[256];
    fx_path(path, sizeof path, s->cfg, name);
    return fx_scalar(s->fx, path);
}

/* build the model from the fixture's dims and load every parameter by name */
static void load(setup *s, fixture *fx, const char *cfg, int max_batch) {
    memset(s, 0, sizeof *s);
    s->fx = fx;
    s->cfg = cfg;
    char path[256];
    size_t n;
    fx_path(path, sizeof path, cfg, "dims");
    int64_t *dims = fx_ints(fx, path, &n);
    fx_path(path, sizeof path, cfg, "widths");
    size_t nw;
    int64_t *w = fx_ints(fx, path, &nw);
    s->d = (dvae_dims){.in_chans = (int)dims[0], .image_size = (int)dims[1], .vocab = (int)dims[2],
                       .ngroups = (int)dims[3], .blocks = (int)dims[4], .recon = (int)dims[5]};
    for (size_t i = 0; i < nw; i++) s->d.widths[i] = (int)w[i];
    s->B = (int)dims[6];
    free(dims);
    free(w);
    params_init(&s->pt);
    dvae_build(&s->m, &s->pt, &s->d);
    params_alloc(&s->pt);
    int missing = 0, badsize = 0;
    for (int i = 0; i < s->pt.n; i++) {
        char pname[256];
        snprintf(pname, sizeof pname, "%s/param/%s", cfg, s->pt.t[i].name);
        if (!fx_has(fx, pname)) {
            t_diag("%s: fixture has no %s", cfg, pname);
            missing++;
            continue;
        }
        float *v = fx_floats(fx, pname, &n);
        if (n != s->pt.t[i].numel) {
            t_diag("%s: %s has %zu elements in torch, %zu in C", cfg, s->pt.t[i].name, n, s->pt.t[i].numel);
            badsize++;
        } else {
            memcpy(params_data(&s->pt, i), v, n * sizeof(float));
        }
        free(v);
    }
    int nfx = (int)fx_sc(s, "nparams");
    t_ok(missing == 0 && badsize == 0 && nfx == s->pt.n,
         "%s: the %d C tensors are torch's %d state_dict tensors (names, sizes)", cfg, s->pt.n, nfx);
    dvae_alloc(&s->m, max_batch);
    size_t SS = (size_t)s->m.S * s->m.S;
    s->x = fx_sized(s, "x", (size_t)s->B * s->m.C * SS);
    /* torch's noise is [B, V, h, h]; dvae_forward takes it token-major, [B, h, h, V] */
    float *g = fx_sized(s, "gumbel", (size_t)s->B * s->m.V * s->m.P);
    s->gumbel = to_token_major(g, s->B, s->m.V, s->m.P);
    free(g);
    s->tau = (float)fx_sc(s, "tau");
    s->klw = (float)fx_sc(s, "kl_weight");
    s->rs = (float)(1.0 / ((double)s->B * s->m.C * SS));
    s->ks = (float)(s->klw / ((double)s->B * s->m.P));
}

static void unload(setup *s) {
    dvae_free(&s->m);
    params_free(&s->pt);
    free(s->x);
    free(s->gumbel);
}

static double fd_loss(void *ctx) {
    setup *s = ctx;
    dvae_sums r;
    dvae_forward(&s->m, &s->pt, s->x, s->gumbel, s->tau, s->B, &r);
    return s->rs * r.recon_sum + s->ks * r.kl_sum;
}

static void check_against_torch(fixture *fx, const char *cfg, int do_fd) {
    setup s;
    load(&s, fx, cfg, 4); /* max_batch 4 > B = 3: buffers larger than the batch */
    dvae_model *m = &s.m;
    size_t SS = (size_t)m->S * m->S, VP = (size_t)m->V * m->P;
    char name[256];

    /* ---- forward ---- */
    dvae_sums r;
    dvae_forward(m, &s.pt, s.x, s.gumbel, s.tau, s.B, &r);
    t_ok(r.pixels == (int64_t)s.B * m->C * (int64_t)SS && r.positions == (int64_t)s.B * m->P,
         "%s: counts %lld pixels, %lld positions", cfg, (long long)r.pixels, (long long)r.positions);
    double recon = r.recon_sum / (double)r.pixels, kl = r.kl_sum / (double)r.positions;
    snprintf(name, sizeof name, "%s: recon", cfg);
    close_d(name, recon, fx_sc(&s, "recon"), RTOL_SUM);
    snprintf(name, sizeof name, "%s: kl", cfg);
    close_d(name, kl, fx_sc(&s, "kl"), RTOL_SUM);
    snprintf(name, sizeof name, "%s: loss = rs*recon_sum + ks*kl_sum", cfg);
    close_d(name, s.rs * r.recon_sum + s.ks * r.kl_sum, fx_sc(&s, "loss"), RTOL_SUM);
    snprintf(name, sizeof name, "%s: squared error of the mean output", cfg);
    close_d(name, r.sq_err_sum, fx_sc(&s, "sq_err"), RTOL_SUM);
    float *want = fx_sized(&s, "logits", (size_t)s.B * VP);
    float *lw = to_token_major(want, s.B, m->V, m->P);
    snprintf(name, sizeof name, "%s: logits (the model's token-major [B*P, V])", cfg);
    t_close(name, m->logits, lw, (size_t)s.B * VP, RTOL, ATOL);
    free(lw);
    free(want);
    want = fx_sized(&s, "out", (size_t)s.B * m->Cout * SS);
    snprintf(name, sizeof name, "%s: decoder output", cfg);
    t_close(name, m->out, want, (size_t)s.B * m->Cout * SS, RTOL, ATOL);
    free(want);

    /* ---- backward: every parameter gradient ---- */
    params_zero_grad(&s.pt);
    dvae_backward(m, &s.pt, s.rs, s.ks, s.B);
    float *grad = xalloc_floats(s.pt.total), *gref = xalloc_floats(s.pt.total);
    memcpy(grad, s.pt.grad, s.pt.total * sizeof(float));
    for (int i = 0; i < s.pt.n; i++) {
        char path[256];
        snprintf(path, sizeof path, "grad/%s", s.pt.t[i].name);
        float *g = fx_sized(&s, path, s.pt.t[i].numel);
        memcpy(gref + s.pt.t[i].offset, g, s.pt.t[i].numel * sizeof(float));
        free(g);
        snprintf(name, sizeof name, "%s: d %s", cfg, s.pt.t[i].name);
        t_close_norm(name, params_grad(&s.pt, i), gref + s.pt.t[i].offset, s.pt.t[i].numel, RTOL);
    }

    /* ---- gradients accumulate ---- */
    dvae_forward(m, &s.pt, s.x, s.gumbel, s.tau, s.B, &r);
    dvae_backward(m, &s.pt, s.rs, s.ks, s.B);
    float *g2 = xalloc_floats(s.pt.total);
    for (size_t i = 0; i < s.pt.total; i++) g2[i] = 2.0f * gref[i];
    snprintf(name, sizeof name, "%s: a second backward accumulates (2x torch, all %zu gradient floats)", cfg,
             s.pt.total);
    t_close_norm(name, s.pt.grad, g2, s.pt.total, RTOL);
    free(g2);

    /* ---- finite differences, every tensor (only on the kink-free fd_* states) ---- */
    if (do_fd) { /* a tensor with an all-zero gradient would compare 0 with 0: none may be dead */
        int dead = 0;
        for (int i = 0; i < s.pt.n; i++) {
            int live = 0;
            for (size_t j = 0; j < s.pt.t[i].numel && !live; j++) live = grad[s.pt.t[i].offset + j] != 0.0f;
            if (!live) t_diag("%s: %s has an all-zero gradient", cfg, s.pt.t[i].name);
            dead += !live;
        }
        t_ok(dead == 0, "%s: every one of the %d tensors the FD checks cover has a non-zero gradient (%d dead)", cfg,
             s.pt.n, dead);
    }
    for (int i = 0; do_fd && i < s.pt.n; i++) {
        snprintf(name, sizeof name, "%s: FD of the loss wrt %s (tau %.1f, eps %.0e, rtol %.0e)", cfg, s.pt.t[i].name,
                 s.tau, FD_EPS, FD_RTOL);
        t_fd_check(name, fd_loss, &s, params_data(&s.pt, i), grad + s.pt.t[i].offset, s.pt.t[i].numel, FD_EPS,
                   FD_RTOL, FD_FLOOR, FD_DIRS, 1000 + (uint64_t)i);
    }

    /* ---- inference: tokens, reconstruction, gather == dense ---- */
    int32_t *tok = xmalloc((size_t)s.B * m->P * sizeof(int32_t));
    float *lg = xalloc_floats((size_t)s.B * VP);
    dvae_encode(m, &s.pt, s.x, s.B, tok, lg);
    char path[256];
    fx_path(path, sizeof path, cfg, "tokens");
    size_t nt;
    int64_t *tref = fx_ints(fx, path, &nt);
    int same = nt == (size_t)s.B * m->P;
    for (size_t i = 0; same && i < nt; i++) same = tok[i] == tref[i];
    t_ok(same, "%s: argmax tokens equal torch's (%zu positions)", cfg, nt);
    want = fx_sized(&s, "logits", (size_t)s.B * VP);
    snprintf(name, sizeof name, "%s: dvae_encode logits", cfg);
    t_close(name, lg, want, (size_t)s.B * VP, RTOL, ATOL);
    free(want);

    size_t nimg = (size_t)s.B * m->C * SS;
    float *rec = xalloc_floats(nimg), *rec_dense = xalloc_floats(nimg);
    dvae_decode_tokens(m, &s.pt, tok, s.B, rec);
    want = fx_sized(&s, "recon_img", nimg);
    snprintf(name, sizeof name, "%s: decode_tokens == torch reconstruct(tokens)", cfg);
    t_close(name, rec, want, nimg, RTOL, ATOL);
    free(want);
    /* the dense path: one-hot z through the 1x1 stem conv (sgemm). Adding exact zeros gives
     * the same sums, so the two should agree to rounding of the bias add at most. */
    float *z = xalloc_floats((size_t)s.B * VP);
    for (int b = 0; b < s.B; b++)
        for (int p = 0; p < m->P; p++) z[(size_t)b * VP + (size_t)tok[b * m->P + p] * m->P + p] = 1.0f;
    dvae_decode(m, &s.pt, z, s.B, NULL, rec_dense);
    snprintf(name, sizeof name, "%s: decode_tokens (column gather) == decode of dense one-hots", cfg);
    t_close(name, rec, rec_dense, nimg, 1e-6, 1e-7);

    /* an empty batch is a no-op with zero counts */
    dvae_forward(m, &s.pt, s.x, s.gumbel, s.tau, 0, &r);
    t_ok(r.pixels == 0 && r.positions == 0 && r.recon_sum == 0 && r.kl_sum == 0, "%s: B = 0 gives zero sums", cfg);

    free(z);
    free(rec);
    free(rec_dense);
    free(tok);
    free(lg);
    free(tref);
    free(grad);
    free(gref);
    unload(&s);
}

/* (b) the table order for the mse configuration, written out from the rule "gradient-final
 * order": decoder.out; decoder groups 2, 1, 0 (group i runs at widths[2-i]: 4, 6, 8 wide, so
 * groups 2 and 1 change width and have an idconv); decoder.stem; encoder.out; encoder groups
 * 2, 1, 0 (groups 2 and 1 change width); encoder.stem. Within a block conv2, conv1, idconv. */
static void check_order(void) {
    static const char *convs[] = {
        "decoder.out",
        "decoder.groups.2.0.conv2", "decoder.groups.2.0.conv1", "decoder.groups.2.0.idconv",
        "decoder.groups.1.0.conv2", "decoder.groups.1.0.conv1", "decoder.groups.1.0.idconv",
        "decoder.groups.0.0.conv2", "decoder.groups.0.0.conv1",
        "decoder.stem",
        "encoder.out",
        "encoder.groups.2.0.conv2", "encoder.groups.2.0.conv1", "encoder.groups.2.0.idconv",
        "encoder.groups.1.0.conv2", "encoder.groups.1.0.conv1", "encoder.groups.1.0.idconv",
        "encoder.groups.0.0.conv2", "encoder.groups.0.0.conv1",
        "encoder.stem",
    };
    /* shapes [cout, cin, k] of each, by hand from torchref (C=1, widths 4,6,8, V=16) */
    static const int shp[][3] = {
        {1, 4, 3},
        {4, 4, 3}, {4, 6, 3}, {4, 6, 1},
        {6, 6, 3}, {6, 8, 3}, {6, 8, 1},
        {8, 8, 3}, {8, 8, 3},
        {8, 16, 1},
        {16, 8, 1},
        {8, 8, 3}, {8, 6, 3}, {8, 6, 1},
        {6, 6, 3}, {6, 4, 3}, {6, 4, 1},
        {4, 4, 3}, {4, 4, 3},
        {4, 1, 3},
    };
    int nconv = (int)(sizeof convs / sizeof convs[0]);
    dvae_dims d = {.in_chans = 1, .image_size = 8, .vocab = 16, .ngroups = 3, .widths = {4, 6, 8}, .blocks = 1,
                   .recon = DVAE_MSE};
    param_table pt;
    dvae_model m;
    params_init(&pt);
    dvae_build(&m, &pt, &d);
    int ok = pt.n == 2 * nconv, flags = 1, shapes = 1;
    for (int c = 0; ok && c < nconv; c++) {
        char wn[128], bn[128];
        snprintf(wn, sizeof wn, "%s.weight", convs[c]);
        snprintf(bn, sizeof bn, "%s.bias", convs[c]);
        if (strcmp(pt.t[2 * c].name, wn) || strcmp(pt.t[2 * c + 1].name, bn)) {
            t_diag("tensor %d/%d: %s, %s; want %s, %s", 2 * c, 2 * c + 1, pt.t[2 * c].name, pt.t[2 * c + 1].name, wn,
                   bn);
            ok = 0;
        }
        const param_info *w = &pt.t[2 * c], *b = &pt.t[2 * c + 1];
        if (w->decay != 1 || b->decay != 0 || w->layer_id != -1 || b->layer_id != -1) flags = 0;
        if (w->ndim != 4 || w->shape[0] != shp[c][0] || w->shape[1] != shp[c][1] || w->shape[2] != shp[c][2] ||
            w->shape[3] != shp[c][2] || b->ndim != 1 || b->shape[0] != shp[c][0]) {
            t_diag("%s: shape mismatch", convs[c]);
            shapes = 0;
        }
    }
    t_ok(ok, "table order: %d tensors, decoder.out first ... encoder.stem last, as written out by hand", pt.n);
    t_ok(ok && shapes, "table shapes: weights [cout,cin,k,k], biases [cout] as torch's");
    t_ok(ok && flags, "table flags: weight decay on weights only, layer id -1");
    dvae_free(&m);
    params_free(&pt);
}

/* (e) PyTorch's default Conv2d init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias */
static void check_init(void) {
    dvae_dims d = {.in_chans = 3, .image_size = 16, .vocab = 64, .ngroups = 2, .widths = {16, 32}, .blocks = 1,
                   .recon = DVAE_LOGIT_LAPLACE};
    param_table a, b, c;
    dvae_model ma, mb, mc;
    params_init(&a);
    params_init(&b);
    params_init(&c);
    dvae_build(&ma, &a, &d);
    dvae_build(&mb, &b, &d);
    dvae_build(&mc, &c, &d);
    params_alloc(&a);
    params_alloc(&b);
    params_alloc(&c);
    dvae_init(&ma, &a, 7);
    dvae_init(&mb, &b, 7);
    dvae_init(&mc, &c, 8);
    int in_bound = 1, stats = 1, nstat = 0;
    for (int i = 0; i < a.n; i++) {
        const param_info *t = &a.t[i];
        /* fan_in from the weight of the same conv (a bias follows its weight in the table) */
        const param_info *wt = t->ndim == 4 ? t : &a.t[i - 1];
        double fan_in = (double)wt->shape[1] * wt->shape[2] * wt->shape[3];
        double bound = 1.0 / sqrt(fan_in);
        const float *p = params_data(&a, i);
        double s = 0, s2 = 0, mx = 0;
        for (size_t k = 0; k < t->numel; k++) {
            s += p[k];
            s2 += (double)p[k] * p[k];
            if (fabs(p[k]) > mx) mx = fabs(p[k]);
        }
        if (mx > bound * (1 + 1e-6)) {
            t_diag("%s: max |w| %.6g > bound %.6g", t->name, mx, bound);
            in_bound = 0;
        }
        if (t->numel >= 1000) { /* U(-b, b): mean 0, std b / sqrt 3; the estimate's sd ~ 0.03 here */
            nstat++;
            double mean = s / t->numel, sd = sqrt(s2 / t->numel - mean * mean);
            if (fabs(mean) > 0.1 * bound || fabs(sd / (bound / sqrt(3.0)) - 1) > 0.1) {
                t_diag("%s: mean %.4g sd %.4g, want 0, %.4g", t->name, mean, sd, bound / sqrt(3.0));
                stats = 0;
            }
        }
    }
    t_ok(in_bound, "init: every weight and bias within +-1/sqrt(fan_in)");
    t_ok(stats && nstat >= 5, "init: mean ~0 and sd ~bound/sqrt(3) for the %d tensors with >= 1000 entries", nstat);
    t_ok(!memcmp(a.data, b.data, a.total * sizeof(float)), "init: deterministic for a seed");
    t_ok(memcmp(a.data, c.data, a.total * sizeof(float)) != 0, "init: another seed gives other values");
    /* two tensors of one shape draw from different streams */
    int i1 = params_find(&a, "encoder.groups.0.0.conv1.weight"), i2 = params_find(&a, "encoder.groups.0.0.conv2.weight");
    t_ok(i1 >= 0 && i2 >= 0 && memcmp(params_data(&a, i1), params_data(&a, i2), a.t[i1].numel * sizeof(float)),
         "init: same-shape tensors differ (one stream per tensor)");
    /* dvae.codebook_init unit: decoder.stem at U(+-1) (x sqrt(V)), every other tensor as before */
    dvae_model mu;
    param_table u;
    dvae_dims du = d;
    du.codebook_unit = 1;
    params_init(&u);
    dvae_build(&mu, &u, &du);
    params_alloc(&u);
    dvae_init(&mu, &u, 7);
    int js = params_find(&u, "decoder.stem.weight"), same = 1, scaled = 1;
    for (int i = 0; i < u.n; i++) {
        const float *p = params_data(&u, i), *q = params_data(&a, i);
        for (size_t k = 0; k < u.t[i].numel; k++) {
            if (i != js) same &= p[k] == q[k];
            else scaled &= fabsf(p[k] - q[k] * 8.0f) <= 1e-6f && fabsf(p[k]) <= 1.0f + 1e-6f;
        }
    }
    t_ok(js >= 0 && same && scaled, "codebook_init unit: decoder.stem = the fan_in init x sqrt(V = 64), within +-1; "
                                    "every other tensor unchanged");
    dvae_free(&mu);
    params_free(&u);
    dvae_free(&ma);
    dvae_free(&mb);
    dvae_free(&mc);
    params_free(&a);
    params_free(&b);
    params_free(&c);
}

int main(void) {
    fixture *fx = fx_open("dvae.h5");
    check_order();
    check_against_torch(fx, "mse", 0);
    check_against_torch(fx, "ll", 0);
    check_against_torch(fx, "fd_mse", 1);
    check_against_torch(fx, "fd_ll", 1);
    check_init();
    fx_close(fx);
    return t_done();
}
