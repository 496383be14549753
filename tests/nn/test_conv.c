/* nn_conv: the spatial kernels of include/beit/conv.h (conv2d, transposed conv2d, max-pool,
 * nearest and bilinear upsampling), forward and backward.
 *
 *  (a) against PyTorch: tests/fixtures/conv.h5 from gen_conv.py (float64 autograd on the same
 *      float32 inputs, objective L = sum(out * r)); elementwise rtol 1e-4 + atol 1e-5. The
 *      convolutions run once per scratch size (1 image per sgemm, 2, the whole batch) so both
 *      the per-image and the batched-im2col paths are checked, and the 1x1 conv also without
 *      scratch (its pointwise path).
 *  (b) finite differences of the same objective for every input and parameter gradient;
 *      each gradient is computed alone (the others NULL) to exercise the NULL paths.
 *  (c) gradients accumulate: a second backward into the reference values gives 2x.
 *  (d) hand-computed values: output sizes, scratch sizes, max-pool ties and NaN.
 */
#include "beit/conv.h"
#include "beit/error.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-4
#define ATOL 1e-5
/* The objective is evaluated with the float32 forward: its rounding noise (~1e-6 absolute)
 * divided by 2 eps reaches ~1e-4 absolute, which is ~2e-3 of a small directional derivative
 * (seen: tconv dweight, <g,v> = -0.0585). rtol 1e-2 stays far below the O(1) error of a
 * wrong gradient entry. */
#define FD_EPS 1e-2
#define FD_RTOL 1e-2
#define FD_FLOOR 1e-3
#define FD_DIRS 4

static float *alloc0(size_t n) { return xalloc_floats(n ? n : 1); }
static float *copy_of(const float *x, size_t n) {
    float *y = alloc0(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}
static float *doubled(const float *x, size_t n) {
    float *y = alloc0(n);
    for (size_t i = 0; i < n; i++) y[i] = 2.0f * x[i];
    return y;
}

/* read name and check its element count against the configuration */
static float *fx_sized(fixture *fx, const char *grp, const char *name, size_t want) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", grp, name);
    size_t n = 0;
    float *x = fx_floats(fx, path, &n);
    if (n != want) {
        t_ok(0, "fixture %s has %zu elements, configuration says %zu", path, n, want);
        exit(t_done());
    }
    return x;
}

static int64_t *fx_dims(fixture *fx, const char *grp, size_t want) {
    char path[256];
    snprintf(path, sizeof path, "%s/dims", grp);
    size_t n = 0;
    int64_t *d = fx_ints(fx, path, &n);
    if (n != want) {
        t_ok(0, "fixture %s has %zu entries, want %zu", path, n, want);
        exit(t_done());
    }
    return d;
}

/* ================= conv2d and transposed conv2d (same signatures) ================= */
typedef void (*conv_fwd_fn)(float *, const float *, const float *, const float *, float *, size_t, int, int, int,
                            int, int, int, int, int);
typedef void (*conv_bwd_fn)(float *, float *, float *, const float *, const float *, const float *, float *, size_t,
                            int, int, int, int, int, int, int, int);
typedef size_t (*conv_scr_fn)(int, int, int, int, int, int, int, int);
typedef int (*conv_dim_fn)(int, int, int, int);

typedef struct {
    conv_fwd_fn fwd;
    int B, Cin, H, W, Cout, k, s, p;
    float *x, *w, *b, *r, *out, *scratch;
    size_t nout, scratch_n;
} conv_ctx;

static double conv_loss(void *vctx) {
    conv_ctx *c = vctx;
    c->fwd(c->out, c->x, c->w, c->b, c->scratch, c->scratch_n, c->B, c->Cin, c->H, c->W, c->Cout, c->k, c->s, c->p);
    return t_dot(c->out, c->r, c->nout);
}

