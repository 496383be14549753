/* nn_dense: the dense / transformer kernels of include/beit/nn.h.
 *
 * For every op: (a) forward and backward against PyTorch autograd (tests/fixtures/nn.h5,
 * written by tests/fixtures/gen_nn.py; float64 references from the same float32 inputs),
 * elementwise |got - want| <= 1e-5 + 1e-4 |want|; (b) directional finite differences of
 * L = sum(out * r) for every input and parameter gradient (eps 1e-2, rtol 1e-2, 3 directions).
 * Gradient buffers start at 0.25 (not 0) so the checks also prove backward ACCUMULATES. */
#include "beit/error.h"
#include "beit/gemm.h"
#include "beit/nn.h"
#include "beit/rng.h"
#include "harness.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL 1e-5
#define FD_EPS 1e-2
#define FD_RTOL 1e-2
#define FD_FLOOR 1e-3
#define FD_DIRS 3
#define ACC0 0.25f

static fixture *FX;

/* ---- small allocation registry so every test frees what it used (ASan builds) ---- */
static void *g_ptrs[256];
static int g_nptrs;
static void *keep(void *p) {
    if (g_nptrs == 256) beit_fatal(BEIT_EXIT_FAILURE, "test registry full");
    return g_ptrs[g_nptrs++] = p;
}
static void release(void) {
    while (g_nptrs) free(g_ptrs[--g_nptrs]);
}

static float *FL(const char *name, size_t *n) { return keep(fx_floats(FX, name, n)); }
static int *I32(const char *name, size_t *n) {
    size_t m;
    int64_t *v = fx_ints(FX, name, &m);
    int *o = keep(xmalloc(m * sizeof(int) + 4));
    for (size_t i = 0; i < m; i++) o[i] = (int)v[i];
    free(v);
    if (n) *n = m;
    return o;
}
static float *zeros(size_t n) { return keep(xcalloc(n + 1, sizeof(float))); }
static float *gbuf(size_t n) {
    float *g = keep(xmalloc((n + 1) * sizeof(float)));
    for (size_t i = 0; i < n; i++) g[i] = ACC0;
    return g;
}
static void strip(float *g, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] -= ACC0;
}
static int close_t(const char *name, const float *got, const float *want, size_t n) {
    return t_close(name, got, want, n, RTOL, ATOL);
}
static int fd(const char *name, double (*f)(void *), void *ctx, float *x, const float *g, size_t n,
              uint64_t seed) {
    return t_fd_check(name, f, ctx, x, g, n, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, seed);
}

/* ================================ gemm ================================ */
/* gemm() in fp32 is the direct cblas_sgemm, bit for bit, for every transpose pair with
 * leading dimensions wider than the matrices; gemm_batched() is the loop of gemm() calls
 * (a stride of 0 repeats an operand; beta = 1 accumulates into each C). */
static float *uniform_buf(size_t n, uint64_t seed) {
    float *p = keep(xmalloc((n + 1) * sizeof(float)));
    rng_t r = rng_stream(seed, RNG_TEST, 11, 0);
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform(&r) - 0.5f;
    return p;
}
static void test_gemm(void) {
    const int M = 7, N = 9, K = 5, ld = 12, batch = 3;
    const size_t sz = (size_t)ld * ld, strideA = sz, strideC = sz;
    float *A = uniform_buf(batch * sz, 1), *B = uniform_buf(sz, 2), *C0 = uniform_buf(batch * sz, 3);
    float *want = keep(xmalloc(batch * sz * sizeof(float))), *got = keep(xmalloc(batch * sz * sizeof(float)));
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(want, C0, sz * sizeof(float));
            memcpy(got, C0, sz * sizeof(float));
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                        0.75f, A, ld, B, ld, 0.5f, want, ld);
            gemm(&gemm_fp32, ta ? GEMM_T : GEMM_N, tb ? GEMM_T : GEMM_N, M, N, K, 0.75f, A, ld, B, ld, 0.5f, got,
                 ld);
            t_ok(!memcmp(want, got, sz * sizeof(float)), "gemm fp32 = cblas_sgemm (ta=%d tb=%d)", ta, tb);
        }
    memcpy(want, C0, batch * sz * sizeof(float));
    memcpy(got, C0, batch * sz * sizeof(float));
    for (int i = 0; i < batch; i++)
        gemm(&gemm_fp32, GEMM_N, GEMM_T, M, N, K, 1.0f, A + i * strideA, ld, B, ld, 1.0f, want + i * strideC, ld);
    gemm_batched(&gemm_fp32, GEMM_N, GEMM_T, M, N, K, 1.0f, A, ld, strideA, B, ld, 0, 1.0f, got, ld, strideC,
                 batch);
    t_ok(!memcmp(want, got, batch * sz * sizeof(float)), "gemm_batched = its loop of gemm calls");
    release();
}

