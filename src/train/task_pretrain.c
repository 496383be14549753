/* Masked image modeling (BEiT stage 2): per sample a view (crop) and its visual tokens, a
 * blockwise (or random) mask, the ViT encoder with the mask token, and cross-entropy on the
 * masked positions, normalised by the masked count of the GLOBAL batch. Every random choice
 * of a sample (view, mask, drop path) is keyed by (seed, epoch or step, sample index), so the
 * run does not depend on the number of ranks. */
#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/dvae.h"
#include "beit/error.h"
#include "beit/input.h"
#include "beit/log.h"
#include "beit/masking.h"
#include "beit/nn.h"
#include "beit/rng.h"
#include "beit/source.h"
#include "beit/tasks.h"
#include "beit/tokenizer.h"
#include "beit/tokens.h"
#include "beit/vit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mask_params_from_config(mask_params *p, const beit_config *c) {
    memset(p, 0, sizeof *p);
    p->H = p->W = c->model.img_size / c->model.patch_size;
    p->num_patches = c->mask.num_patches;
    p->min_patches = c->mask.min_patches;
    p->max_patches = c->mask.max_patches;
    p->min_aspect = c->mask.min_aspect;
    p->max_aspect = c->mask.max_aspect;
}

/* The pre-training task. Shapes: n = local_max (this rank's most samples per step), Np = patches
 * per image, S = model.img_size, C = channels, H x W = stored image, L = depth. */
typedef struct {
    const beit_config *c;
    vit_model m;
    param_table pt;
    data_source src;
    token_store *tok; /* targets: tokens (NULL: pixels, online or synthetic) */
    int grid, nviews; /* token grid side, views per image in the store */
    tokenizer tk;         /* tokens_online: a frozen tokenizer (dVAE or DALL-E), from its checkpoint */
    int online;
    mask_params mp;
    int blockwise, head;  /* mask type; HEAD_TOKENS or HEAD_PIXELS */
    int local_max, micro; /* samples per step on this rank (at most); per forward */
    uint8_t *img8;        /* [n,H,W,C] the step's stored images */
    uint8_t *mask;        /* [n,Np] 1 = masked */
    int64_t *idx;         /* [n] sample indices */
    int *views;           /* [n] the token-store view of each sample */
    int32_t *tokens;      /* [n,Np] the whole token grid of each sample */
    crop_box *crops;      /* [n] the crop of each sample */
    float *x;             /* [n,C,S,S] normalised model input */
    float *xdv;           /* [n,C,Sd,Sd] the online tokenizer's views of the step */
    float *dp;            /* [L,2,micro] drop-path scales (attention, MLP branch) */
    float *pixt;          /* [micro*Np,K] pixel targets (HEAD_PIXELS; K = values per patch) */
    int32_t *tgt;         /* [n*Np] token targets of the masked positions, row-major */
    int n_local;          /* samples of this step on this rank */
    int64_t epoch, step;
    ckpt_norm norm;       /* the store's statistics the inputs are normalised with (recorded) */
} pre_task;

/* The view and crop of sample idx in this epoch, the normalised image, the mask. */
static void load_sample(pre_task *t, int i, int64_t epoch) {
    const beit_config *c = t->c;
    vit_model *m = &t->m;
    int64_t idx = t->idx[i];
    rng_t r = rng_stream((uint64_t)c->seed, RNG_AUGMENT, (uint64_t)epoch, (uint32_t)idx);
    crop_box box = crop_identity(t->src.H, t->src.W);
    if (t->tok) {
        t->views[i] = c->aug.enable && t->nviews > 1 ? (int)rng_below(&r, (uint64_t)t->nviews) : 0;
    } else if (c->aug.enable) {
        input_sample_crop(&box, t->src.H, t->src.W, c, &r);
        t->crops[i] = box;
    } else {
        t->crops[i] = box;
    }
    mask_generate(t->mask + (size_t)i * m->Np, &t->mp, t->blockwise, (uint64_t)c->seed, epoch, idx);
}

