/* models_vit: the BEiT / ViT encoder and its MIM heads (src/models/vit.c).
 *
 * (a) Against PyTorch (tests/fixtures/vit.h5 from tests/fixtures/gen_vit.py, which runs
 *     tools/torchref/beit.py -- written from microsoft/unilm's modeling_pretrain.py -- in
 *     float64 from the same float32 parameters and inputs), for both variants (beit, vit),
 *     both heads (tokens, pixels), the all-tokens head and an extra block-output gradient:
 *       - the parameter table: names and shapes equal the module's named_parameters(); decay
 *         and layer id equal the reference's optim_factory rules (computed in Python);
 *       - mean loss, |rel err| <= 1e-5; argmax-correct count exact;
 *       - final features, block-0 output, last block's attention probabilities, pixel
 *         targets: |got - want| <= 1e-5 + 1e-4 |want|;
 *       - EVERY parameter gradient: |got - want| <= ATOL_G + 1e-4 |want|, with ATOL_G = 1e-5
 *         times the largest |want| of that tensor (the entries of one gradient span several
 *         orders of magnitude; tiny ones carry float32 cancellation error of that order).
 *     Gradient buffers start at 0.25, not 0, so the checks also prove backward ACCUMULATES.
 *     The model is allocated for 3 images and run on 2 (activation slabs strided by max_batch).
 * (b) Directional finite differences of the mean loss w.r.t. several parameter tensors
 *     (incl. mask_token and the relative position table): rtol 1e-2, 3 directions, eps 1e-2
 *     (3e-3 for weight matrices with > 100 entries), float32 forward, double loss.
 * (c) Table order (hand-listed, header's documented order) and init statistics against the
 *     closed-form truncated-normal moments.
 */
#include "beit/error.h"
#include "beit/vit.h"

#include "beit/nn.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IMG 8
#define PS 2
#define CH 3
#define DIM 12
#define DEPTH 2
#define HEADS 3
#define HID 24
#define VOC 11
#define BATCH 2
#define GRID (IMG / PS)
#define NPATCH (GRID * GRID)
#define TOK (NPATCH + 1)
#define ACC0 0.25f

#define RTOL 1e-4
#define ATOL 1e-5
#define LOSS_RTOL 1e-5
#define GRAD_ATOL_REL 1e-5
#define FD_EPS 1e-2     /* small tensors (float32 loss noise ~1e-7 / 2 eps must stay small) */
#define FD_EPS_BIG 3e-3 /* weight matrices: a unit-scale direction over hundreds of entries is a
                           big step, so the O(eps^2) term needs the smaller eps */
#define FD_RTOL 1e-2
#define FD_FLOOR 1e-4
#define FD_DIRS 3

static fixture *FX;

#define FL(cs, name, n) fx_floats_in(FX, (cs), (name), (n))
#define INTS(cs, name, n) fx_ints_in(FX, (cs), (name), (n))
#define SCALAR(cs, name) fx_scalar_in(FX, (cs), (name))

static vit_dims small_dims(vit_variant v, vit_head_type h, int all_tokens) {
    vit_dims d = vit_dims_defaults();
    d.img_size = IMG;
    d.patch_size = PS;
    d.in_chans = CH;
    d.embed_dim = DIM;
    d.depth = DEPTH;
    d.num_heads = HEADS;
    d.mlp_hidden = HID;
    d.vocab = VOC;
    d.variant = v;
    d.head = h;
    d.layer_scale_init = 0.1f;
    d.all_tokens = all_tokens;
    return d;
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    const char *cs;
    vit_model m;
    param_table pt;
    float *images, *dp, *pix;
    uint8_t *mask;
    int32_t *tgt;
    int M;
} vcase;

static double case_loss(void *p) {
    vcase *c = p;
    double s = 0;
    vit_forward(&c->m, &c->pt, c->images, c->mask, c->dp, BATCH);
    vit_mim_forward(&c->m, &c->pt, c->tgt, c->pix, c->M, &s, NULL);
    return s / c->M;
}


