/* models_segdec: the light segmentation decoder, its cross-entropy and the segmentation metric
 * (src/models/segdec.c, include/beit/segdec.h).
 *
 * (a) Against PyTorch (tests/fixtures/segdec.h5 from tests/fixtures/gen_segdec.py, which runs
 *     tools/torchref/segdec.py in float64 from the same float32 parameters and taps), cases
 *     "sq" (3 taps, 3x3 grid, P 2, B 2, objective = CE mean through seg_ce_forward_backward),
 *     "rect" (2 taps, 2x3 grid, P 3, B 2, objective sum(logits * r)) and "fd" (see (d)):
 *       - the table: names/shapes == named_parameters(), decay == the 1-D/bias rule, every
 *         layer id == the one passed to segdec_build;
 *       - logits: |got - want| <= 1e-5 + 1e-4 |want|;
 *       - EVERY parameter gradient and the tap gradients: |got - want| <= ATOL_G + 1e-4 |want|,
 *         ATOL_G = 1e-5 max|want| of that tensor (entries span magnitudes; float32 cancellation);
 *       - gradient buffers (params and taps) start at 0.25 and the 0.25 is subtracted, so the
 *         checks prove backward ACCUMULATES; the CLS rows of dtaps must still hold exactly 0.25;
 *       - the model runs with max_batch = B + 1 (activation slabs strided by max_batch);
 *       - backward with dtaps = NULL gives bit-identical parameter gradients.
 * (b) seg_ce_forward_backward on the fixture's float32 logits vs F.cross_entropy(sum) (rel
 *     1e-10, both double) and its gradient (scale 0.37) |d| <= 1e-8 + 1e-6 |want| (float32
 *     roundings of the same double); it overwrites dlogits. Label >= NC is fatal (exit 5).
 * (c) seg_confusion_add / seg_scores_from_confusion vs torch (bincount, mmseg nanmean): confusion
 *     exact, mIoU and pixel accuracy |d| <= 1e-12; and hand-made maps with hand-computed IoU.
 * (d) Directional finite differences of the mean CE loss w.r.t. every parameter tensor and
 *     every tap buffer (whole [B,T,D], CLS rows included: both sides must see zero there), on
 *     the fixture's "fd" state only (also checked against torch as in (a)): ntaps 2, D 4, 2x2
 *     grid, P 2, E 3, NC 3, B 1, drawn so that every ReLU input is >= kink_margin (0.047) from
 *     0 and no FD step (eps 2e-3 along |v_i| <= 1 in one tensor) moves any ReLU input by more
 *     than kink_reach (0.016): a smooth function for the central difference. (On the random
 *     sq state, many ReLU inputs lie near 0 and the differences are off by 1..25% although the
 *     gradients equal torch's.) rtol 1e-2, floor 2e-3, 3 directions. Float32 rounding of the
 *     loss (~1e-8) gives ~5e-6 in a difference; the floor makes rtol an absolute 2e-5 for the
 *     small directional derivatives. Seen: worst error 2.5e-3 over 25 directions per tensor;
 *     a missing ReLU mask or a missing CE scale fails 14..16 of these checks, dtaps written
 *     into the CLS row fails both tap checks, a dropped up.bias gradient fails its check.
 * (e) Init: values depend only on (seed, name); LN 1/0, biases 0; weight statistics.
 */
#include "beit/segdec.h"

#include "beit/error.h"
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ACC0 0.25f
#define RTOL 1e-4
#define ATOL 1e-5
#define GRAD_ATOL_REL 1e-5
#define LAYER_ID 7
/* FD: the objective is the float32 forward, the CE summed in double, times 1/16. eps = the
 * fixture's fd_eps (its kink-free guarantee is for that step). */
#define FD_EPS 2e-3
#define FD_RTOL 1e-2
#define FD_FLOOR 2e-3
#define FD_DIRS 3

static fixture *FX;