/* ================================ linear ================================ */
typedef struct {
    float *x, *w, *b, *out, *r;
    int N, C, OC;
} lin_ctx;
static double lin_obj(void *p) {
    lin_ctx *c = p;
    linear_forward(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return t_dot(c->out, c->r, (size_t)c->N * c->OC);
}
static void test_linear(void) {
    const int N = 7, C = 12, OC = 9;
    lin_ctx c = {FL("linear/x", NULL), FL("linear/w", NULL), FL("linear/b", NULL), zeros(N * OC),
                 FL("linear/r", NULL), N, C, OC};
    linear_forward(c.out, c.x, c.w, c.b, N, C, OC);
    close_t("linear out vs torch", c.out, FL("linear/out", NULL), N * OC);
    float *dx = gbuf(N * C), *dw = gbuf(OC * C), *db = gbuf(OC);
    linear_backward(dx, dw, db, c.r, c.x, c.w, N, C, OC);
    strip(dx, N * C), strip(dw, OC * C), strip(db, OC);
    close_t("linear dx vs torch", dx, FL("linear/dx", NULL), N * C);
    close_t("linear dweight vs torch", dw, FL("linear/dw", NULL), OC * C);
    close_t("linear dbias vs torch", db, FL("linear/db", NULL), OC);
    fd("linear dx", lin_obj, &c, c.x, dx, N * C, 11);
    fd("linear dweight", lin_obj, &c, c.w, dw, OC * C, 12);
    fd("linear dbias", lin_obj, &c, c.b, db, OC, 13);

    /* no bias; and NULL gradients are skipped */
    linear_forward(c.out, c.x, c.w, NULL, N, C, OC);
    close_t("linear out (bias NULL) vs torch", c.out, FL("linear/out_nobias", NULL), N * OC);
    float *dw2 = zeros(OC * C);
    linear_backward(NULL, dw2, NULL, c.r, c.x, c.w, N, C, OC);
    close_t("linear dweight alone (dinp, dbias NULL) vs torch", dw2, FL("linear/dw", NULL), OC * C);
    /* N = 0 (a rank without masked tokens) must be a no-op */
    linear_forward(NULL, NULL, c.w, c.b, 0, C, OC);
    linear_backward(NULL, dw2, db, NULL, NULL, c.w, 0, C, OC);
    close_t("linear N=0 leaves gradients untouched", dw2, FL("linear/dw", NULL), OC * C);
    release();
}

/* ================================ layernorm ================================ */
typedef struct {
    float *x, *w, *b, *out, *mean, *rstd, *r;
    int N, C;
} ln_ctx;
static double ln_obj(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-6f);
    return t_dot(c->out, c->r, (size_t)c->N * c->C);
}
/* prefix "layernorm": a row of 13 (the scalar tail of vmath.h's 16 lanes only);
 * "layernorm_wide": rows of 40 (two vectors and a tail) */
static void test_layernorm(const char *prefix, int N, int C) {
    char k[6][64], nm[128];
    const char *names[6] = {"x", "w", "b", "r", "out", "dx"};
    for (int i = 0; i < 6; i++) snprintf(k[i], sizeof k[i], "%s/%s", prefix, names[i]);
    ln_ctx c = {FL(k[0], NULL), FL(k[1], NULL), FL(k[2], NULL), zeros((size_t)N * C), zeros(N), zeros(N),
                FL(k[3], NULL), N, C};
    layernorm_forward(c.out, c.mean, c.rstd, c.x, c.w, c.b, N, C, 1e-6f);
    snprintf(nm, sizeof nm, "%s out [%d,%d] (eps 1e-6) vs torch", prefix, N, C);
    close_t(nm, c.out, FL(k[4], NULL), (size_t)N * C);
    float *dx = gbuf((size_t)N * C), *dw = gbuf(C), *db = gbuf(C);
    layernorm_backward(dx, dw, db, c.r, c.x, c.w, c.mean, c.rstd, N, C);
    strip(dx, (size_t)N * C), strip(dw, C), strip(db, C);
    char kw[64], kb[64];
    snprintf(kw, sizeof kw, "%s/dw", prefix);
    snprintf(kb, sizeof kb, "%s/db", prefix);
    snprintf(nm, sizeof nm, "%s dx vs torch", prefix);
    close_t(nm, dx, FL(k[5], NULL), (size_t)N * C);
    snprintf(nm, sizeof nm, "%s dweight vs torch", prefix);
    close_t(nm, dw, FL(kw, NULL), C);
    snprintf(nm, sizeof nm, "%s dbias vs torch", prefix);
    close_t(nm, db, FL(kb, NULL), C);
    snprintf(nm, sizeof nm, "%s dx", prefix);
    fd(nm, ln_obj, &c, c.x, dx, (size_t)N * C, 21);
    snprintf(nm, sizeof nm, "%s dweight", prefix);
    fd(nm, ln_obj, &c, c.w, dw, C, 22);
    snprintf(nm, sizeof nm, "%s dbias", prefix);
    fd(nm, ln_obj, &c, c.b, db, C, 23);
    release();
}