static void test_convlike(fixture *fx, int transposed, const char *cfg) {
    const char *op = transposed ? "tconv" : "conv";
    conv_fwd_fn fwd = transposed ? conv_transpose2d_forward : conv2d_forward;
    conv_bwd_fn bwd = transposed ? conv_transpose2d_backward : conv2d_backward;
    conv_scr_fn scr = transposed ? conv_transpose2d_scratch_size : conv2d_scratch_size;
    conv_dim_fn odim = transposed ? conv_transpose2d_out_dim : conv2d_out_dim;
    char grp[128];
    snprintf(grp, sizeof grp, "%s/%s", op, cfg);
    int64_t *d = fx_dims(fx, grp, 8);
    int B = (int)d[0], Cin = (int)d[1], H = (int)d[2], W = (int)d[3], Cout = (int)d[4], k = (int)d[5], s = (int)d[6],
        p = (int)d[7];
    free(d);
    int Ho = odim(H, k, s, p), Wo = odim(W, k, s, p);
    size_t nx = (size_t)B * Cin * H * W, nw = (size_t)Cin * Cout * k * k, nout = (size_t)B * Cout * Ho * Wo;
    char bpath[160];
    snprintf(bpath, sizeof bpath, "%s/b", grp);
    int has_b = fx_has(fx, bpath);
    float *x = fx_sized(fx, grp, "x", nx), *w = fx_sized(fx, grp, "w", nw), *r = fx_sized(fx, grp, "r", nout);
    float *out_ref = fx_sized(fx, grp, "out", nout), *dx_ref = fx_sized(fx, grp, "dx", nx),
          *dw_ref = fx_sized(fx, grp, "dw", nw);
    float *b = has_b ? fx_sized(fx, grp, "b", (size_t)Cout) : NULL;
    float *db_ref = has_b ? fx_sized(fx, grp, "db", (size_t)Cout) : NULL;
    t_diag("%s %s: B=%d Cin=%d %dx%d -> Cout=%d %dx%d, k=%d stride=%d pad=%d%s", op, cfg, B, Cin, H, W, Cout, Ho, Wo,
           k, s, p, has_b ? "" : ", no bias");

    float *out = alloc0(nout), *dx = alloc0(nx), *dw = alloc0(nw), *db = alloc0((size_t)Cout);
    char name[256];
    /* images per sgemm: 1, 2 (a chunk plus a remainder when B = 3), the whole batch */
    int nbs[3] = {1, 2, B}, nmodes = B > 2 ? 3 : (B == 2 ? 2 : 1);
    for (int m = 0; m < nmodes; m++) {
        int nb = nbs[m];
        size_t sn = scr(nb, Cin, H, W, Cout, k, s, p);
        float *scratch = sn ? alloc0(sn) : NULL; /* size 0 (pointwise conv): pass NULL */
        fwd(out, x, w, b, scratch, sn, B, Cin, H, W, Cout, k, s, p);
        snprintf(name, sizeof name, "%s %s, %d image(s)/sgemm: forward vs torch", op, cfg, nb);
        t_close(name, out, out_ref, nout, RTOL, ATOL);
        memset(dx, 0, nx * sizeof(float));
        memset(dw, 0, nw * sizeof(float));
        memset(db, 0, (size_t)Cout * sizeof(float));
        bwd(dx, dw, has_b ? db : NULL, r, x, w, scratch, sn, B, Cin, H, W, Cout, k, s, p);
        snprintf(name, sizeof name, "%s %s, %d image(s)/sgemm: dinp vs torch", op, cfg, nb);
        t_close(name, dx, dx_ref, nx, RTOL, ATOL);
        snprintf(name, sizeof name, "%s %s, %d image(s)/sgemm: dweight vs torch", op, cfg, nb);
        t_close(name, dw, dw_ref, nw, RTOL, ATOL);
        if (has_b) {
            snprintf(name, sizeof name, "%s %s, %d image(s)/sgemm: dbias vs torch", op, cfg, nb);
            t_close(name, db, db_ref, (size_t)Cout, RTOL, ATOL);
        }
        free(scratch);
    }

    /* the minimum scratch from here on */
    size_t sn = scr(1, Cin, H, W, Cout, k, s, p);
    float *scratch = alloc0(sn);

    /* (c) accumulation: start from the reference gradients, expect twice them */
    {
        float *ax = copy_of(dx_ref, nx), *aw = copy_of(dw_ref, nw), *ab = has_b ? copy_of(db_ref, Cout) : NULL;
        float *x2 = doubled(dx_ref, nx), *w2 = doubled(dw_ref, nw), *b2 = has_b ? doubled(db_ref, Cout) : NULL;
        bwd(ax, aw, ab, r, x, w, scratch, sn, B, Cin, H, W, Cout, k, s, p);
        snprintf(name, sizeof name, "%s %s: backward accumulates (+=) into dinp, dweight%s", op, cfg,
                 has_b ? ", dbias" : "");
        int okx = 1;
        for (size_t i = 0; i < nx; i++) okx &= fabsf(ax[i] - x2[i]) <= ATOL + RTOL * fabsf(x2[i]);
        for (size_t i = 0; i < nw; i++) okx &= fabsf(aw[i] - w2[i]) <= ATOL + RTOL * fabsf(w2[i]);
        for (int i = 0; has_b && i < Cout; i++) okx &= fabsf(ab[i] - b2[i]) <= ATOL + RTOL * fabsf(b2[i]);
        t_ok(okx, "%s (rtol %.0e atol %.0e)", name, RTOL, ATOL);
        free(ax), free(aw), free(ab), free(x2), free(w2), free(b2);
    }

    /* (b) finite differences, each gradient alone */
    conv_ctx c = {fwd, B, Cin, H, W, Cout, k, s, p, x, w, b, r, out, scratch, nout, sn};
    memset(dx, 0, nx * sizeof(float));
    bwd(dx, NULL, NULL, r, x, w, scratch, sn, B, Cin, H, W, Cout, k, s, p);
    snprintf(name, sizeof name, "%s %s dinp", op, cfg);
    t_fd_check(name, conv_loss, &c, x, dx, nx, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, 11);
    memset(dw, 0, nw * sizeof(float));
    bwd(NULL, dw, NULL, r, x, w, scratch, sn, B, Cin, H, W, Cout, k, s, p);
    snprintf(name, sizeof name, "%s %s dweight", op, cfg);
    t_fd_check(name, conv_loss, &c, w, dw, nw, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, 12);
    if (has_b) {
        memset(db, 0, (size_t)Cout * sizeof(float));
        bwd(NULL, NULL, db, r, x, w, scratch, sn, B, Cin, H, W, Cout, k, s, p);
        snprintf(name, sizeof name, "%s %s dbias", op, cfg);
        t_fd_check(name, conv_loss, &c, b, db, (size_t)Cout, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, 13);
    }

    free(scratch), free(out), free(dx), free(dw), free(db);
    free(x), free(w), free(r), free(out_ref), free(dx_ref), free(dw_ref), free(b), free(db_ref);
}