#define FL(cs, name, n) fx_floats_in(FX, (cs), (name), (n))
#define INTS(cs, name, n) fx_ints_in(FX, (cs), (name), (n))
#define SCALAR(cs, name) fx_scalar_in(FX, (cs), (name))


/* ---------------------------------------------------------------------------------------- */
typedef struct {
    const char *cs;
    segdec_dims d;
    int B, HW;
    segdec s;
    param_table pt;
    float *taps[SEGDEC_MAX_TAPS];  /* [B,T,D] each (views into tapbuf) */
    float *dtaps[SEGDEC_MAX_TAPS];
    float *tapbuf, *dtapbuf;       /* [ntaps,B,T,D] */
    uint8_t *labels;
    float *dlogits;
    float scale;
} scase;

static void load_case(scase *c, const char *cs) {
    memset(c, 0, sizeof *c);
    c->cs = cs;
    size_t n;
    int64_t *dm = INTS(cs, "dims", &n);
    c->d.ntaps = (int)dm[0];
    c->d.D = (int)dm[1];
    c->d.gh = (int)dm[2];
    c->d.gw = (int)dm[3];
    c->d.patch = (int)dm[4];
    c->d.E = (int)dm[5];
    c->d.ncls = (int)dm[6];
    c->d.ln_eps = 1e-6f;
    c->B = (int)dm[7];
    free(dm);
    params_init(&c->pt);
    segdec_build(&c->s, &c->pt, &c->d, LAYER_ID);
    params_alloc(&c->pt);
    segdec_alloc(&c->s, c->B + 1);
    c->HW = c->s.S * c->s.Sw;
    int loaded = 1;
    for (int i = 0; i < c->pt.n; i++) {
        char key[160];
        snprintf(key, sizeof key, "%s/param/%s", cs, c->pt.t[i].name);
        if (!fx_has(FX, key)) {
            t_diag("%s: no torch parameter %s", cs, c->pt.t[i].name);
            loaded = 0;
            continue;
        }
        float *x = fx_floats(FX, key, &n);
        if (n != c->pt.t[i].numel) loaded = 0;
        else memcpy(params_data(&c->pt, i), x, n * sizeof(float));
        free(x);
    }
    t_ok(loaded, "%s: every C tensor has a torch parameter of the same size", cs);
    c->tapbuf = FL(cs, "taps", &n);
    const size_t per = (size_t)c->B * c->s.T * c->d.D;
    t_ok(n == per * (size_t)c->d.ntaps, "%s: taps are [ntaps,B,T,D] = %zu floats", cs, n);
    c->dtapbuf = xmalloc(n * sizeof(float));
    for (int i = 0; i < c->d.ntaps; i++) {
        c->taps[i] = c->tapbuf + (size_t)i * per;
        c->dtaps[i] = c->dtapbuf + (size_t)i * per;
    }
    int64_t *lb = INTS(cs, "labels", &n);
    c->labels = xmalloc(n);
    for (size_t i = 0; i < n; i++) c->labels[i] = (uint8_t)lb[i];
    free(lb);
    c->dlogits = xmalloc((size_t)c->B * c->d.ncls * c->HW * sizeof(float));
    c->scale = 1.0f / (float)(c->B * c->HW);
}

static void free_case(scase *c) {
    free(c->tapbuf);
    free(c->dtapbuf);
    free(c->labels);
    free(c->dlogits);
    segdec_free(&c->s);
    params_free(&c->pt);
}

static void check_table(scase *c) {
    fx_table_cmp r = fx_compare_table(FX, c->cs, &c->pt);
    int lid_ok = 1;
    for (int i = 0; i < c->pt.n; i++) lid_ok &= c->pt.t[i].layer_id == LAYER_ID;
    t_ok(r.names_ok, "%s: C table names/shapes == torch named_parameters (%zu tensors, table has %d)", c->cs, r.n,
         c->pt.n);
    t_ok(r.decay_ok, "%s: decay flags == rule (0 for 1-D and *.bias)", c->cs);
    t_ok(lid_ok, "%s: every layer id == %d (segdec_build's argument)", c->cs, LAYER_ID);
}