/* ================================ activations ================================ */
typedef struct {
    float *x, *out, *r;
    int kind; /* 0 gelu, 1 relu, 2 softmax */
    int N, L;
} act_ctx;
static double act_obj(void *p) {
    act_ctx *c = p;
    size_t n = (size_t)c->N * c->L;
    if (c->kind == 0) gelu_forward(c->out, c->x, n);
    else if (c->kind == 1) relu_forward(c->out, c->x, n);
    else softmax_forward(c->out, c->x, c->N, c->L);
    return t_dot(c->out, c->r, n);
}
static void test_activations(void) {
    const char *names[3] = {"gelu", "relu", "softmax"};
    for (int kind = 0; kind < 3; kind++) {
        char key[64], nm[96];
        size_t n;
        snprintf(key, sizeof key, "%s/x", names[kind]);
        act_ctx c = {FL(key, &n), NULL, NULL, kind, 1, 0};
        c.L = (int)n;
        if (kind == 2) c.N = 6, c.L = (int)n / 6;
        c.out = zeros(n);
        snprintf(key, sizeof key, "%s/r", names[kind]);
        c.r = FL(key, NULL);
        act_obj(&c);
        snprintf(key, sizeof key, "%s/out", names[kind]);
        snprintf(nm, sizeof nm, "%s out vs torch", names[kind]);
        close_t(nm, c.out, FL(key, NULL), n);
        float *dx = gbuf(n);
        if (kind == 0) gelu_backward(dx, c.r, c.x, n);
        else if (kind == 1) relu_backward(dx, c.r, c.x, n);
        else softmax_backward(dx, c.r, c.out, c.N, c.L);
        strip(dx, n);
        snprintf(key, sizeof key, "%s/dx", names[kind]);
        snprintf(nm, sizeof nm, "%s dx vs torch", names[kind]);
        close_t(nm, dx, FL(key, NULL), n);
        snprintf(nm, sizeof nm, "%s dx%s", names[kind], kind == 1 ? " (inputs |x| >= 0.1, away from the kink)" : "");
        fd(nm, act_obj, &c, c.x, dx, n, 30 + (uint64_t)kind);
        if (kind == 2) {
            double worst = 0;
            for (int i = 0; i < c.N; i++) {
                double s = 0;
                for (int j = 0; j < c.L; j++) s += c.out[i * c.L + j];
                worst = fmax(worst, fabs(s - 1));
            }
            t_ok(worst < 1e-6, "softmax rows sum to 1 (worst |sum-1| = %.1e < 1e-6)", worst);
            /* in place */
            float *y = zeros(n);
            memcpy(y, c.x, n * sizeof(float));
            softmax_forward(y, y, c.N, c.L);
            close_t("softmax in place (out == inp) vs torch", y, FL("softmax/out", NULL), n);
        }
    }
    release();
}

/* ================================ attention ================================ */
typedef struct {
    float *qkv, *bias, *att, *out, *r;
    int B, T, C, NH;
} att_ctx;
static double att_obj(void *p) {
    att_ctx *c = p;
    attention_forward(c->out, c->att, c->qkv, c->bias, c->B, c->T, c->C, c->NH, 0.5f);
    return t_dot(c->out, c->r, (size_t)c->B * c->T * c->C);
}
static void att_rows_sum(const char *name, const float *att, int rows, int T) {
    double worst = 0;
    int nonneg = 1;
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < T; j++) {
            s += att[(size_t)i * T + j];
            nonneg &= att[(size_t)i * T + j] >= 0;
        }
        worst = fmax(worst, fabs(s - 1));
    }
    t_ok(worst < 1e-6 && nonneg, "%s: every row of att is >= 0 and sums to 1 (worst |sum-1| = %.1e < 1e-6)",
         name, worst);
}
static void test_attention(void) {
    const int B = 2, T = 5, C = 12, NH = 3; /* hd = 4, scale = 4^-0.5 = 0.5 */
    const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * NH * T * T,
                 nb = (size_t)NH * T * T;
    att_ctx c = {FL("attention/qkv", NULL), FL("attention/bias", NULL), zeros(natt), zeros(nout),
                 FL("attention/r", NULL), B, T, C, NH};
    att_obj(&c);
    close_t("attention out vs torch", c.out, FL("attention/out", NULL), nout);
    close_t("attention att (probabilities) vs torch", c.att, FL("attention/att", NULL), natt);
    att_rows_sum("attention", c.att, B * NH * T, T);
    float *scratch = zeros(attention_scratch_size(B, T, C, NH));
    float *dqkv = gbuf(nqkv), *dbias = gbuf(nb);
    attention_backward(dqkv, dbias, c.r, c.qkv, c.att, scratch, B, T, C, NH, 0.5f);
    strip(dqkv, nqkv), strip(dbias, nb);
    close_t("attention dqkv vs torch", dqkv, FL("attention/dqkv", NULL), nqkv);
    close_t("attention dbias (summed over batch) vs torch", dbias, FL("attention/dbias", NULL), nb);
    fd("attention dqkv", att_obj, &c, c.qkv, dqkv, nqkv, 41);
    fd("attention dbias", att_obj, &c, c.bias, dbias, nb, 42);

    /* no bias */
    c.bias = NULL;
    att_obj(&c);
    close_t("attention out (bias NULL) vs torch", c.out, FL("attention/out_nobias", NULL), nout);
    close_t("attention att (bias NULL) vs torch", c.att, FL("attention/att_nobias", NULL), natt);
    float *dqkv2 = zeros(nqkv);
    attention_backward(dqkv2, NULL, c.r, c.qkv, c.att, scratch, B, T, C, NH, 0.5f);
    close_t("attention dqkv (bias NULL, dbias NULL) vs torch", dqkv2, FL("attention/dqkv_nobias", NULL), nqkv);
    fd("attention dqkv (bias NULL)", att_obj, &c, c.qkv, dqkv2, nqkv, 43);
    release();
}