static void check_table(vcase *c) {
    fx_table_cmp r = fx_compare_table(FX, c->cs, &c->pt);
    t_ok(r.names_ok, "%s: C table names/shapes == torch named_parameters (%zu tensors, table has %d)", c->cs, r.n, c->pt.n);
    t_ok(r.decay_ok, "%s: decay flags == unilm get_parameter_groups rule (skip pos_embed, cls_token)", c->cs);
    t_ok(r.lid_ok, "%s: layer ids == unilm get_num_layer_for_vit(name, L+2)", c->cs);
}

static void load_case(vcase *c, const char *cs, vit_variant v, vit_head_type h, int all_tokens) {
    memset(c, 0, sizeof *c);
    c->cs = cs;
    vit_dims d = small_dims(v, h, all_tokens);
    params_init(&c->pt);
    vit_build(&c->m, &c->pt, &d);
    params_alloc(&c->pt);
    vit_alloc(&c->m, BATCH + 1);
    int loaded = 1;
    for (int i = 0; i < c->pt.n; i++) {
        char key[160];
        snprintf(key, sizeof key, "%s/param/%s", cs, c->pt.t[i].name);
        if (!fx_has(FX, key)) {
            loaded = 0;
            continue;
        }
        size_t n;
        float *x = fx_floats(FX, key, &n);
        if (n != c->pt.t[i].numel) loaded = 0;
        else memcpy(params_data(&c->pt, i), x, n * sizeof(float));
        free(x);
    }
    t_ok(loaded, "%s: every C tensor has a torch parameter of the same size", cs);
    c->images = FL(cs, "images", NULL);
    c->dp = FL(cs, "dp", NULL);
    size_t nm;
    int64_t *mk = INTS(cs, "mask", &nm);
    c->mask = xmalloc(nm);
    for (size_t i = 0; i < nm; i++) c->mask[i] = (uint8_t)mk[i];
    free(mk);
    c->M = (int)SCALAR(cs, "M");
}

static void free_case(vcase *c) {
    free(c->images);
    free(c->dp);
    free(c->mask);
    free(c->tgt);
    free(c->pix);
    vit_free(&c->m);
    params_free(&c->pt);
}