/* mean CE loss of the current parameters and taps (the "sq" objective) */
static double case_loss(void *p) {
    scase *c = p;
    segdec_forward(&c->s, &c->pt, (const float *const *)c->taps, c->B);
    return seg_ce_forward_backward(NULL, segdec_logits(&c->s), c->labels, c->B, c->d.ncls, c->HW, 1.0f) *
           (double)c->scale;
}

static int close_grad(const char *cs, const char *what, const float *got, const float *want, size_t n) {
    double mx = 0;
    for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(want[k]));
    char nm[256];
    snprintf(nm, sizeof nm, "%s: d %s vs torch (atol %.1e = 1e-5 max|want|, rtol 1e-4)", cs, what,
             GRAD_ATOL_REL * mx);
    if (mx == 0) t_diag("%s: torch gradient of %s is all zero", cs, what);
    return t_close(nm, got, want, n, RTOL, GRAD_ATOL_REL * mx) && mx > 0;
}

static void run_case(const char *cs, int ce_objective, int fd) {
    scase c;
    load_case(&c, cs);
    check_table(&c);
    segdec *s = &c.s;
    param_table *pt = &c.pt;
    const int B = c.B, NC = c.d.ncls, T = s->T, D = c.d.D, nt = c.d.ntaps;
    const size_t nlog = (size_t)B * NC * c.HW, per = (size_t)B * T * D;
    char nm[256];
    size_t n;

    /* forward */
    segdec_forward(s, pt, (const float *const *)c.taps, B);
    float *want = FL(cs, "logits", &n);
    snprintf(nm, sizeof nm, "%s: logits [%d,%d,%d,%d] (rtol 1e-4, atol 1e-5)", cs, B, NC, s->S, s->Sw);
    t_ok(n == nlog, "%s: logits size %zu == %zu", cs, n, nlog);
    t_close(nm, segdec_logits(s), want, nlog, RTOL, ATOL);
    free(want);

    /* objective gradient w.r.t. the logits */
    if (ce_objective) {
        double sc = SCALAR(cs, "scale");
        t_ok(fabs(sc - c.scale) <= 1e-7 * sc, "%s: fixture scale %.9g == 1/(B*S*Sw)", cs, sc);
        double loss = seg_ce_forward_backward(c.dlogits, segdec_logits(s), c.labels, B, NC, c.HW, c.scale);
        double wl = SCALAR(cs, "ce_sum");
        t_ok(fabs(loss - wl) <= 1e-5 * fabs(wl), "%s: CE sum of the C logits %.9g vs torch %.9g (rtol 1e-5)", cs,
             loss, wl);
    } else {
        float *r = FL(cs, "r", &n);
        memcpy(c.dlogits, r, nlog * sizeof(float));
        free(r);
    }

    /* backward into buffers that start at ACC0 */
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] = ACC0;
    for (size_t i = 0; i < per * nt; i++) c.dtapbuf[i] = ACC0;
    segdec_backward(s, pt, c.dlogits, c.dtaps, B);
    int cls_ok = 1;
    for (int i = 0; i < nt; i++)
        for (int b = 0; b < B; b++)
            for (int k = 0; k < D; k++) cls_ok &= c.dtaps[i][(size_t)b * T * D + k] == ACC0;
    t_ok(cls_ok, "%s: dtaps CLS rows (row 0 of every image) untouched: exactly 0.25 still", cs);
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] -= ACC0;
    for (size_t i = 0; i < per * nt; i++) c.dtapbuf[i] -= ACC0;
    int all_ok = 1;
    for (int i = 0; i < pt->n; i++) {
        char key[160];
        snprintf(key, sizeof key, "grad/%s", pt->t[i].name);
        float *g = FL(cs, key, &n);
        all_ok &= n == pt->t[i].numel && close_grad(cs, pt->t[i].name, params_grad(pt, i), g, n);
        free(g);
    }
    t_ok(all_ok, "%s: all %d parameter gradients match torch and are non-zero", cs, pt->n);
    want = FL(cs, "dtaps", &n);
    t_ok(n == per * nt, "%s: dtaps size", cs);
    for (int i = 0; i < nt; i++) {
        char what[64];
        snprintf(what, sizeof what, "taps[%d]", i);
        close_grad(cs, what, c.dtaps[i], want + (size_t)i * per, per);
    }
    free(want);

    /* dtaps = NULL: parameter gradients identical (both from zeroed buffers) */
    float *g0 = xmalloc(pt->total * sizeof(float));
    params_zero_grad(pt);
    segdec_backward(s, pt, c.dlogits, c.dtaps, B);
    memcpy(g0, pt->grad, pt->total * sizeof(float));
    params_zero_grad(pt);
    segdec_backward(s, pt, c.dlogits, NULL, B);
    t_ok(memcmp(g0, pt->grad, pt->total * sizeof(float)) == 0,
         "%s: backward with dtaps = NULL gives bit-identical parameter gradients", cs);
    free(g0);

    /* (b) the loss on the fixture's float32 logits */
    float *lg = FL(cs, "logits", NULL);
    for (size_t i = 0; i < nlog; i++) c.dlogits[i] = 7.0f; /* must be overwritten */
    float sce = (float)SCALAR(cs, "scale_ce");
    double ce = seg_ce_forward_backward(c.dlogits, lg, c.labels, B, NC, c.HW, sce);
    double wce = SCALAR(cs, "ce_sum");
    t_ok(fabs(ce - wce) <= 1e-10 * fabs(wce), "%s: seg_ce sum %.15g vs F.cross_entropy(sum) %.15g (rel 1e-10)", cs,
         ce, wce);
    want = FL(cs, "ce_dlogits", &n);
    snprintf(nm, sizeof nm, "%s: seg_ce dlogits (scale %.2f, overwritten) vs autograd (rtol 1e-6, atol 1e-8)", cs,
             (double)sce);
    t_close(nm, c.dlogits, want, n, 1e-6, 1e-8);
    free(want);
    double ce2 = seg_ce_forward_backward(NULL, lg, c.labels, B, NC, c.HW, sce);
    t_ok(ce2 == ce, "%s: seg_ce with dlogits = NULL gives the same sum", cs);

    /* (c) metric vs torch */
    int64_t *conf = xcalloc((size_t)NC * NC, sizeof(int64_t));
    seg_confusion_add(conf, lg, c.labels, B, NC, c.HW);
    int64_t *wconf = INTS(cs, "conf", &n);
    t_ok(n == (size_t)NC * NC && memcmp(conf, wconf, n * sizeof(int64_t)) == 0,
         "%s: confusion matrix == torch bincount(true*NC + argmax) exactly", cs);
    seg_scores sc = seg_scores_from_confusion(conf, NC);
    double wm = SCALAR(cs, "miou"), wa = SCALAR(cs, "pixel_acc");
    int wcnt = (int)SCALAR(cs, "counted");
    t_ok(fabs(sc.miou - wm) <= 1e-12 && fabs(sc.pixel_acc - wa) <= 1e-12 && sc.classes_counted == wcnt,
         "%s: mIoU %.12f acc %.12f counted %d vs torch/mmseg %.12f %.12f %d (|d| <= 1e-12)", cs, sc.miou,
         sc.pixel_acc, sc.classes_counted, wm, wa, wcnt);
    free(conf);
    free(wconf);
    free(lg);

    /* (d) finite differences of the mean CE loss */
    if (fd) {
        const double margin = SCALAR(cs, "kink_margin"), reach = SCALAR(cs, "kink_reach");
        t_ok(SCALAR(cs, "fd_eps") == FD_EPS && reach < 0.5 * margin,
             "%s: kink-free state for eps %.0e: ReLU inputs >= %.4f from 0, an FD step moves them <= %.4f", cs,
             FD_EPS, margin, reach);
        (void)case_loss(&c);
        seg_ce_forward_backward(c.dlogits, segdec_logits(s), c.labels, B, NC, c.HW, c.scale);
        params_zero_grad(pt);
        memset(c.dtapbuf, 0, per * nt * sizeof(float));
        segdec_backward(s, pt, c.dlogits, c.dtaps, B);
        float *grad = xmalloc(pt->total * sizeof(float));
        memcpy(grad, pt->grad, pt->total * sizeof(float));
        for (int i = 0; i < pt->n; i++) {
            snprintf(nm, sizeof nm, "%s: d CE mean / d %s", cs, pt->t[i].name);
            t_fd_check(nm, case_loss, &c, params_data(pt, i), grad + pt->t[i].offset, pt->t[i].numel, FD_EPS, FD_RTOL,
                       FD_FLOOR, FD_DIRS, 500 + (uint64_t)i);
        }
        float *dt = xmalloc(per * nt * sizeof(float));
        memcpy(dt, c.dtapbuf, per * nt * sizeof(float));
        for (int i = 0; i < nt; i++) {
            snprintf(nm, sizeof nm, "%s: d CE mean / d taps[%d] (CLS rows included)", cs, i);
            t_fd_check(nm, case_loss, &c, c.taps[i], dt + (size_t)i * per, per, FD_EPS, FD_RTOL, FD_FLOOR,
                       FD_DIRS, 900 + (uint64_t)i);
        }
        free(dt);
        free(grad);
    }
    free_case(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* hand-made metric cases                                                                     */

/* logits [1, ncls, 16] making pred[p] the argmax (value 1 vs 0) */
static void onehot_logits(float *lg, const int *pred, int ncls, int HW) {
    for (int c = 0; c < ncls; c++)
        for (int p = 0; p < HW; p++) lg[c * HW + p] = pred[p] == c ? 1.0f : 0.0f;
}

static void test_metric_hand(void) {
    enum { NC = 4, HW = 16 };
    /* 4x4 maps, classes 0..2; class 3 is absent from both truth and prediction.
     *   truth        pred
     *   0 0 1 1      0 0 0 1
     *   0 0 1 1      0 1 1 1
     *   2 2 2 2      2 2 2 1
     *   2 2 2 2      2 2 2 2
     * class 0: TP 3 ((0,0),(0,1),(1,0)), FP 1 ((0,2)), FN 1 ((1,1))          IoU 3/5 = 0.6
     * class 1: TP 3 ((0,3),(1,2),(1,3)), FP 2 ((1,1),(2,3)), FN 1 ((0,2))   IoU 3/6 = 0.5
     * class 2: TP 7, FP 0, FN 1 ((2,3))                                      IoU 7/8 = 0.875
     * class 3: TP+FP+FN = 0: not counted
     * mIoU = (0.6 + 0.5 + 0.875) / 3 = 0.658333...; pixel acc = 13/16 = 0.8125.
     * Pixel (0,0) has all-equal logits (tie -> class 0) and pixel (2,3) ties classes 1 and 2
     * at 2.0 (-> class 1, the lowest index). */
    static const uint8_t truth[HW] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2};
    static const int pred[HW] = {0, 0, 0, 1, 0, 1, 1, 1, 2, 2, 2, 1, 2, 2, 2, 2};
    float lg[NC * HW];
    onehot_logits(lg, pred, NC, HW);
    for (int c = 0; c < NC; c++) lg[c * HW + 0] = 0.5f;
    lg[1 * HW + 11] = 2.0f;
    lg[2 * HW + 11] = 2.0f;
    int64_t conf[NC * NC] = {0};
    seg_confusion_add(conf, lg, truth, 1, NC, HW);
    static const int64_t want_conf[NC * NC] = {3, 1, 0, 0, /* true 0 */
                                               1, 3, 0, 0, /* true 1 */
                                               0, 1, 7, 0, /* true 2 */
                                               0, 0, 0, 0};
    t_ok(memcmp(conf, want_conf, sizeof conf) == 0, "hand 4x4: confusion matrix as computed by hand (ties -> lowest)");
    seg_scores r = seg_scores_from_confusion(conf, NC);
    const double wm = (0.6 + 0.5 + 0.875) / 3;
    t_ok(fabs(r.miou - wm) <= 1e-15 && r.pixel_acc == 0.8125 && r.classes_counted == 3,
         "hand 4x4: mIoU %.15f == %.15f (1e-15), acc %.4f == 0.8125, 3 classes counted (absent class 3 skipped)",
         r.miou, wm, r.pixel_acc);
    /* accumulating a second time doubles the counts and keeps the scores */
    seg_confusion_add(conf, lg, truth, 1, NC, HW);
    int dbl = 1;
    for (int i = 0; i < NC * NC; i++) dbl &= conf[i] == 2 * want_conf[i];
    seg_scores r2 = seg_scores_from_confusion(conf, NC);
    t_ok(dbl && fabs(r2.miou - wm) <= 1e-15 && r2.pixel_acc == 0.8125,
         "hand 4x4: a second seg_confusion_add accumulates (counts doubled, same scores)");

    /* two images in one call, image 1 = perfect prediction: counts add per image */
    uint8_t truth2[2 * HW];
    float lg2[2 * NC * HW];
    memcpy(truth2, truth, HW);
    memcpy(truth2 + HW, truth, HW);
    memcpy(lg2, lg, sizeof lg);
    int tp[HW];
    for (int p = 0; p < HW; p++) tp[p] = truth[p];
    onehot_logits(lg2 + NC * HW, tp, NC, HW);
    int64_t c2[NC * NC] = {0};
    seg_confusion_add(c2, lg2, truth2, 2, NC, HW);
    int64_t want2[NC * NC];
    memcpy(want2, want_conf, sizeof want2);
    want2[0 * NC + 0] += 4; /* image 1: 4 pixels of class 0, 4 of class 1, 8 of class 2, all right */
    want2[1 * NC + 1] += 4;
    want2[2 * NC + 2] += 8;
    int ok = memcmp(c2, want2, sizeof c2) == 0;
    t_ok(ok, "hand: B=2 (image 1 perfect) adds image 1's diagonal (4, 4, 8) to image 0's matrix");

    /* perfect prediction alone */
    int64_t cp[NC * NC] = {0};
    seg_confusion_add(cp, lg2 + NC * HW, truth, 1, NC, HW);
    seg_scores rp = seg_scores_from_confusion(cp, NC);
    t_ok(rp.miou == 1.0 && rp.pixel_acc == 1.0 && rp.classes_counted == 3,
         "hand: perfect prediction gives mIoU 1, acc 1, 3 classes counted");

    /* a class only predicted (FP only) counts with IoU 0:
     * truth all 0 on 2x2, pred {0,0,0,2}: class 0 TP 3 FN 1 -> 3/4; class 2 FP 1 -> 0; class 1, 3
     * not counted; mIoU = 0.375, acc 0.75 */
    uint8_t t4[4] = {0, 0, 0, 0};
    int p4[4] = {0, 0, 0, 2};
    float l4[NC * 4];
    onehot_logits(l4, p4, NC, 4);
    int64_t c4[NC * NC] = {0};
    seg_confusion_add(c4, l4, t4, 1, NC, 4);
    seg_scores r4 = seg_scores_from_confusion(c4, NC);
    t_ok(r4.miou == 0.375 && r4.pixel_acc == 0.75 && r4.classes_counted == 2,
         "hand 2x2: a class only in the prediction counts with IoU 0 (mIoU 0.375, acc 0.75, 2 counted)");

    int64_t c0[NC * NC] = {0};
    seg_scores r0 = seg_scores_from_confusion(c0, NC);
    t_ok(isnan(r0.miou) && isnan(r0.pixel_acc) && r0.classes_counted == 0,
         "empty confusion matrix: mIoU and acc NaN, 0 classes counted");
}