/* relative position bias: index vs timm, gather vs torch, chain with attention */
typedef struct {
    float *table, *bias, *r;
    const int *index;
    int NH, T;
} rp_ctx;
static double rp_obj(void *p) {
    rp_ctx *c = p;
    relpos_bias_forward(c->bias, c->table, c->index, c->NH, c->T);
    return t_dot(c->bias, c->r, (size_t)c->NH * c->T * c->T);
}
typedef struct {
    att_ctx a;
    float *table;
    const int *index;
} rpa_ctx;
static double rpa_obj(void *p) {
    rpa_ctx *c = p;
    relpos_bias_forward(c->a.bias, c->table, c->index, c->a.NH, c->a.T);
    return att_obj(&c->a);
}
static void test_relpos(void) {
    const int grids[2][2] = {{2, 3}, {7, 7}};
    for (int g = 0; g < 2; g++) {
        int H = grids[g][0], W = grids[g][1], T = H * W + 1;
        char key[64];
        snprintf(key, sizeof key, "relpos/index_%dx%d", H, W);
        size_t n;
        int *want = I32(key, &n);
        int *got = keep(xmalloc((size_t)T * T * sizeof(int)));
        relpos_index_build(got, H, W);
        int maxv = 0;
        for (size_t i = 0; i < n; i++) maxv = want[i] > maxv ? want[i] : maxv;
        t_ok(n == (size_t)T * T && memcmp(got, want, n * sizeof(int)) == 0,
             "relpos index %dx%d (T=%d) equals timm's gen_relative_position_index exactly", H, W, T);
        t_ok(relpos_table_rows(H, W) == maxv + 1 && maxv + 1 == (2 * H - 1) * (2 * W - 1) + 3,
             "relpos table rows %dx%d = %d = (2H-1)(2W-1)+3", H, W, relpos_table_rows(H, W));
    }

    const int H = 2, W = 3, T = 7, B = 2, C = 12, NH = 3, R = relpos_table_rows(H, W);
    int *index = keep(xmalloc((size_t)T * T * sizeof(int)));
    relpos_index_build(index, H, W);
    const size_t nb = (size_t)NH * T * T, nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C;

    /* gather alone: objective sum(bias * r) with a fixed random r */
    rp_ctx rc = {FL("attn_relpos/table", NULL), zeros(nb), zeros(nb), index, NH, T};
    t_fill_normal(rc.r, nb, 1.0f, 5);
    rp_obj(&rc);
    close_t("relpos bias gather vs torch (table[index].permute)", rc.bias, FL("attn_relpos/bias", NULL), nb);
    float *dtab = gbuf((size_t)R * NH);
    relpos_bias_backward(dtab, rc.r, index, NH, T);
    strip(dtab, (size_t)R * NH);
    fd("relpos bias dtable", rp_obj, &rc, rc.table, dtab, (size_t)R * NH, 51);

    /* chain: table -> bias -> attention, vs torch */
    rpa_ctx c = {{FL("attn_relpos/qkv", NULL), zeros(nb), zeros((size_t)B * NH * T * T), zeros(nout),
                  FL("attn_relpos/r", NULL), B, T, C, NH},
                 rc.table, index};
    rpa_obj(&c);
    close_t("attention + relpos bias out vs torch", c.a.out, FL("attn_relpos/out", NULL), nout);
    att_rows_sum("attention + relpos", c.a.att, B * NH * T, T);
    float *scratch = zeros(attention_scratch_size(B, T, C, NH));
    float *dqkv = gbuf(nqkv), *dbias = zeros(nb), *dtable = gbuf((size_t)R * NH);
    attention_backward(dqkv, dbias, c.a.r, c.a.qkv, c.a.att, scratch, B, T, C, NH, 0.5f);
    relpos_bias_backward(dtable, dbias, index, NH, T);
    strip(dqkv, nqkv), strip(dtable, (size_t)R * NH);
    close_t("attention + relpos dqkv vs torch", dqkv, FL("attn_relpos/dqkv", NULL), nqkv);
    close_t("attention + relpos dtable vs torch", dtable, FL("attn_relpos/dtable", NULL), (size_t)R * NH);
    fd("attention + relpos dtable", rpa_obj, &c, c.table, dtable, (size_t)R * NH, 52);
    fd("attention + relpos dqkv", rpa_obj, &c, c.a.qkv, dqkv, nqkv, 53);
    release();
}