static void run_case(const char *cs, vit_variant v, vit_head_type h, int all_tokens, int blk_obj,
                     const char *const *fd_names, int nfd) {
    vcase c;
    load_case(&c, cs, v, h, all_tokens);
    check_table(&c);
    vit_model *m = &c.m;
    param_table *pt = &c.pt;

    t_ok(vit_head_rows(m, c.mask, BATCH) == c.M, "%s: head rows %d == torch's %d", cs, vit_head_rows(m, c.mask, BATCH), c.M);
    if (h == HEAD_TOKENS) {
        size_t n;
        int64_t *t = INTS(cs, "targets", &n);
        c.tgt = xmalloc(n * sizeof(int32_t) + 4);
        for (size_t i = 0; i < n; i++) c.tgt[i] = (int32_t)t[i];
        free(t);
    } else {
        size_t n;
        char nm0[160];
        float *want = FL(cs, "pixtargets", &n);
        c.pix = xmalloc(n * sizeof(float) + 4);
        int rows = vit_pixel_targets(m, c.pix, c.images, c.mask, BATCH, strcmp(cs, "beit_pixels") == 0);
        t_ok(rows == c.M && n == (size_t)rows * m->K, "%s: vit_pixel_targets gives %d rows", cs, rows);
        snprintf(nm0, sizeof nm0, "%s: vit_pixel_targets vs torch pixel_targets[mask]", cs);
        t_close(nm0, c.pix, want, n, RTOL, ATOL);
        free(want);
    }

    /* forward */
    double loss_sum = 0;
    int correct = -1;
    vit_forward(m, pt, c.images, c.mask, c.dp, BATCH);
    vit_mim_forward(m, pt, c.tgt, c.pix, c.M, &loss_sum, &correct);
    double want_loss = SCALAR(cs, "loss"), got = loss_sum / c.M;
    t_ok(fabs(got - want_loss) <= LOSS_RTOL * fabs(want_loss), "%s: mean loss %.9g vs torch %.9g (rtol %.0e)", cs, got,
         want_loss, LOSS_RTOL);
    if (h == HEAD_TOKENS) {
        int wc = (int)SCALAR(cs, "correct");
        t_ok(correct == wc, "%s: argmax-correct %d == torch %d", cs, correct, wc);
    }
    char nm[200];
    size_t n;
    float *want = FL(cs, "feat", &n);
    snprintf(nm, sizeof nm, "%s: final features", cs);
    t_close(nm, vit_features(m), want, n, RTOL, ATOL);
    free(want);
    want = FL(cs, "blk0", &n);
    snprintf(nm, sizeof nm, "%s: block 0 output (vit_block_output)", cs);
    t_close(nm, vit_block_output(m, 0), want, n, RTOL, ATOL);
    free(want);
    want = FL(cs, "attn_last", &n);
    snprintf(nm, sizeof nm, "%s: last block attention probabilities", cs);
    t_close(nm, vit_attention(m, DEPTH - 1), want, n, RTOL, ATOL);
    free(want);

    /* backward, into gradients that start at ACC0 */
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] = ACC0;
    vit_mim_backward(m, pt, 1.0f / (float)c.M);
    if (blk_obj) {
        float *r = FL(cs, "blk_r", NULL);
        const float *dblock[DEPTH] = {r, NULL};
        vit_backward_ex(m, pt, BATCH, dblock);
        free(r);
    } else {
        vit_backward(m, pt, BATCH);
    }
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] -= ACC0;
    int all_ok = 1;
    for (int i = 0; i < pt->n; i++) {
        char key[160];
        snprintf(key, sizeof key, "grad/%s", pt->t[i].name);
        float *g = FL(cs, key, &n);
        double mx = 0;
        for (size_t k = 0; k < n; k++) mx = fmax(mx, fabs(g[k]));
        snprintf(nm, sizeof nm, "%s: d %s vs torch (atol %.1e = 1e-5 max|want|)", cs, pt->t[i].name, GRAD_ATOL_REL * mx);
        int ok = n == pt->t[i].numel && mx > 0;
        if (mx == 0) t_diag("%s: torch gradient of %s is all zero", cs, pt->t[i].name);
        ok = t_close(nm, params_grad(pt, i), g, pt->t[i].numel, RTOL, GRAD_ATOL_REL * mx) && ok;
        all_ok &= ok;
        free(g);
    }
    t_ok(all_ok, "%s: all %d parameter gradients match torch and are non-zero", cs, pt->n);

    /* finite differences of the mean loss (blk_obj cases are not used for this) */
    for (int k = 0; k < nfd && !blk_obj; k++) {
        int i = params_find(pt, fd_names[k]);
        if (!t_ok(i >= 0, "%s: %s exists", cs, fd_names[k])) continue;
        float *g = xmalloc(pt->t[i].numel * sizeof(float));
        memcpy(g, params_grad(pt, i), pt->t[i].numel * sizeof(float));
        snprintf(nm, sizeof nm, "%s: d loss / d %s", cs, fd_names[k]);
        const double eps = pt->t[i].ndim >= 2 && pt->t[i].numel > 100 ? FD_EPS_BIG : FD_EPS;
        t_fd_check(nm, case_loss, &c, params_data(pt, i), g, pt->t[i].numel, eps, FD_RTOL, FD_FLOOR, FD_DIRS,
                   1000 + (uint64_t)k);
        free(g);
    }
    free_case(&c);
}