/* hand-made CE: 1 pixel, 3 classes, logits (1, 2, 3), label 2:
 * loss = log(e + e^2 + e^3) - 3 = log(1 + e^-1 + e^-2) = 0.407605964...;
 * dlogits = scale * (softmax - onehot) */
static void test_ce_hand(void) {
    const float lg[3] = {1.0f, 2.0f, 3.0f};
    const uint8_t lab[1] = {2};
    float d[3];
    double loss = seg_ce_forward_backward(d, lg, lab, 1, 3, 1, 2.0f);
    const double z = exp(1.0) + exp(2.0) + exp(3.0), want = log(1.0 + exp(-1.0) + exp(-2.0));
    const double wd[3] = {2 * exp(1.0) / z, 2 * exp(2.0) / z, 2 * (exp(3.0) / z - 1)};
    t_ok(fabs(loss - want) <= 1e-15 && fabs(d[0] - wd[0]) <= 1e-7 && fabs(d[1] - wd[1]) <= 1e-7 &&
             fabs(d[2] - wd[2]) <= 1e-7,
         "hand CE: logits (1,2,3) label 2: loss %.12f == log(1+e^-1+e^-2) (1e-15), grad 2(p - onehot) (1e-7)", loss);

    /* a label >= ncls is fatal with exit code BEIT_EXIT_MISMATCH */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(99);
        const uint8_t bad[1] = {3};
        seg_ce_forward_backward(NULL, lg, bad, 1, 3, 1, 1.0f);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    t_ok(WIFEXITED(status) && WEXITSTATUS(status) == BEIT_EXIT_MISMATCH,
         "seg_ce: label 3 with ncls 3 ends with exit code %d (BEIT_EXIT_MISMATCH)", BEIT_EXIT_MISMATCH);
}