/* ================================ residual / drop path ================================ */
typedef struct {
    float *x, *y, *gamma, *s, *out, *r;
    int B, T, C;
} res_ctx;
static double res_obj(void *p) {
    res_ctx *c = p;
    residual_forward(c->out, c->x, c->y, c->gamma, c->s, c->B, c->T, c->C);
    return t_dot(c->out, c->r, (size_t)c->B * c->T * c->C);
}
static void test_residual(void) {
    const int B = 3, T = 5, C = 12;
    const size_t n = (size_t)B * T * C;
    res_ctx c = {FL("residual/x", NULL), FL("residual/y", NULL), FL("residual/gamma", NULL),
                 FL("residual/s", NULL), zeros(n), FL("residual/r", NULL), B, T, C};
    res_obj(&c);
    close_t("residual out (LayerScale, drop path s = [1/0.7, 0, 1/0.7]) vs torch", c.out,
            FL("residual/out", NULL), n);
    float *dx = gbuf(n), *dy = gbuf(n), *dg = gbuf(C);
    residual_backward(dx, dy, dg, c.r, c.y, c.gamma, c.s, B, T, C);
    strip(dx, n), strip(dy, n), strip(dg, C);
    close_t("residual dx vs torch", dx, FL("residual/dx", NULL), n);
    close_t("residual dy vs torch", dy, FL("residual/dy", NULL), n);
    close_t("residual dgamma vs torch", dg, FL("residual/dgamma", NULL), C);
    fd("residual dx", res_obj, &c, c.x, dx, n, 61);
    fd("residual dy", res_obj, &c, c.y, dy, n, 62);
    fd("residual dgamma", res_obj, &c, c.gamma, dg, C, 63);

    /* gamma NULL, s NULL: plain x + y, computed in place (out == x) */
    float *xc = zeros(n);
    memcpy(xc, c.x, n * sizeof(float));
    residual_forward(xc, xc, c.y, NULL, NULL, B, T, C);
    close_t("residual plain x + y in place (gamma, s NULL) vs torch", xc, FL("residual/out_plain", NULL), n);
    float *dy2 = zeros(n);
    residual_backward(NULL, dy2, NULL, c.r, c.y, NULL, NULL, B, T, C);
    close_t("residual plain dy == dout (torch)", dy2, c.r, n);
    res_ctx c2 = c;
    c2.gamma = NULL, c2.s = NULL;
    fd("residual plain dy", res_obj, &c2, c2.y, dy2, n, 64);

    /* drop-path scales */
    const int NB = 100000;
    const float p = 0.3f;
    float *s = zeros(NB), *s2 = zeros(NB);
    rng_t r = rng_stream(9, RNG_DROPPATH, 4, 2), r2 = rng_stream(9, RNG_DROPPATH, 4, 2);
    droppath_scales(s, NB, p, &r);
    droppath_scales(s2, NB, p, &r2);
    int vals = 1, dropped = 0, rule = 1;
    rng_t rr = rng_stream(9, RNG_DROPPATH, 4, 2);
    for (int b = 0; b < NB; b++) {
        vals &= s[b] == 0.0f || s[b] == 1.0f / (1.0f - p);
        dropped += s[b] == 0.0f;
        rule &= (rng_uniform(&rr) < p) == (s[b] == 0.0f);
    }
    t_ok(vals, "droppath scales are 0 or 1/(1-p)");
    t_ok(memcmp(s, s2, NB * sizeof(float)) == 0, "droppath scales are a function of the stream");
    t_ok(rule, "droppath: sample b dropped iff its uniform draw u_b < p (one draw per sample)");
    t_ok(fabs((double)dropped / NB - p) < 0.005, "droppath drop rate %.4f ~ p = 0.3 (+-0.005, %d samples)",
         (double)dropped / NB, NB);
    rng_t a = rng_stream(3, RNG_DROPPATH, 0, 0), bref = rng_stream(3, RNG_DROPPATH, 0, 0);
    droppath_scales(s, 5, 0.0f, &a);
    for (int i = 0; i < 5; i++) rng_uniform(&bref);
    int ones = 1;
    for (int i = 0; i < 5; i++) ones &= s[i] == 1.0f;
    t_ok(ones && rng_u32(&a) == rng_u32(&bref), "droppath p=0: all scales 1, still one draw per sample");
    release();
}

