/* models_finetune: the fine-tuning model (include/beit/finetune.h): the encoder with mim 0
 * (per-block relative position tables, no mask token, no lm_head, final norm only for CLS
 * pooling) + the classifier (src/models/clshead.c), built by ft_model_build from a job.
 *
 * (a) Against PyTorch (tests/fixtures/finetune.h5 from tests/fixtures/gen_finetune.py, running
 *     tools/torchref/beit.py's VisionTransformerFinetune -- unilm modeling_finetune -- in
 *     float64 from the same float32 parameters), cases beit_mean, beit_cls, vit_mean:
 *       - the table: names/shapes == named_parameters(); decay and layer id == unilm's
 *         optim_factory rules; lr_scale == layer_decay^(L+1-id) for EVERY tensor (§4: block k
 *         from 0 -> id k+1, embeddings 0, everything after the blocks L+1), rtol 1e-6;
 *       - mean loss with label smoothing 0.1, rtol 1e-5; logits and the last block's attention
 *         |got - want| <= 1e-5 + 1e-4 |want|; every attention row sums to 1 within 1e-5;
 *       - every parameter gradient: |got - want| <= 1e-5 max|want| + 1e-4 |want|; gradient
 *         buffers start at 0.25 (proves accumulation).
 * (b) Directional finite differences of the mean loss w.r.t. head.weight, fc_norm.weight,
 *     a per-block relative table and patch_embed: rtol 1e-2, 3 directions.
 * (c) top-k counting on a hand-made logits matrix.
 */
#include "beit/error.h"
#include "beit/finetune.h"

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
#define NCLS 5
#define BATCH 3
#define TOK ((IMG / PS) * (IMG / PS) + 1)
#define ACC0 0.25f
#define LDECAY 0.65

static fixture *FX;

#define FL(cs, name, n) fx_floats_in(FX, (cs), (name), (n))
#define INTS(cs, name, n) fx_ints_in(FX, (cs), (name), (n))
#define SCALAR(cs, name) fx_scalar_in(FX, (cs), (name))

typedef struct {
    ft_model f;
    float *images, *dp;
    int32_t labels[BATCH];
} fcase;

static double case_loss(void *p) {
    fcase *c = p;
    ft_model_forward(&c->f, c->images, c->dp, BATCH);
    return clshead_loss(&c->f.h, c->labels, BATCH, 0.1f, NULL, NULL) / BATCH;
}