/* ================================ max-pool ================================ */
typedef struct {
    int B, C, H, W, k, s;
    float *x, *r, *out;
    size_t nout;
} pool_ctx;

static double pool_loss(void *vctx) {
    pool_ctx *c = vctx;
    maxpool2d_forward(c->out, NULL, c->x, c->B, c->C, c->H, c->W, c->k, c->s);
    return t_dot(c->out, c->r, c->nout);
}

static void test_pool(fixture *fx, const char *cfg) {
    char grp[128], name[256];
    snprintf(grp, sizeof grp, "pool/%s", cfg);
    int64_t *d = fx_dims(fx, grp, 6);
    int B = (int)d[0], C = (int)d[1], H = (int)d[2], W = (int)d[3], k = (int)d[4], s = (int)d[5];
    free(d);
    int Ho = (H - k) / s + 1, Wo = (W - k) / s + 1;
    size_t nx = (size_t)B * C * H * W, nout = (size_t)B * C * Ho * Wo;
    float *x = fx_sized(fx, grp, "x", nx), *r = fx_sized(fx, grp, "r", nout);
    float *out_ref = fx_sized(fx, grp, "out", nout), *dx_ref = fx_sized(fx, grp, "dx", nx);
    char ipath[160];
    snprintf(ipath, sizeof ipath, "%s/idx", grp);
    size_t ni = 0;
    int64_t *idx_ref = fx_ints(fx, ipath, &ni);
    t_diag("maxpool %s: B=%d C=%d %dx%d, k=%d stride=%d -> %dx%d", cfg, B, C, H, W, k, s, Ho, Wo);

    float *out = alloc0(nout), *dx = alloc0(nx);
    int *am = xmalloc(nout * sizeof(int));
    maxpool2d_forward(out, am, x, B, C, H, W, k, s);
    snprintf(name, sizeof name, "maxpool %s: forward vs torch", cfg);
    t_close(name, out, out_ref, nout, RTOL, ATOL);
    size_t bad = ni == nout ? 0 : nout;
    for (size_t i = 0; i < nout && ni == nout; i++) bad += am[i] != idx_ref[i];
    t_ok(bad == 0, "maxpool %s: argmax == torch's return_indices (%zu of %zu differ)", cfg, bad, nout);
    maxpool2d_backward(dx, r, am, B, C, H, W, k, s);
    snprintf(name, sizeof name, "maxpool %s: dinp vs torch", cfg);
    t_close(name, dx, dx_ref, nx, RTOL, ATOL);
    maxpool2d_backward(dx, r, am, B, C, H, W, k, s);
    float *dx2 = doubled(dx_ref, nx);
    snprintf(name, sizeof name, "maxpool %s: backward accumulates (+=), 2x torch", cfg);
    t_close(name, dx, dx2, nx, RTOL, ATOL);

    /* values are >= 0.05 apart and the perturbation is <= eps = 1e-2 per element: no
     * argmax changes inside the finite difference */
    memset(dx, 0, nx * sizeof(float));
    maxpool2d_backward(dx, r, am, B, C, H, W, k, s);
    pool_ctx c = {B, C, H, W, k, s, x, r, out, nout};
    snprintf(name, sizeof name, "maxpool %s dinp", cfg);
    t_fd_check(name, pool_loss, &c, x, dx, nx, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, 21);
    free(out), free(dx), free(dx2), free(am), free(x), free(r), free(out_ref), free(dx_ref), free(idx_ref);
}