/* ================================ patch embedding ================================ */
typedef struct {
    float *img, *w, *b, *patches, *out, *r;
    int B, Cin, H, W, P, D;
} pe_ctx;
static double pe_obj(void *p) {
    pe_ctx *c = p;
    int Np = (c->H / c->P) * (c->W / c->P), K = c->Cin * c->P * c->P;
    patchify_forward(c->patches, c->img, c->B, c->Cin, c->H, c->W, c->P);
    linear_forward(c->out, c->patches, c->w, c->b, c->B * Np, K, c->D);
    return t_dot(c->out, c->r, (size_t)c->B * Np * c->D);
}
static void test_patch(void) {
    const int B = 2, Cin = 3, H = 6, W = 9, P = 3, D = 5, Np = 6, K = 27;
    const size_t nimg = (size_t)B * Cin * H * W, npt = (size_t)B * Np * K, nout = (size_t)B * Np * D;
    pe_ctx c = {FL("patch/img", NULL), FL("patch/w", NULL), FL("patch/b", NULL), zeros(npt), zeros(nout),
                FL("patch/r", NULL), B, Cin, H, W, P, D};
    pe_obj(&c);
    t_close("patchify vs F.unfold (exact copy)", c.patches, FL("patch/cols", NULL), npt, 0.0, 0.0);
    close_t("patchify + linear vs Conv2d(stride=kernel=P)", c.out, FL("patch/out", NULL), nout);
    float *dpt = zeros(npt), *dimg = gbuf(nimg), *dw = gbuf((size_t)D * K), *db = gbuf(D);
    linear_backward(dpt, dw, db, c.r, c.patches, c.w, B * Np, K, D);
    patchify_backward(dimg, dpt, B, Cin, H, W, P);
    strip(dimg, nimg), strip(dw, (size_t)D * K), strip(db, D);
    close_t("patch embed dimg vs torch conv", dimg, FL("patch/dimg", NULL), nimg);
    close_t("patch embed dweight vs torch conv", dw, FL("patch/dw", NULL), (size_t)D * K);
    close_t("patch embed dbias vs torch conv", db, FL("patch/db", NULL), D);
    fd("patch embed dimg", pe_obj, &c, c.img, dimg, nimg, 71);
    fd("patch embed dweight", pe_obj, &c, c.w, dw, (size_t)D * K, 72);
    fd("patch embed dbias", pe_obj, &c, c.b, db, D, 73);

    float *tg = zeros(npt);
    pixel_targets(tg, c.img, B, Cin, H, W, P, 1);
    close_t("pixel targets, per-patch normalised (MAE recipe) vs torch", tg, FL("patch/pixnorm", NULL), npt);
    pixel_targets(tg, c.img, B, Cin, H, W, P, 0);
    t_close("pixel targets, raw vs F.unfold", tg, FL("patch/cols", NULL), npt, 0.0, 0.0);
    release();
}

/* ================================ mean pooling, gather ================================ */
typedef struct {
    float *x, *out, *r;
    const int *idx;
    int B, T, C, t0, M;
} tok_ctx;
static double pool_obj(void *p) {
    tok_ctx *c = p;
    meanpool_forward(c->out, c->x, c->B, c->T, c->C, c->t0);
    return t_dot(c->out, c->r, (size_t)c->B * c->C);
}
static double gather_obj(void *p) {
    tok_ctx *c = p;
    gather_rows(c->out, c->x, c->idx, c->M, c->C);
    return t_dot(c->out, c->r, (size_t)c->M * c->C);
}
static void test_tokens(void) {
    const int B = 2, T = 5, C = 12;
    const size_t n = (size_t)B * T * C;
    for (int t0 = 0; t0 < 2; t0++) {
        tok_ctx c = {FL("meanpool/x", NULL), zeros((size_t)B * C), FL("meanpool/r", NULL), NULL, B, T, C, t0, 0};
        char key[64], nm[96];
        pool_obj(&c);
        snprintf(key, sizeof key, "meanpool/out_t%d", t0);
        snprintf(nm, sizeof nm, "meanpool t0=%d out vs torch", t0);
        close_t(nm, c.out, FL(key, NULL), (size_t)B * C);
        float *dx = gbuf(n);
        meanpool_backward(dx, c.r, B, T, C, t0);
        strip(dx, n);
        snprintf(key, sizeof key, "meanpool/dx_t%d", t0);
        snprintf(nm, sizeof nm, "meanpool t0=%d dx vs torch", t0);
        close_t(nm, dx, FL(key, NULL), n);
        snprintf(nm, sizeof nm, "meanpool t0=%d dx", t0);
        fd(nm, pool_obj, &c, c.x, dx, n, 80 + (uint64_t)t0);
    }
    size_t M;
    int *idx = I32("gather/idx", &M);
    tok_ctx g = {FL("gather/x", NULL), zeros(M * C), FL("gather/r", NULL), idx, 0, 0, C, 0, (int)M};
    gather_obj(&g);
    t_close("gather_rows vs torch x[idx] (exact)", g.out, FL("gather/out", NULL), M * C, 0.0, 0.0);
    float *dx = gbuf(10 * C);
    gather_rows_backward(dx, g.r, idx, (int)M, C);
    strip(dx, 10 * C);
    close_t("gather_rows backward (repeated index accumulates) vs torch", dx, FL("gather/dx", NULL), 10 * C);
    fd("gather_rows dx", gather_obj, &g, g.x, dx, 10 * C, 85);
    release();
}