static void run_case(const char *cs, int vanilla, int cls_pool, const char *const *fd, int nfd) {
    beit_config c;
    config_defaults(&c);
    config_set(&c, "task=finetune");
    config_set(&c, vanilla ? "model.arch=vit" : "model.arch=beit");
    const char *sets[] = {"model.img_size=8", "model.patch_size=2", "model.in_chans=3", "model.embed_dim=12",
                          "model.depth=2", "model.num_heads=3", "model.mlp_ratio=2", "model.layer_scale_init=0.1",
                          "finetune.layer_decay=0.65", "finetune.label_smoothing=0.1"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) config_set(&c, sets[i]);
    config_set(&c, cls_pool ? "finetune.pool=cls" : "finetune.pool=mean");
    fcase k;
    memset(&k, 0, sizeof k);
    ft_model_build(&k.f, &c, 0, NCLS, BATCH + 1); /* capacity 4, run on 3 */
    param_table *pt = &k.f.pt;

    /* (a) the table against torch: names, shapes, decay, layer id, lr scale */
    size_t nn, nd, nl;
    char **names = fx_names_in(FX, cs, "names", &nn);
    int64_t *decay = INTS(cs, "decay", &nd), *lid = INTS(cs, "layer_id", &nl);
    int n = 0, names_ok = 1, decay_ok = 1, lid_ok = 1, scale_ok = 1;
    for (; n < (int)nn; n++) {
        const char *tok = names[n];
        int j = params_find(pt, tok);
        if (j < 0) {
            t_diag("%s: torch parameter %s missing from the C table", cs, tok);
            names_ok = 0;
            continue;
        }
        decay_ok &= pt->t[j].decay == decay[n];
        lid_ok &= pt->t[j].layer_id == lid[n];
        if (pt->t[j].layer_id != lid[n]) t_diag("%s: %s layer id %d, reference %d", cs, tok, pt->t[j].layer_id, (int)lid[n]);
        double want = pow(LDECAY, DEPTH + 1 - (int)lid[n]);
        if (fabs(pt->t[j].lr_scale - want) > 1e-6 * want) {
            t_diag("%s: %s lr_scale %g, 0.65^(L+1-%d) = %g", cs, tok, (double)pt->t[j].lr_scale, (int)lid[n], want);
            scale_ok = 0;
        }
    }
    t_ok(names_ok && n == pt->n, "%s: C table == torch named_parameters (%d tensors, table %d)", cs, n, pt->n);
    t_ok(decay_ok, "%s: decay flags == unilm get_parameter_groups rule", cs);
    t_ok(lid_ok, "%s: layer ids == unilm get_num_layer_for_vit (block k -> k+1, embeddings 0, rest L+1)", cs);
    t_ok(scale_ok, "%s: lr_scale == 0.65^(L+1-id) for every tensor (rtol 1e-6)", cs);
    fx_names_free(names, nn);
    free(decay);
    free(lid);

    /* parameters and inputs from the fixture */
    for (int i = 0; i < pt->n; i++) {
        char key[200];
        snprintf(key, sizeof key, "param/%s", pt->t[i].name);
        size_t m;
        float *v = FL(cs, key, &m);
        if (m != pt->t[i].numel) t_diag("%s: %s has %zu values in the fixture", cs, key, m);
        memcpy(params_data(pt, i), v, pt->t[i].numel * sizeof(float));
        free(v);
    }
    k.images = FL(cs, "images", NULL);
    k.dp = FL(cs, "dp", NULL);
    int64_t *lab = INTS(cs, "labels", NULL);
    for (int i = 0; i < BATCH; i++) k.labels[i] = (int32_t)lab[i];
    free(lab);

    double loss = case_loss(&k), want_loss = SCALAR(cs, "loss");
    t_ok(fabs(loss - want_loss) <= 1e-5 * fabs(want_loss), "%s: mean loss (label smoothing 0.1) %.9g vs torch %.9g (rtol 1e-5)",
         cs, loss, want_loss);
    char nm[256];
    size_t m;
    float *want = FL(cs, "logits", &m);
    snprintf(nm, sizeof nm, "%s: logits", cs);
    t_close(nm, clshead_logits(&k.f.h), want, m, 1e-4, 1e-5);
    free(want);
    want = FL(cs, "attn_last", &m);
    snprintf(nm, sizeof nm, "%s: last block attention probabilities", cs);
    t_close(nm, vit_attention(&k.f.m, DEPTH - 1), want, m, 1e-4, 1e-5);
    free(want);
    double worst = 0;
    for (int l = 0; l < DEPTH; l++) {
        const float *a = vit_attention(&k.f.m, l);
        for (int r = 0; r < BATCH * HEADS * TOK; r++) {
            double sum = 0;
            for (int j = 0; j < TOK; j++) sum += a[(size_t)r * TOK + j];
            worst = fmax(worst, fabs(sum - 1));
        }
    }
    t_ok(worst <= 1e-5, "%s: every attention row of every block sums to 1 (worst |sum-1| %.2e <= 1e-5)", cs, worst);

    /* backward into buffers at ACC0 */
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] = ACC0;
    clshead_backward(&k.f.h, pt, vit_features_grad(&k.f.m), 1.0f / BATCH);
    vit_backward(&k.f.m, pt, BATCH);
    for (size_t i = 0; i < pt->total; i++) pt->grad[i] -= ACC0;
    int all_ok = 1;
    for (int i = 0; i < pt->n; i++) {
        char key[200];
        snprintf(key, sizeof key, "grad/%s", pt->t[i].name);
        float *g = FL(cs, key, &m);
        double mx = 0;
        for (size_t q = 0; q < m; q++) mx = fmax(mx, fabs(g[q]));
        snprintf(nm, sizeof nm, "%s: d %s vs torch (atol %.1e = 1e-5 max|want|, rtol 1e-4)", cs, pt->t[i].name, 1e-5 * mx);
        all_ok &= t_close(nm, params_grad(pt, i), g, pt->t[i].numel, 1e-4, 1e-5 * mx) && mx > 0;
        free(g);
    }
    t_ok(all_ok, "%s: all %d parameter gradients match torch and are non-zero", cs, pt->n);

    /* (b) finite differences */
    for (int q = 0; q < nfd; q++) {
        int i = params_find(pt, fd[q]);
        if (!t_ok(i >= 0, "%s: %s exists", cs, fd[q])) continue;
        float *g = xmalloc(pt->t[i].numel * sizeof(float));
        memcpy(g, params_grad(pt, i), pt->t[i].numel * sizeof(float));
        snprintf(nm, sizeof nm, "%s: d loss / d %s (finite differences, rtol 1e-2 of max(|d|, 1e-3))", cs, fd[q]);
        double eps = 1e-2; /* smooth model (GELU, softmax, LayerNorm): truncation error O(eps^2) stays below 1e-2 */
        /* floor 1e-3: the float32 loss's rounding gives finite differences ~3e-6 of noise at this
         * eps (seen: the relative position table's directional derivatives are ~4e-5), so small
         * derivatives are judged to an absolute 1e-5; the exact check against torch is (a) */
        t_fd_check(nm, case_loss, &k, params_data(pt, i), g, pt->t[i].numel, eps, 1e-2, 1e-3, 3, 77 + (uint64_t)q);
        free(g);
    }
    free(k.images);
    free(k.dp);
    ft_model_free(&k.f);
}

int main(void) {
    FX = fx_open("finetune.h5");
    static const char *fd_mean[] = {"head.weight", "fc_norm.weight", "blocks.1.attn.relative_position_bias_table",
                                    "patch_embed.proj.weight", "cls_token"};
    static const char *fd_cls[] = {"head.bias", "norm.weight", "blocks.0.attn.relative_position_bias_table"};
    static const char *fd_vit[] = {"pos_embed", "blocks.0.attn.q_bias"};
    run_case("beit_mean", 0, 0, fd_mean, 5);
    run_case("beit_cls", 0, 1, fd_cls, 3);
    run_case("vit_mean", 1, 0, fd_vit, 2);

    /* (c) top-k on hand-made logits: row 0 label 2 is 3rd largest, row 1 label 0 the largest,
     * row 2 label 4 the smallest of 6 classes */
    const float lg[3 * 6] = {5, 4, 3, 2, 1, 0, 9, 1, 1, 1, 1, 1, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f, 0.6f};
    const int32_t lb[3] = {2, 0, 4};
    t_ok(topk_correct(lg, lb, 3, 6, 1) == 1 && topk_correct(lg, lb, 3, 6, 3) == 2 && topk_correct(lg, lb, 3, 6, 5) == 2 &&
             topk_correct(lg, lb, 3, 6, 6) == 3,
         "topk_correct: top-1 1, top-3 2, top-5 2, top-6 3 on a hand-made 3x6 matrix");
    fx_close(FX);
    return t_done();
}