/* ---------------------------------------------------------------------------------------- */
/* the table order documented in vit.h, hand-listed for depth 2                              */
static void test_order(void) {
    static const char *beit[] = {
        "lm_head.weight", "lm_head.bias", "norm.weight", "norm.bias",
        "blocks.1.gamma_2", "blocks.1.mlp.fc2.weight", "blocks.1.mlp.fc2.bias", "blocks.1.mlp.fc1.weight",
        "blocks.1.mlp.fc1.bias", "blocks.1.norm2.weight", "blocks.1.norm2.bias", "blocks.1.gamma_1",
        "blocks.1.attn.proj.weight", "blocks.1.attn.proj.bias", "blocks.1.attn.qkv.weight", "blocks.1.attn.q_bias",
        "blocks.1.attn.v_bias", "blocks.1.norm1.weight", "blocks.1.norm1.bias",
        "blocks.0.gamma_2", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias", "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc1.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias", "blocks.0.gamma_1",
        "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.0.attn.qkv.weight", "blocks.0.attn.q_bias",
        "blocks.0.attn.v_bias", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
        "rel_pos_bias.relative_position_bias_table", "cls_token", "mask_token", "patch_embed.proj.weight",
        "patch_embed.proj.bias"};
    static const char *vanilla[] = {
        "lm_head.weight", "lm_head.bias", "norm.weight", "norm.bias",
        "blocks.1.mlp.fc2.weight", "blocks.1.mlp.fc2.bias", "blocks.1.mlp.fc1.weight",
        "blocks.1.mlp.fc1.bias", "blocks.1.norm2.weight", "blocks.1.norm2.bias",
        "blocks.1.attn.proj.weight", "blocks.1.attn.proj.bias", "blocks.1.attn.qkv.weight", "blocks.1.attn.q_bias",
        "blocks.1.attn.v_bias", "blocks.1.norm1.weight", "blocks.1.norm1.bias",
        "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias", "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc1.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias",
        "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.0.attn.qkv.weight", "blocks.0.attn.q_bias",
        "blocks.0.attn.v_bias", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
        "pos_embed", "cls_token", "mask_token", "patch_embed.proj.weight", "patch_embed.proj.bias"};
    for (int var = 0; var < 2; var++) {
        const char **want = var == 0 ? beit : vanilla;
        int nw = var == 0 ? (int)(sizeof beit / sizeof *beit) : (int)(sizeof vanilla / sizeof *vanilla);
        vit_dims d = small_dims(var == 0 ? VIT_BEIT : VIT_VANILLA, HEAD_TOKENS, 0);
        if (var == 1) d.layer_scale_init = 0.0f; /* the paper's vanilla ViT: no LayerScale */
        param_table pt;
        vit_model m;
        params_init(&pt);
        vit_build(&m, &pt, &d);
        int ok = pt.n == nw;
        for (int i = 0; i < nw && ok; i++)
            if (strcmp(pt.t[i].name, want[i]) != 0) {
                t_diag("position %d: %s, expected %s", i, pt.t[i].name, want[i]);
                ok = 0;
            }
        t_ok(ok, "%s table order: head, norm, blocks L-1..0 (backward order inside), %s, cls, mask, patch_embed",
             var == 0 ? "beit" : "vanilla (layer_scale_init 0)", var == 0 ? "rel_pos_bias" : "pos_embed");
        params_alloc(&pt);
        /* offsets are contiguous in that order */
        int contiguous = 1;
        size_t off = 0;
        for (int i = 0; i < pt.n; i++) {
            contiguous &= pt.t[i].offset >= off;
            off = pt.t[i].offset + pt.t[i].numel;
        }
        t_ok(contiguous && off <= pt.total, "%s: buffer offsets increase in table order", var == 0 ? "beit" : "vanilla");
        vit_free(&m);
        params_free(&pt);
    }
    /* LayerScale 0 -> no gamma tensors (reference: init_values 0 leaves gamma_1/2 None) */
    vit_dims d = small_dims(VIT_BEIT, HEAD_PIXELS, 0);
    d.layer_scale_init = 0.0f;
    param_table pt;
    vit_model m;
    params_init(&pt);
    vit_build(&m, &pt, &d);
    int lm = params_find(&pt, "lm_head.weight");
    t_ok(params_find(&pt, "blocks.0.gamma_1") < 0 && pt.n == 35 && lm >= 0 && pt.t[lm].shape[0] == PS * PS * CH,
         "layer_scale_init 0: no gamma tensors; pixel head lm_head is [P*P*C, D]");
    vit_free(&m);
    params_free(&pt);
}

/* ---------------------------------------------------------------------------------------- */
/* init statistics against closed-form truncated-normal moments                              */

/* std of N(0,1) truncated to [-c, c] */
static double trunc_std(double c) {
    double phi = exp(-0.5 * c * c) / 2.5066282746310002 /* sqrt(2 pi) */, Z = erf(c / sqrt(2.0));
    return sqrt(1.0 - 2.0 * c * phi / Z);
}

typedef struct {
    double mean, std, maxabs;
} stats;
static stats stat_of(const float *x, size_t n) {
    double s = 0, s2 = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        mx = fmax(mx, fabs(x[i]));
    }
    stats r = {s / n, sqrt(s2 / n - (s / n) * (s / n)), mx};
    return r;
}