static double pre_prepare(void *ctx, int64_t step) {
    pre_task *t = ctx;
    vit_model *m = &t->m;
    int64_t spe = source_steps_per_epoch(&t->src);
    t->epoch = step / spe;
    t->step = step;
    t->n_local = source_next(&t->src, t->epoch, step % spe, t->img8, NULL, t->idx);
    for (int i = 0; i < t->n_local; i++) load_sample(t, i, t->epoch);
    if (t->tok) {
        tokens_read(t->tok, t->src.split, t->idx, t->views, t->n_local, t->tokens, t->crops);
    } else if (t->src.synthetic && t->head == HEAD_TOKENS && !t->online) {
        for (int i = 0; i < t->n_local; i++) { /* random tokens, keyed by the sample */
            rng_t r = rng_stream((uint64_t)t->c->seed, RNG_SYNTH, (uint64_t)t->idx[i], 1);
            for (int j = 0; j < m->Np; j++) t->tokens[(size_t)i * m->Np + j] = (int32_t)rng_below(&r, (uint64_t)m->d.vocab);
        }
    }
    const int S = m->d.img_size, C = t->src.C;
    const size_t per = (size_t)C * S * S, bytes = (size_t)t->src.H * t->src.W * C;
    for (int i = 0; i < t->n_local; i++) {
        crop_apply(t->x + i * per, t->img8 + i * bytes, t->src.H, t->src.W, C, &t->crops[i], S);
        if (t->online) /* the same crop, as the tokenizer sees it (its resize) */
            tokenizer_view(&t->tk, t->xdv + (size_t)i * C * t->tk.S * t->tk.S, t->img8 + i * bytes, t->src.H,
                           t->src.W, C, &t->crops[i]);
        input_normalise(t->x + i * per, C, S, t->src.mean, t->src.std);
    }
    if (t->online) tokenizer_encode(&t->tk, t->xdv, t->n_local, t->tokens);
    int masked = 0;
    for (size_t j = 0; j < (size_t)t->n_local * m->Np; j++) masked += t->mask[j];
    return (double)masked;
}

static void pre_fwd_bwd(void *ctx, int64_t step, double global_masked, double *sums) {
    pre_task *t = ctx;
    vit_model *m = &t->m;
    const beit_config *c = t->c;
    const int L = m->d.depth, S = m->d.img_size, C = t->src.C;
    const size_t per = (size_t)C * S * S;
    for (int a = 0; a < t->n_local; a += t->micro) {
        int B = t->n_local - a < t->micro ? t->n_local - a : t->micro;
        vit_droppath_draw(t->dp, L, B, c->model.drop_path, (uint64_t)c->seed, step, t->idx + a);
        const uint8_t *mask = t->mask + (size_t)a * m->Np;
        vit_forward(m, &t->pt, t->x + a * per, mask, c->model.drop_path > 0 ? t->dp : NULL, B);
        int M = vit_head_rows(m, mask, B);
        double loss = 0;
        int correct = 0;
        if (t->head == HEAD_TOKENS) {
            int k = 0;
            for (int i = 0; i < B; i++)
                for (int j = 0; j < m->Np; j++)
                    if (mask[(size_t)i * m->Np + j]) t->tgt[k++] = t->tokens[(size_t)(a + i) * m->Np + j];
            vit_mim_forward(m, &t->pt, t->tgt, NULL, M, &loss, &correct);
        } else {
            vit_pixel_targets(m, t->pixt, t->x + a * per, mask, B, c->pretrain.pixel_norm_per_patch);
            vit_mim_forward(m, &t->pt, NULL, t->pixt, M, &loss, NULL);
        }
        vit_mim_backward(m, &t->pt, (float)(1.0 / global_masked));
        vit_backward(m, &t->pt, B);
        sums[0] += loss;
        sums[1] += M;
        sums[2] += correct;
        sums[3] += M;
    }
}

/* ---- evaluation on the eval split (view 0, masks of epoch 0): masked-token accuracy, or the
 * masked patches' pixel MSE for pixel regression ---- */
typedef struct {
    int64_t n, masked;
    double loss, acc;
    double marginal_entropy; /* of the token marginal (train split, view 0), nats */
    double majority_acc;     /* accuracy of always predicting the most frequent train token */
} pre_eval;