/* ---------------------------------------------------------------------------------------- */
/* init                                                                                       */

static void stats(const float *x, size_t n, double *mean, double *sd, double *amax) {
    double s = 0, s2 = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        m = fmax(m, fabs(x[i]));
    }
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
    *amax = m;
}

static void test_init(void) {
    segdec_dims d = {.ntaps = 3, .D = 64, .gh = 4, .gw = 4, .patch = 2, .E = 48, .ncls = 7, .ln_eps = 1e-6f};
    segdec_dims d2 = d;
    d2.ntaps = 2;
    param_table a, b, c;
    segdec sa, sb, sc;
    params_init(&a);
    params_init(&b);
    params_init(&c);
    segdec_build(&sa, &a, &d, 3);
    segdec_build(&sb, &b, &d2, 3);
    segdec_build(&sc, &c, &d, 3);
    params_alloc(&a);
    params_alloc(&b);
    params_alloc(&c);
    segdec_init(&sa, &a, 42);
    segdec_init(&sb, &b, 42);
    segdec_init(&sc, &c, 43);
    /* order: cls, conv, up, taps ntaps-1..0 (proj w, b, norm w, b) */
    static const char *order[] = {"decoder.cls.weight", "decoder.cls.bias", "decoder.conv.weight",
                                  "decoder.conv.bias", "decoder.up.weight", "decoder.up.bias",
                                  "decoder.taps.2.proj.weight", "decoder.taps.2.proj.bias",
                                  "decoder.taps.2.norm.weight", "decoder.taps.2.norm.bias",
                                  "decoder.taps.1.proj.weight", "decoder.taps.1.proj.bias",
                                  "decoder.taps.1.norm.weight", "decoder.taps.1.norm.bias",
                                  "decoder.taps.0.proj.weight", "decoder.taps.0.proj.bias",
                                  "decoder.taps.0.norm.weight", "decoder.taps.0.norm.bias"};
    int ord = a.n == (int)(sizeof order / sizeof *order);
    for (int i = 0; ord && i < a.n; i++) ord = strcmp(a.t[i].name, order[i]) == 0;
    t_ok(ord, "table order: cls, conv, up, then taps ntaps-1..0 (the order backward finishes them)");
    /* same name -> same values across ntaps; different seed -> different */
    int same = 1, differ = 1;
    for (int j = 0; j < b.n; j++) {
        int i = params_find(&a, b.t[j].name), k = params_find(&c, b.t[j].name);
        same &= i >= 0 && memcmp(params_data(&a, i), params_data(&b, j), b.t[j].numel * sizeof(float)) == 0;
        if (b.t[j].decay) differ &= memcmp(params_data(&c, k), params_data(&b, j), b.t[j].numel * sizeof(float)) != 0;
    }
    t_ok(same, "init depends only on (seed, name): ntaps 3 and ntaps 2 tables agree on every shared tensor");
    t_ok(differ, "init: another seed changes every weight tensor");
    int consts = 1;
    for (int i = 0; i < a.n; i++) {
        const param_info *t = &a.t[i];
        if (t->decay) continue;
        float v = strstr(t->name, "norm.weight") ? 1.0f : 0.0f;
        for (size_t k = 0; k < t->numel; k++) consts &= params_data(&a, i)[k] == v;
    }
    t_ok(consts, "init: LayerNorm weights 1, LayerNorm and all other biases 0");
    /* proj: trunc normal(0, 0.02) at +-2 std: sd = 0.02 * 0.87962 (closed form), |x| <= 0.04 */
    double mean, sd, amax;
    int pw = params_find(&a, "decoder.taps.1.proj.weight");
    stats(params_data(&a, pw), a.t[pw].numel, &mean, &sd, &amax);
    const double tsd = 0.02 * 0.8796256610;
    t_ok(fabs(sd - tsd) <= 0.05 * tsd && fabs(mean) <= 0.1 * tsd && amax <= 0.04 + 1e-7,
         "init proj (%zu values): sd %.5f vs trunc-normal %.5f (5%%), |mean| %.2e <= 0.1 sd, max %.4f <= 2 std",
         a.t[pw].numel, sd, tsd, fabs(mean), amax);
    struct {
        const char *name;
        double fan;
    } he[3] = {{"decoder.conv.weight", 9.0 * 48}, {"decoder.up.weight", 48}, {"decoder.cls.weight", 48}};
    for (int k = 0; k < 3; k++) {
        int i = params_find(&a, he[k].name);
        stats(params_data(&a, i), a.t[i].numel, &mean, &sd, &amax);
        double w = sqrt(2.0 / he[k].fan), tol = 4.0 / sqrt(2.0 * a.t[i].numel) + 0.01;
        t_ok(fabs(sd - w) <= tol * w && fabs(mean) <= 4.0 * w / sqrt((double)a.t[i].numel),
             "init %s (%zu values): sd %.5f vs sqrt(2/%g) = %.5f (rel tol %.3f = 4 sigma), mean %.2e (4 sigma)",
             he[k].name, a.t[i].numel, sd, he[k].fan, w, tol, mean);
    }
    params_free(&a);
    params_free(&b);
    params_free(&c);
    segdec_free(&sa);
    segdec_free(&sb);
    segdec_free(&sc);
}

int main(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/segdec.h5", fx_dir());
    FX = fx_open(path);
    run_case("sq", 1, 0);
    run_case("rect", 0, 0);
    run_case("fd", 1, 1);
    fx_close(FX);
    test_metric_hand();
    test_ce_hand();
    test_init();
    return t_done();
}