static int all_equal(const param_table *pt, const char *name, float v) {
    int i = params_find(pt, name);
    if (i < 0) return 0;
    const float *x = params_data(pt, i);
    for (size_t k = 0; k < pt->t[i].numel; k++)
        if (x[k] != v) return 0;
    return 1;
}

/* trunc-normal tensor `name` divided by `div`: mean ~ 0, std within rel_tol of the closed form,
 * max |x| <= bound and >= 0.98 bound (with thousands of draws the edge is always approached) */
static int check_trunc(const param_table *pt, const char *name, double std, double c, double div, double rel_tol) {
    int i = params_find(pt, name);
    if (i < 0) return t_ok(0, "init: %s exists", name);
    size_t n = pt->t[i].numel;
    stats s = stat_of(params_data(pt, i), n);
    double want_std = std * trunc_std(c) / div, bound = c * std / div;
    int ok = fabs(s.mean) <= 5.0 * want_std / sqrt((double)n) && fabs(s.std / want_std - 1.0) <= rel_tol &&
             s.maxabs <= bound * (1 + 1e-6) && s.maxabs >= 0.98 * bound;
    return t_ok(ok, "init %s (n %zu): mean %.2e, std %.6f vs %.6f (+-%.0f%%), max|x| %.6f in [0.98, 1] x %.6f", name, n,
                s.mean, s.std, want_std, rel_tol * 100, s.maxabs, bound);
}