/* ============================ nearest / bilinear ============================ */
typedef struct {
    int bilinear, B, C, H, W, f, Ho, Wo;
    float *x, *r, *out;
    size_t nout;
} up_ctx;

static void up_fwd(up_ctx *c) {
    if (c->bilinear) upsample_bilinear_forward(c->out, c->x, c->B, c->C, c->H, c->W, c->Ho, c->Wo);
    else upsample_nearest_forward(c->out, c->x, c->B, c->C, c->H, c->W, c->f);
}
static void up_bwd(up_ctx *c, float *dx) {
    if (c->bilinear) upsample_bilinear_backward(dx, c->r, c->B, c->C, c->H, c->W, c->Ho, c->Wo);
    else upsample_nearest_backward(dx, c->r, c->B, c->C, c->H, c->W, c->f);
}
static double up_loss(void *vctx) {
    up_ctx *c = vctx;
    up_fwd(c);
    return t_dot(c->out, c->r, c->nout);
}

static void test_upsample(fixture *fx, int bilinear, const char *cfg) {
    const char *op = bilinear ? "bilinear" : "nearest";
    char grp[128], name[256];
    snprintf(grp, sizeof grp, "%s/%s", op, cfg);
    int64_t *d = fx_dims(fx, grp, bilinear ? 6 : 5);
    up_ctx c = {bilinear, (int)d[0], (int)d[1], (int)d[2], (int)d[3], 0, 0, 0, NULL, NULL, NULL, 0};
    if (bilinear) c.Ho = (int)d[4], c.Wo = (int)d[5];
    else c.f = (int)d[4], c.Ho = c.H * c.f, c.Wo = c.W * c.f;
    free(d);
    size_t nx = (size_t)c.B * c.C * c.H * c.W;
    c.nout = (size_t)c.B * c.C * c.Ho * c.Wo;
    c.x = fx_sized(fx, grp, "x", nx);
    c.r = fx_sized(fx, grp, "r", c.nout);
    float *out_ref = fx_sized(fx, grp, "out", c.nout), *dx_ref = fx_sized(fx, grp, "dx", nx);
    t_diag("%s %s: B=%d C=%d %dx%d -> %dx%d", op, cfg, c.B, c.C, c.H, c.W, c.Ho, c.Wo);
    c.out = alloc0(c.nout);
    float *dx = alloc0(nx);
    up_fwd(&c);
    snprintf(name, sizeof name, "%s %s: forward vs torch", op, cfg);
    t_close(name, c.out, out_ref, c.nout, RTOL, ATOL);
    up_bwd(&c, dx);
    snprintf(name, sizeof name, "%s %s: dinp vs torch", op, cfg);
    t_close(name, dx, dx_ref, nx, RTOL, ATOL);
    up_bwd(&c, dx);
    float *dx2 = doubled(dx_ref, nx);
    snprintf(name, sizeof name, "%s %s: backward accumulates (+=), 2x torch", op, cfg);
    t_close(name, dx, dx2, nx, RTOL, ATOL);
    memset(dx, 0, nx * sizeof(float));
    up_bwd(&c, dx);
    snprintf(name, sizeof name, "%s %s dinp", op, cfg);
    t_fd_check(name, up_loss, &c, c.x, dx, nx, FD_EPS, FD_RTOL, FD_FLOOR, FD_DIRS, 31);
    free(c.out), free(dx), free(dx2), free(c.x), free(c.r), free(out_ref), free(dx_ref);
}