static pre_eval pre_evaluate(pre_task *t, const beit_dist *d) {
    pre_eval e = {0};
    vit_model *m = &t->m;
    const beit_config *c = t->c;
    const int V = m->d.vocab;
    /* the marginal of the train tokens (view 0) */
    int64_t *hist = xcalloc((size_t)V, sizeof(int64_t));
    if (t->head == HEAD_TOKENS) {
        int64_t n = tokens_count(t->tok, c->data.split);
        int64_t lo = n * d->rank / d->size, hi = n * (d->rank + 1) / d->size;
        const int CH = 512;
        int64_t *ix = xmalloc(CH * sizeof(int64_t));
        int *vv = xcalloc(CH, sizeof(int));
        int32_t *tk = xmalloc((size_t)CH * m->Np * sizeof(int32_t));
        for (int64_t s = lo; s < hi; s += CH) {
            int k = (int)(hi - s < CH ? hi - s : CH);
            for (int i = 0; i < k; i++) ix[i] = s + i;
            tokens_read(t->tok, c->data.split, ix, vv, k, tk, NULL);
            for (int j = 0; j < k * m->Np; j++) hist[tk[j]]++;
        }
        free(ix); free(vv); free(tk);
        dist_sum_i64(d, hist, (size_t)V);
    }
    double tot = 0;
    int best = 0;
    for (int v = 0; v < V; v++) {
        tot += (double)hist[v];
        if (hist[v] > hist[best]) best = v;
    }
    for (int v = 0; v < V && tot > 0; v++)
        if (hist[v]) e.marginal_entropy -= (double)hist[v] / tot * log((double)hist[v] / tot);

    data_source src;
    source_open(&src, c, c->data.eval_split, t->micro * d->size, 0, d, t->src.H, t->src.C);
    const int S = m->d.img_size, C = src.C;
    const size_t per = (size_t)C * S * S, bytes = (size_t)src.H * src.W * C;
    double sums[4] = {0};
    for (int64_t s = 0; s < source_steps_per_epoch(&src); s++) {
        int k = source_next(&src, 0, s, t->img8, NULL, t->idx);
        for (int i = 0; i < k; i++) t->views[i] = 0;
        tokens_read(t->tok, c->data.eval_split, t->idx, t->views, k, t->tokens, t->crops);
        for (int i = 0; i < k; i++) {
            mask_generate(t->mask + (size_t)i * m->Np, &t->mp, t->blockwise, (uint64_t)c->seed, 0, t->idx[i]);
            crop_apply(t->x + i * per, t->img8 + i * bytes, src.H, src.W, C, &t->crops[i], S);
            input_normalise(t->x + i * per, C, S, src.mean, src.std);
        }
        if (k == 0) continue;
        vit_forward(m, &t->pt, t->x, t->mask, NULL, k);
        int M = vit_head_rows(m, t->mask, k), q = 0, correct = 0;
        double loss = 0;
        if (t->head == HEAD_PIXELS) {
            vit_pixel_targets(m, t->pixt, t->x, t->mask, k, c->pretrain.pixel_norm_per_patch);
            vit_mim_forward(m, &t->pt, NULL, t->pixt, M, &loss, NULL);
            sums[0] += loss;
            sums[2] += M;
            e.n += k;
            continue;
        }
        for (int i = 0; i < k; i++)
            for (int j = 0; j < m->Np; j++)
                if (t->mask[(size_t)i * m->Np + j]) {
                    t->tgt[q] = t->tokens[(size_t)i * m->Np + j];
                    sums[3] += t->tgt[q] == best;
                    q++;
                }
        vit_mim_forward(m, &t->pt, t->tgt, NULL, M, &loss, &correct);
        sums[0] += loss;
        sums[1] += correct;
        sums[2] += M;
        e.n += k;
    }
    double n = (double)e.n;
    dist_sum_f64(d, sums, 4);
    dist_sum_f64(d, &n, 1);
    e.n = (int64_t)n;
    e.masked = (int64_t)sums[2];
    e.loss = sums[0] / sums[2];
    e.acc = sums[1] / sums[2];
    e.majority_acc = sums[3] / sums[2];
    source_close(&src);
    free(hist);
    return e;
}

/* With a token store (pixel regression: its stored views), after a finished run (or one of
 * --steps) and every train.eval_every steps. */
static int pre_eval_hook(void *ctx, const train_result *res, const train_opts *o, const beit_dist *d,
                         eval_results *out) {
    pre_task *t = ctx;
    const beit_config *c = t->c;
    const int ended = res->steps_done >= train_total_steps(c, source_steps_per_epoch(&t->src)) || o->max_steps >= 0;
    if (!(t->tok && (ended || !res->final) && tokens_count(t->tok, c->data.eval_split) >= 0)) return 0;
    double t0 = beit_now();
    pre_eval e = pre_evaluate(t, d);
    const int px = t->head == HEAD_PIXELS;
    if (px)
        beit_log("eval on '%s' (%lld images, %lld masked patches): pixel MSE %.4f (%.1fs)", c->data.eval_split,
                 (long long)e.n, (long long)e.masked, e.loss, beit_now() - t0);
    else
        beit_log("eval on '%s' (%lld images, %lld masked tokens): loss %.4f, masked-token accuracy %.4f; "
                 "always-most-frequent-token accuracy %.4f; token marginal entropy %.4f nats (ln V = %.4f) (%.1fs)",
                 c->data.eval_split, (long long)e.n, (long long)e.masked, e.loss, e.acc, e.majority_acc,
                 e.marginal_entropy, log((double)t->m.d.vocab), beit_now() - t0);
    eval_put_str(out, "task", "pretrain");
    eval_put_str(out, "target", px ? "pixels" : "tokens");
    eval_put_str(out, "split", c->data.eval_split);
    eval_put_int(out, "step", res->steps_done);
    eval_put_int(out, "n", e.n);
    eval_put_int(out, "masked", e.masked);
    eval_put_num(out, "loss", "%.8g", e.loss); /* cross-entropy, or the pixels' MSE */
    if (!px) {
        eval_put_num(out, "mim_acc", "%.8g", e.acc);
        eval_put_num(out, "majority_acc", "%.8g", e.majority_acc);
        eval_put_num(out, "marginal_entropy", "%.8g", e.marginal_entropy);
    }
    eval_put_num(out, "train_loss_last", "%.8g", res->last_loss);
    return 1;
}