static void test_init(void) {
    vit_dims d = vit_dims_defaults();
    d.img_size = 32;
    d.patch_size = 4;
    d.in_chans = 3;
    d.embed_dim = 96;
    d.depth = 4;
    d.num_heads = 4;
    d.mlp_hidden = 384;
    d.vocab = 1024;
    d.layer_scale_init = 0.1f;
    param_table pt;
    vit_model m;
    params_init(&pt);
    vit_build(&m, &pt, &d);
    params_alloc(&pt);
    vit_init(&m, &pt, 42);
    const double sd = 0.02, c = 1.0; /* unilm pre-training: trunc_normal_(std=.02, a=-std, b=std) */
    t_ok(fabs(d.init_std - sd) < 1e-9 && d.init_trunc == 1.0f, "defaults: init_std 0.02, truncation at +-1 std");
    check_trunc(&pt, "lm_head.weight", sd, c, 1.0, 0.02);
    check_trunc(&pt, "patch_embed.proj.weight", sd, c, 1.0, 0.05);
    char nm[96];
    for (int l = 0; l < d.depth; l++) {
        const double div = sqrt(2.0 * (l + 1)); /* fix_init_weight, 1-based layer id */
        snprintf(nm, sizeof nm, "blocks.%d.attn.qkv.weight", l);
        check_trunc(&pt, nm, sd, c, 1.0, 0.03);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.fc1.weight", l);
        check_trunc(&pt, nm, sd, c, 1.0, 0.03);
        snprintf(nm, sizeof nm, "blocks.%d.attn.proj.weight", l);
        check_trunc(&pt, nm, sd, c, div, 0.04);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.fc2.weight", l);
        check_trunc(&pt, nm, sd, c, div, 0.03);
    }
    /* small tensors: within the bound, not all zero */
    const char *small[] = {"cls_token", "mask_token"};
    for (int k = 0; k < 2; k++) {
        int i = params_find(&pt, small[k]);
        stats s = stat_of(params_data(&pt, i), pt.t[i].numel);
        t_ok(s.maxabs <= sd * c * (1 + 1e-6) && s.std > 0.2 * sd * trunc_std(c),
             "init %s: |x| <= 0.02, std %.4f not degenerate", small[k], s.std);
    }
    /* constants */
    int consts = 1;
    for (int i = 0; i < pt.n; i++) {
        const char *n = pt.t[i].name;
        size_t ln = strlen(n);
        if (strstr(n, "norm") && strcmp(n + ln - 7, ".weight") == 0) consts &= all_equal(&pt, n, 1.0f);
        else if (strcmp(n + ln - 5, ".bias") == 0 || strstr(n, "q_bias") || strstr(n, "v_bias"))
            consts &= all_equal(&pt, n, 0.0f);
        else if (strstr(n, "gamma_")) consts &= all_equal(&pt, n, 0.1f);
        else if (strstr(n, "relative_position_bias_table")) consts &= all_equal(&pt, n, 0.0f);
        if (!consts) {
            t_diag("init: %s has a wrong constant", n);
            break;
        }
    }
    t_ok(consts, "init: LayerNorm weights 1, all biases (incl. q/v_bias) 0, gammas = 0.1, rel-pos table 0");
    /* one stream per tensor: same-shape tensors differ; same seed reproduces; another seed differs */
    int q0 = params_find(&pt, "blocks.0.attn.qkv.weight"), q1 = params_find(&pt, "blocks.1.attn.qkv.weight");
    t_ok(memcmp(params_data(&pt, q0), params_data(&pt, q1), pt.t[q0].numel * sizeof(float)) != 0,
         "init: blocks.0 and blocks.1 qkv weights are different draws");
    uint64_t h1 = params_checksum(&pt);
    vit_init(&m, &pt, 42);
    uint64_t h2 = params_checksum(&pt);
    vit_init(&m, &pt, 43);
    uint64_t h3 = params_checksum(&pt);
    t_ok(h1 == h2 && h1 != h3, "init: deterministic in the seed (same seed same bytes, seed 43 differs)");
    vit_free(&m);
    params_free(&pt);

    /* vanilla: pos_embed is trunc-normal; the timm default truncation (+-2 std) when asked */
    d.variant = VIT_VANILLA;
    d.init_trunc = 2.0f;
    params_init(&pt);
    vit_build(&m, &pt, &d);
    params_alloc(&pt);
    vit_init(&m, &pt, 7);
    check_trunc(&pt, "pos_embed", sd, 2.0, 1.0, 0.05);
    check_trunc(&pt, "lm_head.weight", sd, 2.0, 1.0, 0.02);
    check_trunc(&pt, "blocks.3.mlp.fc2.weight", sd, 2.0, sqrt(8.0), 0.03);
    t_ok(params_find(&pt, "blocks.0.gamma_1") >= 0 && params_find(&pt, "rel_pos_bias.relative_position_bias_table") < 0,
         "vanilla with layer_scale_init 0.1: gammas (LayerScale applies to either arch), no relative position table");
    vit_free(&m);
    params_free(&pt);
    d.layer_scale_init = 0.0f; /* the paper's vanilla ViT */
    params_init(&pt);
    vit_build(&m, &pt, &d);
    t_ok(params_find(&pt, "blocks.0.gamma_1") < 0 && params_find(&pt, "blocks.0.gamma_2") < 0,
         "vanilla with layer_scale_init 0: no gamma tensors");
    vit_free(&m);
    params_free(&pt);
    d.layer_scale_init = 0.1f;
}

/* the index buffer vit builds equals unilm's relative_position_index */
static void test_relpos_index(void) {
    vit_dims d = small_dims(VIT_BEIT, HEAD_TOKENS, 0);
    param_table pt;
    vit_model m;
    params_init(&pt);
    vit_build(&m, &pt, &d);
    size_t n;
    int64_t *want = fx_ints(FX, "relpos_index", &n);
    int ok = n == (size_t)TOK * TOK;
    for (size_t i = 0; i < n && ok; i++) ok = m.relpos_index[i] == want[i];
    t_ok(ok, "relative position index == unilm RelativePositionBias buffer (4x4 grid)");
    free(want);
    vit_free(&m);
    params_free(&pt);
}

/* vit_droppath_draw: block l's rate drop_path * l / (L-1) on each branch, the two branches of
 * a block drawn independently (timm's DropPath called once per branch), a sample's scales the
 * same whatever batch it is drawn in. */