/* ============================ hand-computed values ============================ */
static void test_hand(void) {
    t_ok(conv2d_out_dim(7, 3, 1, 1) == 7 && conv2d_out_dim(7, 4, 2, 1) == 3 && conv2d_out_dim(224, 16, 16, 0) == 14 &&
             conv2d_out_dim(2, 5, 1, 1) <= 0,
         "conv2d_out_dim: 7/k3s1p1 -> 7, 7/k4s2p1 -> 3, 224/k16s16 -> 14, too small -> invalid");
    t_ok(conv_transpose2d_out_dim(4, 4, 2, 1) == 8 && conv_transpose2d_out_dim(3, 2, 2, 0) == 6,
         "conv_transpose2d_out_dim: 4/k4s2p1 -> 8, 3/k2s2p0 -> 6");
    /* 3x3 s1 p1, Cin 3, Cout 5, 7x6: col 27 x 42 per image; nb=2 adds 5 x 84 */
    t_ok(conv2d_scratch_size(1, 3, 7, 6, 5, 3, 1, 1) == 27 * 42 &&
             conv2d_scratch_size(2, 3, 7, 6, 5, 3, 1, 1) == 27 * 84 + 5 * 84 &&
             conv2d_scratch_size(1, 3, 7, 6, 5, 1, 1, 0) == 0 && conv2d_scratch_size(2, 3, 7, 6, 5, 1, 1, 0) == (3 + 5) * 84,
         "conv2d_scratch_size: hand-computed values (incl. 0 for a 1x1 conv, one image)");
    t_ok(conv_transpose2d_scratch_size(1, 5, 4, 3, 3, 4, 2, 1) == 48 * 12 &&
             conv_transpose2d_scratch_size(3, 5, 4, 3, 3, 4, 2, 1) == (48 + 5) * 36,
         "conv_transpose2d_scratch_size: hand-computed values");

    /* ties: the first maximum in scan order; a NaN wins */
    float x[16] = {1, 1, 0, 5, 1, 1, 5, 5, /* row 0,1 */ 2, 3, NAN, 9, 3, 3, 9, 1};
    float out[4], r[4] = {1, 2, 3, 4}, dx[16] = {0};
    int am[4];
    maxpool2d_forward(out, am, x, 1, 1, 4, 4, 2, 2);
    t_ok(am[0] == 0 && am[1] == 3 && am[2] == 9 && am[3] == 10 && out[0] == 1 && out[1] == 5 && out[2] == 3 &&
             isnan(out[3]),
         "maxpool ties go to the first maximum in scan order, NaN propagates (argmax %d %d %d %d)", am[0], am[1],
         am[2], am[3]);
    maxpool2d_backward(dx, r, am, 1, 1, 4, 4, 2, 2);
    t_ok(dx[0] == 1 && dx[3] == 2 && dx[9] == 3 && dx[10] == 4 && dx[1] == 0 && dx[12] == 0,
         "maxpool backward routes each gradient to its argmax only");

    /* bilinear 2 -> 4 on one axis: scale 0.5, src = 0.5 d - 0.25 -> -0.25(0), 0.25, 0.75, 1.25(clamp i1)
     * out = [a, .75a+.25b, .25a+.75b, b] */
    float in2[2] = {4, 8}, o4[4], want4[4] = {4, 5, 7, 8};
    upsample_bilinear_forward(o4, in2, 1, 1, 1, 2, 1, 4);
    t_ok(memcmp(o4, want4, sizeof want4) == 0, "bilinear 1x2 -> 1x4 = [4 5 7 8] (hand-computed, clamped ends)");
}

int main(void) {
    test_hand();
    fixture *fx = fx_open("conv.h5");
    test_convlike(fx, 0, "k3s1p1");
    test_convlike(fx, 0, "k4s2p1");
    test_convlike(fx, 0, "k1s1p0");
    test_convlike(fx, 0, "k3s2p0_nobias");
    test_convlike(fx, 1, "k4s2p1");
    test_convlike(fx, 1, "k2s2p0");
    test_convlike(fx, 1, "k3s1p1_nobias");
    test_pool(fx, "k2s2_8x6");
    test_pool(fx, "k3s2_7x6");
    test_upsample(fx, 0, "f2_4x5");
    test_upsample(fx, 0, "f3_3x2");
    test_upsample(fx, 1, "7x7_to_28x28");
    test_upsample(fx, 1, "5x5_to_12x9");
    test_upsample(fx, 1, "8x6_to_5x4");
    fx_close(fx);
    return t_done();
}