/* ================================ losses ================================ */
typedef struct {
    float *logits, *target;
    const int *targets;
    int N, V;
    float eps, scale;
} loss_ctx;
static double ce_obj(void *p) {
    loss_ctx *c = p;
    return c->scale * crossentropy_forward(NULL, c->logits, c->targets, c->N, c->V, c->eps);
}
static double mse_obj(void *p) {
    loss_ctx *c = p;
    return c->scale * mse_forward(c->logits, c->target, (size_t)c->N);
}
/* prefix "ce": rows of V = 11 (the scalar tail of vmath.h's lanes only); "ce_wide": V = 40 */
static void test_ce(const char *prefix, int N, int V) {
    char key[64], nm[160];
    snprintf(key, sizeof key, "%s/targets", prefix);
    int *targets = I32(key, NULL);
    snprintf(key, sizeof key, "%s/logits", prefix);
    float *logits = FL(key, NULL);
    snprintf(key, sizeof key, "%s/scale", prefix);
    const float scale = (float)fx_scalar(FX, key);
    float *probs = zeros((size_t)N * V);
    const char *tags[2] = {"eps0", "eps01"};
    const float epss[2] = {0.0f, 0.1f};
    for (int k = 0; k < 2; k++) {
        loss_ctx c = {logits, NULL, targets, N, V, epss[k], scale};
        double loss = crossentropy_forward(probs, c.logits, targets, N, V, c.eps);
        snprintf(key, sizeof key, "%s/loss_%s", prefix, tags[k]);
        double want = fx_scalar(FX, key);
        t_ok(fabs(loss - want) <= 1e-6 * fabs(want),
             "%s sum [%d,%d], label smoothing %.1f, one ignored row: %.9g vs torch %.9g (rtol 1e-6)", prefix, N, V,
             (double)c.eps, loss, want);
        snprintf(key, sizeof key, "%s/probs", prefix);
        snprintf(nm, sizeof nm, "%s cached probs vs torch softmax", prefix);
        close_t(nm, probs, FL(key, NULL), (size_t)N * V);
        float *dl = gbuf((size_t)N * V);
        crossentropy_backward(dl, probs, targets, N, V, c.eps, c.scale);
        strip(dl, (size_t)N * V);
        snprintf(key, sizeof key, "%s/dlogits_%s", prefix, tags[k]);
        snprintf(nm, sizeof nm, "%s dlogits (eps %.1f, scale %.3g) vs torch", prefix, (double)c.eps, (double)scale);
        close_t(nm, dl, FL(key, NULL), (size_t)N * V);
        snprintf(nm, sizeof nm, "%s dlogits (eps %.1f)", prefix, (double)c.eps);
        fd(nm, ce_obj, &c, c.logits, dl, (size_t)N * V, 90 + (uint64_t)k);
    }
    snprintf(key, sizeof key, "%s/correct", prefix);
    int want_correct = (int)fx_scalar(FX, key), got = argmax_correct(logits, targets, N, V);
    t_ok(got == want_correct && want_correct >= 2, "%s argmax_correct = %d, torch argmax count %d", prefix, got,
         want_correct);
}

static void test_losses(void) {
    test_ce("ce", 7, 11);
    test_ce("ce_wide", 6, 40);

    size_t n;
    loss_ctx m = {FL("mse/pred", &n), FL("mse/target", NULL), NULL, 0, 0, 0, (float)fx_scalar(FX, "mse/scale")};
    m.N = (int)n;
    double loss = mse_forward(m.logits, m.target, n), want = fx_scalar(FX, "mse/loss");
    t_ok(fabs(loss - want) <= 1e-6 * fabs(want), "mse sum %.9g vs torch %.9g (rtol 1e-6)", loss, want);
    float *dp = gbuf(n);
    mse_backward(dp, m.logits, m.target, n, m.scale);
    strip(dp, n);
    close_t("mse dpred (scale 1/n) vs torch", dp, FL("mse/dpred", NULL), n);
    fd("mse dpred", mse_obj, &m, m.logits, dp, n, 95);
    release();
}