static int64_t ipow2(int64_t x) { return x * x; }

int pretrain_main(const beit_config *c, const train_opts *o, const beit_dist *d) {
    pre_task *t = xcalloc(1, sizeof *t);
    t->c = c;
    t->head = c->pretrain.target == BEIT_TARGET_PIXELS ? HEAD_PIXELS : HEAD_TOKENS;
    t->blockwise = c->mask.type == BEIT_MASK_BLOCK;
    mask_params_from_config(&t->mp, c);
    mask_params_check(&t->mp, t->blockwise, o->source);
    vit_dims vd;
    vit_dims_from_config(&vd, c, t->head);
    params_init(&t->pt);
    vit_build(&t->m, &t->pt, &vd);
    params_alloc(&t->pt);
    vit_init(&t->m, &t->pt, (uint64_t)c->seed);
    vit_model *m = &t->m;

    source_open(&t->src, c, c->data.split, c->train.global_batch, 1, d, vd.img_size, vd.in_chans);
    if (t->src.C != vd.in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: model.in_chans = %d but the images of %s have %d channels", o->source,
                        vd.in_chans, c->data.path, t->src.C);
    input_norm_set(&t->norm, t->src.mean, t->src.std, t->src.C);
    /* pixel regression with a token store: the store's views (crops and flips) instead of crops
     * drawn on the fly, so that both targets see the same images */
    const int pixel_views = c->pretrain.target == BEIT_TARGET_PIXELS && c->data.tokens[0] && !t->src.synthetic;
    if ((c->pretrain.target == BEIT_TARGET_TOKENS && !t->src.synthetic) || pixel_views) {
        if (!c->data.tokens[0])
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: pretrain.target is tokens but data.tokens (the token store from "
                            "beit tokenize) is not set", o->source);
        t->tok = tokens_open(c->data.tokens, MPI_COMM_NULL);
        t->grid = tokens_grid(t->tok);
        t->nviews = tokens_views(t->tok);
        if (pixel_views)
            beit_log("pretrain: pixel targets on the %d stored view%s per image of %s", t->nviews,
                     t->nviews == 1 ? "" : "s", c->data.tokens);
        if (!pixel_views && tokens_vocab(t->tok) != vd.vocab)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: the token store has V = %d visual tokens, model.vocab_size = %d",
                            c->data.tokens, tokens_vocab(t->tok), vd.vocab);
        if (t->grid != m->gh)
            beit_fatal_user(BEIT_EXIT_MISMATCH,
                            "%s: the token grid is %dx%d but model.img_size / model.patch_size = %d/%d gives %dx%d patches",
                            c->data.tokens, t->grid, t->grid, vd.img_size, vd.patch_size, m->gh, m->gw);
        if (strcmp(tokens_dataset_uuid(t->tok), t->src.uuid) != 0)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: tokens of dataset %s, but %s is dataset %s (tokenize this store)",
                            c->data.tokens, tokens_dataset_uuid(t->tok), c->data.path, t->src.uuid);
        if (tokens_count(t->tok, c->data.split) < t->src.n)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: split '%s' has %lld token rows, the store %lld samples",
                            c->data.tokens, c->data.split, (long long)tokens_count(t->tok, c->data.split),
                            (long long)t->src.n);
    }
    if (c->pretrain.target == BEIT_TARGET_TOKENS_ONLINE) {
        if (!c->tokenize.checkpoint[0])
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: tokens_online needs tokenize.checkpoint (a tokenizer: a dVAE or DALL-E encoder checkpoint)", o->source);
        tokenizer_open(&t->tk, c->tokenize.checkpoint, 0);
        const tokenizer *tk = &t->tk;
        if (tk->V != vd.vocab || tk->h != m->gh)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: tokenizer gives %dx%d tokens over V = %d, the model needs %dx%d over %d",
                            c->tokenize.checkpoint, tk->h, tk->h, tk->V, m->gh, m->gw, vd.vocab);
        if (tk->C != vd.in_chans)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: the tokenizer takes %d channels, model.in_chans = %d",
                            c->tokenize.checkpoint, tk->C, vd.in_chans);
        t->online = 1;
    }
    if (c->train.eval_every > 0 && !t->tok)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: train.eval_every = %d, but pre-training evaluates on the eval split of "
                        "a token store (data.tokens), and there is none", o->source, c->train.eval_every);
    t->local_max = source_local_max(&t->src);
    if (t->online) {
        /* beit's dVAE: one view per call, as always; DALL-E's encoder (50 GFLOP per view at
         * 112x112): the step's views in batches within 512 MiB of activations */
        const int B = t->tk.cm.kind == MODEL_DVAE ? 1 : tokenizer_batch_within(&t->tk, (size_t)512 << 20, t->local_max);
        tokenizer_alloc(&t->tk, B);
        t->xdv = xalloc_floats((size_t)t->local_max * t->tk.C * t->tk.S * t->tk.S);
        beit_log("tokens_online: %s tokenizer %s, %dx%d views (%s resize) -> %dx%d tokens, %d view%s per forward",
                 t->tk.kind, c->tokenize.checkpoint, t->tk.S, t->tk.S, t->tk.resize_name, t->tk.h, t->tk.h, B,
                 B == 1 ? "" : "s");
    }
    t->micro = c->train.micro_batch > 0 && c->train.micro_batch < t->local_max ? c->train.micro_batch : t->local_max;
    vit_alloc(m, t->micro);
    const size_t per = (size_t)vd.in_chans * ipow2(vd.img_size);
    t->img8 = xmalloc((size_t)t->local_max * t->src.H * t->src.W * t->src.C);
    t->idx = xmalloc((size_t)t->local_max * sizeof(int64_t));
    t->views = xcalloc((size_t)t->local_max, sizeof(int));
    t->crops = xcalloc((size_t)t->local_max, sizeof(crop_box));
    t->mask = xcalloc((size_t)t->local_max * m->Np, 1);
    t->tokens = xcalloc((size_t)t->local_max * m->Np, sizeof(int32_t));
    t->tgt = xcalloc((size_t)t->local_max * m->Np, sizeof(int32_t));
    t->x = xalloc_floats((size_t)t->local_max * per);
    t->dp = xalloc_floats((size_t)2 * vd.depth * t->micro);
    if (t->head == HEAD_PIXELS) t->pixt = xalloc_floats((size_t)t->micro * m->Np * m->K);

    beit_log("pretrain: %s ViT, %dx%dx%d images, patch %d (%dx%d grid), D %d, %d blocks, %d heads; target %s, "
             "%s masking of %d patches (min block %d)",
             vd.variant == VIT_BEIT ? "BEiT" : "vanilla", vd.img_size, vd.img_size, vd.in_chans, vd.patch_size, m->gh,
             m->gw, vd.embed_dim, vd.depth, vd.num_heads, config_enum_name("pretrain.target", c->pretrain.target),
             t->blockwise ? "blockwise" : "random", t->mp.num_patches, t->mp.min_patches);

    /* loss: cross-entropy (tokens) or MSE (pixels) */
    train_task task = {.kind = "beit-pretrain", .pt = &t->pt, .ctx = t,
                       .steps_per_epoch = source_steps_per_epoch(&t->src),
                       .images_per_step = c->train.global_batch,
                       .nmetrics = 2, .metric_names = {"loss", "mim_acc"},
                       .prepare = pre_prepare, .forward_backward = pre_fwd_bwd, .evaluate = pre_eval_hook,
                       .norm = &t->norm};
    train_run(&task, c, o, d);

    if (t->tok) tokens_close(t->tok);
    source_close(&t->src);
    if (t->online) {
        tokenizer_free(&t->tk);
        free(t->xdv);
    }
    free(t->img8); free(t->idx); free(t->views); free(t->crops); free(t->mask); free(t->tokens); free(t->tgt);
    free(t->x); free(t->dp); free(t->pixt);
    vit_free(m);
    params_free(&t->pt);
    free(t);
    return 0;
}