static void test_droppath_draw(void) {
    enum { L = 12, N = 20000 };
    const double rate = 0.5; /* large, for statistical power; the rule is linear in it */
    int64_t *ids = malloc(N * sizeof(int64_t));
    for (int b = 0; b < N; b++) ids[b] = 1000 + b;
    float *s = malloc((size_t)L * 2 * N * sizeof(float));
    vit_droppath_draw(s, L, N, rate, 7, 42, ids);
    int rates_ok = 1, values_ok = 1, indep_ok = 1;
    double worst_z = 0, worst_zj = 0;
    for (int l = 0; l < L; l++) {
        double p = rate * l / (L - 1), keep = 1.0 / (1.0 - p);
        long drop[2] = {0, 0}, both = 0;
        for (int b = 0; b < N; b++) {
            float a = s[((size_t)l * 2 + 0) * N + b], m = s[((size_t)l * 2 + 1) * N + b];
            for (int br = 0; br < 2; br++) {
                float v = br ? m : a;
                if (!(v == 0.0f || v == (float)keep)) values_ok = 0;
                drop[br] += v == 0.0f;
            }
            both += a == 0.0f && m == 0.0f;
        }
        double sd = sqrt(N * p * (1 - p)) + 1e-12;
        for (int br = 0; br < 2; br++) {
            double z = fabs(drop[br] - N * p) / sd;
            if (l == 0 ? drop[br] != 0 : z > 5) rates_ok = 0;
            if (z > worst_z) worst_z = z;
        }
        /* independent branches: both dropped with probability p^2 (one shared draw gives p) */
        double q = p * p, sdj = sqrt(N * q * (1 - q)) + 1e-12, zj = fabs(both - N * q) / sdj;
        if (l > 0 && zj > 5) indep_ok = 0;
        if (zj > worst_zj) worst_zj = zj;
    }
    t_ok(values_ok, "droppath_draw: every scale is 0 or 1/(1-p_l)");
    t_ok(rates_ok, "droppath_draw: block l drops each branch at drop_path*l/(L-1) (block 0 never; worst %.1f sd "
         "over %d samples)", worst_z, N);
    t_ok(indep_ok, "droppath_draw: attention and MLP branch drawn independently (both dropped at p^2; worst %.1f sd)",
         worst_zj);
    /* a sample's scales do not depend on the batch it is drawn in (ranks, micro-batches) */
    float *s2 = malloc((size_t)L * 2 * 3 * sizeof(float));
    int64_t some[3] = {ids[5], ids[17], ids[N - 1]};
    int idx_of[3] = {5, 17, N - 1}, same = 1;
    vit_droppath_draw(s2, L, 3, rate, 7, 42, some);
    for (int lb = 0; lb < 2 * L; lb++)
        for (int j = 0; j < 3; j++) same &= s2[(size_t)lb * 3 + j] == s[(size_t)lb * N + idx_of[j]];
    t_ok(same, "droppath_draw: a sample's scales are the same drawn in a batch of 3 as in a batch of %d", N);
    free(s2);
    free(s);
    free(ids);
}

int main(void) {
    FX = fx_open("vit.h5");
    test_droppath_draw();
    test_order();
    test_relpos_index();
    test_init();
    static const char *fd_beit[] = {"mask_token", "rel_pos_bias.relative_position_bias_table", "patch_embed.proj.weight",
                                    "blocks.0.gamma_1", "blocks.1.attn.qkv.weight", "cls_token", "lm_head.weight"};
    static const char *fd_vit[] = {"pos_embed", "mask_token", "blocks.0.attn.q_bias", "blocks.1.mlp.fc2.weight"};
    static const char *fd_pix[] = {"mask_token", "lm_head.bias", "rel_pos_bias.relative_position_bias_table",
                                   "blocks.1.gamma_2"};
    static const char *fd_vpix[] = {"pos_embed", "blocks.0.norm1.weight"};
    static const char *fd_all[] = {"mask_token", "blocks.0.attn.v_bias"};
    run_case("beit_tokens", VIT_BEIT, HEAD_TOKENS, 0, 0, fd_beit, 7);
    run_case("beit_blk", VIT_BEIT, HEAD_TOKENS, 0, 1, NULL, 0);
    run_case("beit_pixels", VIT_BEIT, HEAD_PIXELS, 0, 0, fd_pix, 4);
    run_case("vit_tokens", VIT_VANILLA, HEAD_TOKENS, 0, 0, fd_vit, 4);
    run_case("vit_pixels", VIT_VANILLA, HEAD_PIXELS, 0, 0, fd_vpix, 2);
    run_case("beit_all", VIT_BEIT, HEAD_TOKENS, 1, 0, fd_all, 2);
    fx_close(FX);
    return t_done();
}