/* ================================ Gumbel-softmax ================================ */
typedef struct {
    float *logits, *g, *y, *r;
    int N, V;
    float tau;
} gs_ctx;
static double gs_obj(void *p) {
    gs_ctx *c = p;
    gumbel_softmax_forward(c->y, c->logits, c->g, c->N, c->V, c->tau);
    return t_dot(c->y, c->r, (size_t)c->N * c->V);
}
static void test_gumbel(void) {
    const int N = 6, V = 11;
    const size_t n = (size_t)N * V;
    gs_ctx c = {FL("gumbel/logits", NULL), FL("gumbel/g", NULL), zeros(n), FL("gumbel/r", NULL), N, V,
                (float)fx_scalar(FX, "gumbel/tau")};
    gs_obj(&c);
    close_t("gumbel-softmax y = softmax((logits+g)/tau), tau 0.7, vs torch", c.y, FL("gumbel/y", NULL), n);
    float *dl = gbuf(n);
    gumbel_softmax_backward(dl, c.r, c.y, N, V, c.tau);
    strip(dl, n);
    close_t("gumbel-softmax dlogits vs torch", dl, FL("gumbel/dlogits", NULL), n);
    fd("gumbel-softmax dlogits", gs_obj, &c, c.logits, dl, n, 101);

    /* noise statistics: Gumbel(0,1) has mean 0.5772 (Euler-Mascheroni), variance pi^2/6 */
    const size_t M = 400000;
    float *g = zeros(M);
    rng_t r = rng_stream(17, RNG_GUMBEL, 0, 0);
    gumbel_noise(g, M, &r);
    double s = 0, s2 = 0;
    int finite = 1;
    for (size_t i = 0; i < M; i++) {
        finite &= isfinite(g[i]);
        s += g[i];
        s2 += (double)g[i] * g[i];
    }
    double mean = s / M, var = s2 / M - mean * mean;
    t_ok(finite && fabs(mean - 0.5772157) < 0.01 && fabs(var - 1.6449341) < 0.03,
         "gumbel_noise: finite, mean %.4f ~ 0.5772 (+-0.01), var %.4f ~ 1.6449 (+-0.03)", mean, var);
    /* the extreme raw draws (u32 = 0 and 2^32-1 give rng_uniform 0 and 1-2^-24) stay finite */
    rng_t ex = r;
    ex.used = 0;
    ex.buf[0] = 0;
    ex.buf[1] = 0xFFFFFFFFu;
    float ge[2];
    gumbel_noise(ge, 2, &ex);
    t_ok(isfinite(ge[0]) && isfinite(ge[1]) && fabs(ge[0] - (-log(-log(0x1p-24)))) < 1e-5 &&
             fabs(ge[1] - (-log(-log(1 - 0x1p-24)))) < 1e-4,
         "gumbel_noise at draws 0 and 2^32-1: u = 2^-24 and 1-2^-24, finite (%.5f, %.5f; want %.5f, %.5f)",
         (double)ge[0], (double)ge[1], -log(-log(0x1p-24)), -log(-log(1 - 0x1p-24)));
    /* the vector logs vs libm in double: 4 of every 16 of the 2^23 possible u (draws j << 9) */
    double worst = 0;
    for (uint32_t k = 0; k < (1u << 23); k += 16) {
        ex.used = 0;
        for (int j = 0; j < 4; j++) ex.buf[j] = (k + (uint32_t)j) << 9;
        float gg[4];
        gumbel_noise(gg, 4, &ex);
        for (int j = 0; j < 4; j++) {
            double u = (2.0 * (k + j) + 1) * 0x1p-24, want = -log(-log(u));
            double e = fabs(gg[j] - want) / (fabs(want) > 1 ? fabs(want) : 1);
            worst = e > worst ? e : worst;
        }
    }
    t_ok(worst < 1e-6, "gumbel_noise vs -log(-log(u)) in double over 2^21 of its 2^23 u values: error %.3g < 1e-6 "
         "(relative; absolute where |g| < 1)", worst);
    release();
}

int main(void) {
    FX = fx_open("nn.h5");
    test_gemm();
    test_linear();
    test_layernorm("layernorm", 7, 13);
    test_layernorm("layernorm_wide", 5, 40);
    test_activations();
    test_attention();
    test_relpos();
    test_residual();
    test_patch();
    test_tokens();
    test_losses();
    test_gumbel();
    fx_close(FX);
    return t_done();
}
