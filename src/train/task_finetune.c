/* Fine-tuning (classification and semantic segmentation) of a pre-trained BEiT encoder, and its
 * evaluation. Recipe of the reference (beit-reference.md §4): layer-wise lr decay
 * decay^(L+1-id), label smoothing, drop path, warmup + cosine, random resized crop + flip.
 * Data parallel through the shared training loop; every random choice of a sample (crop,
 * flip, drop path) is keyed by (seed, epoch or step, sample index), so runs do not depend on
 * the number of ranks. Model and loading rules: include/beit/finetune.h. */
#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/finetune.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/nn.h"
#include "beit/rng.h"
#include "beit/source.h"
#include "beit/store.h"
#include "beit/tasks.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ft_vit_dims(vit_dims *d, const beit_config *c, int seg) {
    vit_dims_from_config(d, c, HEAD_TOKENS);
    d->mim = 0;
    d->rel_per_block = d->variant == VIT_BEIT;
    d->final_norm = !seg && c->finetune.pool == BEIT_POOL_CLS;
    d->init_trunc = 2.0f / d->init_std; /* timm's trunc_normal_(std=.02): a=-2, b=2 absolute */
}

void ft_model_build(ft_model *f, const beit_config *c, int seg, int ncls, int max_batch) {
    memset(f, 0, sizeof *f);
    f->seg = seg;
    f->ncls = ncls;
    f->max_batch = max_batch;
    vit_dims vd;
    ft_vit_dims(&vd, c, seg);
    const int L = vd.depth, T = (vd.img_size / vd.patch_size) * (vd.img_size / vd.patch_size) + 1;
    params_init(&f->pt);
    /* the head's gradients are final first: it goes first in the table */
    if (!seg) {
        clshead_build(&f->h, &f->pt, vd.embed_dim, T, ncls, c->finetune.pool == BEIT_POOL_CLS ? CLSHEAD_POOL_CLS
                                                                                               : CLSHEAD_POOL_MEAN, L + 1);
    } else {
        f->ntaps = c->finetune.seg_blocks.n;
        for (int i = 0; i < f->ntaps; i++) f->tap_block[i] = c->finetune.seg_blocks.v[i] - 1;
        segdec_dims sdd = {f->ntaps, vd.embed_dim, vd.img_size / vd.patch_size, vd.img_size / vd.patch_size,
                           vd.patch_size, c->finetune.decoder_dim, ncls, 1e-6f};
        segdec_build(&f->sd, &f->pt, &sdd, L + 1);
    }
    vit_build(&f->m, &f->pt, &vd);
    params_alloc(&f->pt);
    vit_init(&f->m, &f->pt, (uint64_t)c->seed);
    if (!seg) clshead_init(&f->h, &f->pt, (uint64_t)c->seed, (float)c->finetune.head_init_scale);
    else segdec_init(&f->sd, &f->pt, (uint64_t)c->seed);
    params_set_layer_decay(&f->pt, c->finetune.layer_decay, L);
    vit_alloc(&f->m, max_batch);
    if (!seg) {
        clshead_alloc(&f->h, max_batch);
    } else {
        segdec_alloc(&f->sd, max_batch);
        f->dtaps = xalloc_floats((size_t)f->ntaps * max_batch * f->m.T * vd.embed_dim);
        f->seg_dlogits = xalloc_floats((size_t)max_batch * ncls * vd.img_size * vd.img_size);
    }
}

void ft_model_free(ft_model *f) {
    if (!f->seg) clshead_free(&f->h);
    else segdec_free(&f->sd);
    vit_free(&f->m);
    params_free(&f->pt);
    free(f->dtaps);
    free(f->seg_dlogits);
    memset(f, 0, sizeof *f);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

void ft_model_load_init(ft_model *f, const char *path) {
    ckpt_reader r;
    ckpt_open(&r, path);
    const char *want = f->seg ? FT_KIND_SEG : FT_KIND_CLS;
    const int pretrained = strcmp(r.kind, "beit-pretrain") == 0;
    if (!pretrained && strcmp(r.kind, want) != 0)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: a '%s' checkpoint cannot initialise this %s job (it takes a pre-training checkpoint "
                        "from beit pretrain, or a '%s' checkpoint)",
                        path, r.kind, f->seg ? "segmentation" : "classification", want);
    int loaded = 0, copied = 0, fresh = 0, blk;
    char rest[PARAM_NAME_MAX];
    for (int i = 0; i < f->pt.n; i++) {
        const param_info *p = &f->pt.t[i];
        float *dst = params_data(&f->pt, i);
        const int head = starts_with(p->name, "head.") || starts_with(p->name, "fc_norm.") ||
                         starts_with(p->name, "decoder.");
        if (pretrained && head) {
            fresh++;
            continue;
        }
        if (ckpt_read_param(&r, p->name, p, dst)) {
            loaded++;
            continue;
        }
        if (pretrained && sscanf(p->name, "blocks.%d.%63s", &blk, rest) == 2 &&
            strcmp(rest, "attn.relative_position_bias_table") == 0 &&
            ckpt_read_param(&r, "rel_pos_bias.relative_position_bias_table", p, dst)) {
            copied++;
            continue;
        }
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: no tensor %s (the fine-tuning model needs it; the checkpoint is a '%s' of another "
                        "architecture: compare model.* of the two jobs)",
                        path, p->name, r.kind);
    }
    beit_log("init from %s ('%s', step %lld): %d tensors loaded, %d per-block relative position tables copied from "
             "the shared one, %d new head tensors",
             path, r.kind, (long long)r.step, loaded, copied, fresh);
    ckpt_close(&r);
}

void ft_model_forward(ft_model *f, const float *x, const float *dp, int B) {
    vit_forward(&f->m, &f->pt, x, NULL, dp, B);
    if (!f->seg) {
        clshead_forward(&f->h, &f->pt, vit_features(&f->m), B);
    } else {
        const float *taps[FT_MAX_TAPS];
        for (int i = 0; i < f->ntaps; i++) taps[i] = vit_block_output(&f->m, f->tap_block[i]);
        segdec_forward(&f->sd, &f->pt, taps, B);
    }
}

/* gradient of scale * (summed loss of the last forward) into pt->grad */
static void ft_model_backward(ft_model *f, float scale, int B) {
    vit_model *m = &f->m;
    if (!f->seg) {
        clshead_backward(&f->h, &f->pt, vit_features_grad(m), scale);
        vit_backward(m, &f->pt, B);
        return;
    }
    const size_t per = (size_t)B * m->T * m->d.embed_dim, stride = (size_t)f->max_batch * m->T * m->d.embed_dim;
    float *dt[FT_MAX_TAPS];
    for (int i = 0; i < f->ntaps; i++) {
        dt[i] = f->dtaps + i * stride;
        memset(dt[i], 0, per * sizeof(float));
    }
    segdec_backward(&f->sd, &f->pt, f->seg_dlogits, dt, B);
    /* per block, the sum of its taps' gradients (a block may be tapped twice) */
    const float *dblock[64] = {0};
    if (m->d.depth > 64) beit_fatal(BEIT_EXIT_FAILURE, "segmentation: depth %d > 64", m->d.depth);
    for (int i = 0; i < f->ntaps; i++) {
        int k = f->tap_block[i];
        if (!dblock[k]) {
            dblock[k] = dt[i];
        } else {
            float *acc = (float *)dblock[k];
            for (size_t j = 0; j < per; j++) acc[j] += dt[i][j];
        }
    }
    vit_backward_ex(m, &f->pt, B, dblock);
}

void ft_prepare_image(float *x, uint8_t *labmap_out, const uint8_t *img, const uint8_t *labmap, int H, int W, int C,
                      const crop_box *b, int S, const double *mean, const double *std) {
    crop_apply(x, img, H, W, C, b, S);
    for (int k = 0; k < C; k++) {
        float mu = (float)mean[k], inv = (float)(1.0 / std[k]);
        float *p = x + (size_t)k * S * S;
        for (int j = 0; j < S * S; j++) p[j] = (p[j] - mu) * inv;
    }
    if (labmap && labmap_out) /* nearest neighbour: the source pixel under each output pixel's centre */
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++) {
                int sx = b->flip ? S - 1 - xx : xx;
                int py = (int)floor(b->y0 + (y + 0.5) * b->h / S), px = (int)floor(b->x0 + (sx + 0.5) * b->w / S);
                py = py < 0 ? 0 : py >= H ? H - 1 : py;
                px = px < 0 ? 0 : px >= W ? W - 1 : px;
                labmap_out[(size_t)y * S + xx] = labmap[(size_t)py * W + px];
            }
}

/* ---- the training task ---- */
typedef struct {
    const beit_config *c;
    ft_model f;
    data_source src;
    int local_max, micro, S;
    uint8_t *img8, *lab8, *labc; /* images, stored label maps, cropped label maps */
    int32_t *labels;
    int64_t *idx;
    int64_t *conf; /* [NC,NC] segmentation: the step's confusion matrix */
    float *x, *dp;
    int n_local;
} ft_task;

static double ft_prepare(void *ctx, int64_t step) {
    ft_task *t = ctx;
    const beit_config *c = t->c;
    int64_t spe = source_steps_per_epoch(&t->src), epoch = step / spe;
    t->n_local = source_next(&t->src, epoch, step % spe, t->img8, t->labels, t->idx);
    const int H = t->src.H, W = t->src.W, C = t->src.C, S = t->S;
    if (t->f.seg) store_read_masks(t->src.store, t->src.split, t->idx, t->n_local, t->lab8);
    for (int i = 0; i < t->n_local; i++) {
        crop_box b = crop_identity(H, W);
        if (c->aug.enable) {
            rng_t r = rng_stream((uint64_t)c->seed, RNG_AUGMENT, (uint64_t)epoch, (uint32_t)t->idx[i]);
            crop_sample(&b, H, W, c->aug.crop_scale_min, c->aug.crop_scale_max, c->aug.crop_ratio_min,
                        c->aug.crop_ratio_max, c->aug.flip, &r);
        }
        ft_prepare_image(t->x + (size_t)i * C * S * S, t->f.seg ? t->labc + (size_t)i * S * S : NULL,
                         t->img8 + (size_t)i * H * W * C, t->f.seg ? t->lab8 + (size_t)i * H * W : NULL, H, W, C, &b, S,
                         t->src.mean, t->src.std);
    }
    return t->f.seg ? (double)t->n_local * S * S : (double)t->n_local;
}

static void ft_fwd_bwd(void *ctx, int64_t step, double global_count, double *sums) {
    ft_task *t = ctx;
    const beit_config *c = t->c;
    ft_model *f = &t->f;
    const int L = f->m.d.depth, S = t->S, C = t->src.C;
    for (int a = 0; a < t->n_local; a += t->micro) {
        int B = t->n_local - a < t->micro ? t->n_local - a : t->micro;
        for (int i = 0; i < B; i++) { /* drop path: rate l/(L-1) * drop_path for block l */
            rng_t r = rng_stream((uint64_t)c->seed, RNG_DROPPATH, (uint64_t)step, (uint32_t)t->idx[a + i]);
            for (int l = 0; l < L; l++) {
                double p = L > 1 ? c->model.drop_path * l / (L - 1) : 0;
                float u = rng_uniform(&r);
                t->dp[(size_t)l * B + i] = u < p ? 0.0f : (float)(1.0 / (1.0 - p));
            }
        }
        ft_model_forward(f, t->x + (size_t)a * C * S * S, c->model.drop_path > 0 ? t->dp : NULL, B);
        if (!f->seg) {
            int top1 = 0;
            double loss = clshead_loss(&f->h, t->labels + a, B, (float)c->finetune.label_smoothing, &top1, NULL);
            sums[0] += loss;
            sums[1] += B;
            sums[2] += top1;
            sums[3] += B;
        } else {
            const int HW = S * S;
            double loss = seg_ce_forward_backward(f->seg_dlogits, segdec_logits(&f->sd), t->labc + (size_t)a * HW, B,
                                                  f->ncls, HW, (float)(1.0 / global_count));
            memset(t->conf, 0, (size_t)f->ncls * f->ncls * sizeof(int64_t));
            seg_confusion_add(t->conf, segdec_logits(&f->sd), t->labc + (size_t)a * HW, B, f->ncls, HW);
            int64_t correct = 0; /* pixel accuracy: the trace */
            for (int k = 0; k < f->ncls; k++) correct += t->conf[(size_t)k * f->ncls + k];
            sums[0] += loss;
            sums[1] += (double)B * HW;
            sums[2] += (double)correct;
            sums[3] += (double)B * HW;
        }
        ft_model_backward(f, (float)(1.0 / global_count), B);
    }
}

/* ---- evaluation ---- */
ft_eval_result ft_evaluate(ft_model *f, const beit_config *c, const char *data_path, const char *split,
                           const beit_dist *d, const char *png_path) {
    ft_eval_result e = {0};
    beit_config ec = *c;
    snprintf(ec.data.path, sizeof ec.data.path, "%s", data_path);
    ec.data.source = BEIT_DATA_STORE;
    ec.data.subset = 0;
    const int S = f->m.d.img_size, C = f->m.d.in_chans, B = f->max_batch;
    data_source src;
    source_open(&src, &ec, split, B * d->size, 0, d, S, C);
    if (src.C != C || (f->seg && (src.H != S || src.W != S))) /* classification resamples to S */
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images are %dx%dx%d, the model takes %dx%dx%d", data_path, src.H,
                        src.W, src.C, S, S, C);
    if (f->seg && !store_has_masks(src.store))
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: no per-pixel labels (/<split>/masks): a segmentation model needs a "
                        "segmentation store (beit data mosaic)", data_path);
    if (src.num_classes != f->ncls)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: %d classes, the model's %s has %d", data_path, src.num_classes,
                        f->seg ? "decoder" : "head", f->ncls);
    const int H = src.H, W = src.W, HW = S * S, NC = f->ncls;
    uint8_t *img8 = xmalloc((size_t)B * H * W * C), *lab8 = f->seg ? xmalloc((size_t)B * H * W) : NULL;
    uint8_t *labc = f->seg ? xmalloc((size_t)B * HW) : NULL;
    int32_t *labels = xcalloc((size_t)B, sizeof(int32_t));
    int64_t *idx = xcalloc((size_t)B, sizeof(int64_t));
    float *x = xalloc_floats((size_t)B * C * HW);
    int64_t *conf = f->seg ? xcalloc((size_t)NC * NC, sizeof(int64_t)) : NULL;
    double sums[4] = {0}; /* loss, top1, top5, n */
    /* PNG: the first 8 images of the split (rank 0 holds them: sequential slices) */
    const int npng = 8;
    uint8_t *tiles = NULL;
    int ntile = 0;
    if (png_path && f->seg && d->rank == 0) tiles = xcalloc((size_t)npng * 3 * HW * 3, 1);
    crop_box whole = crop_identity(H, W);
    for (int64_t s = 0; s < source_steps_per_epoch(&src); s++) {
        int k = source_next(&src, 0, s, img8, labels, idx);
        if (f->seg) store_read_masks(src.store, split, idx, k, lab8);
        for (int i = 0; i < k; i++)
            ft_prepare_image(x + (size_t)i * C * HW, f->seg ? labc + (size_t)i * HW : NULL, img8 + (size_t)i * H * W * C,
                             f->seg ? lab8 + (size_t)i * H * W : NULL, H, W, C, &whole, S, src.mean, src.std);
        if (k == 0) continue;
        ft_model_forward(f, x, NULL, k);
        if (!f->seg) {
            int t1 = 0, t5 = 0;
            sums[0] += clshead_loss(&f->h, labels, k, 0.0f, &t1, &t5);
            sums[1] += t1;
            sums[2] += t5;
            sums[3] += k;
        } else {
            const float *lg = segdec_logits(&f->sd);
            sums[0] += seg_ce_forward_backward(f->seg_dlogits, lg, labc, k, NC, HW, 0.0f);
            sums[3] += k;
            seg_confusion_add(conf, lg, labc, k, NC, HW);
            for (int i = 0; tiles && i < k && ntile < npng; i++, ntile++) {
                static const uint8_t pal[11][3] = {{0, 0, 0},       {230, 25, 75},  {60, 180, 75}, {255, 225, 25},
                                                   {0, 130, 200},   {245, 130, 48}, {145, 30, 180}, {70, 240, 240},
                                                   {240, 50, 230},  {210, 245, 60}, {250, 190, 212}};
                uint8_t *row = tiles + (size_t)ntile * 3 * HW * 3;
                for (int q = 0; q < HW; q++) {
                    int best = 0;
                    for (int cc = 1; cc < NC; cc++)
                        if (lg[((size_t)i * NC + cc) * HW + q] > lg[((size_t)i * NC + best) * HW + q]) best = cc;
                    uint8_t g = img8[(size_t)i * H * W * C + (size_t)q * C];
                    int tl = labc[(size_t)i * HW + q] % 11, pl = best % 11;
                    for (int ch = 0; ch < 3; ch++) {
                        row[(size_t)q * 3 + ch] = g;
                        row[((size_t)HW + q) * 3 + ch] = pal[tl][ch];
                        row[((size_t)2 * HW + q) * 3 + ch] = pal[pl][ch];
                    }
                }
            }
        }
    }
    dist_sum_f64(d, sums, 4);
    e.n = (int64_t)sums[3];
    if (!f->seg) {
        e.loss = sums[0] / (sums[3] > 0 ? sums[3] : 1);
        e.top1 = sums[1] / (sums[3] > 0 ? sums[3] : 1);
        e.top5 = sums[2] / (sums[3] > 0 ? sums[3] : 1);
    } else {
        dist_sum_i64(d, conf, (size_t)NC * NC);
        seg_scores sc = seg_scores_from_confusion(conf, NC);
        e.loss = sums[0] / (sums[3] > 0 ? sums[3] * HW : 1);
        e.miou = sc.miou;
        e.pixel_acc = sc.pixel_acc;
        e.classes_counted = sc.classes_counted;
    }
    if (tiles) { /* rows: image | truth | prediction, each upscaled 4x */
        const int up = 4, U = S * up, n3 = ntile * 3;
        uint8_t *big = xmalloc((size_t)n3 * U * U * 3);
        for (int t = 0; t < n3; t++)
            for (int y = 0; y < U; y++)
                for (int xx = 0; xx < U; xx++)
                    for (int ch = 0; ch < 3; ch++)
                        big[(((size_t)t * U + y) * U + xx) * 3 + ch] = tiles[((size_t)t * HW + (y / up) * S + xx / up) * 3 + ch];
        int gh, gw;
        image_grid_size(n3, 3, U, U, 2, &gh, &gw);
        uint8_t *grid = xmalloc((size_t)gh * gw * 3);
        image_grid(grid, big, n3, 3, U, U, 3, 2, 255);
        char err[256];
        if (png_write(png_path, grid, gh, gw, 3, err, sizeof err) != 0)
            beit_fatal_user(BEIT_EXIT_IO, "%s: %s", png_path, err);
        beit_log("wrote %s (%d rows: image | truth | prediction)", png_path, ntile);
        free(grid);
        free(big);
        free(tiles);
    }
    source_close(&src);
    free(img8);
    free(lab8);
    free(labc);
    free(labels);
    free(idx);
    free(x);
    free(conf);
    return e;
}

static int64_t nsteps_done(const train_result *r) { return r->steps_done; }

int finetune_main(const beit_config *c, const train_opts *o, const beit_dist *d) {
    const int seg = c->finetune.task == BEIT_FT_SEGMENTATION;
    if (!o->init)
        beit_fatal_user(BEIT_EXIT_USAGE, "beit finetune: --init is required: a pre-training checkpoint, or 'none' to "
                        "train from random initialisation (the no-pre-training baseline)");
    ft_task *t = xcalloc(1, sizeof *t);
    t->c = c;
    t->S = c->model.img_size;
    source_open(&t->src, c, c->data.split, c->train.global_batch, 1, d, c->model.img_size, c->model.in_chans);
    if (t->src.synthetic)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: fine-tuning needs labelled data (data.path), not data.source synthetic",
                        o->source);
    if (t->src.C != c->model.in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: model.in_chans = %d but the images of %s have %d channels", o->source,
                        c->model.in_chans, c->data.path, t->src.C);
    if (seg && !store_has_masks(t->src.store))
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: finetune.task is segmentation but %s has no per-pixel labels "
                        "(/<split>/masks; build one with beit data mosaic)", o->source, c->data.path);
    if (seg && (t->src.H != t->S || t->src.W != t->S))
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: segmentation images are %dx%d, model.img_size is %d (no resizing of "
                        "label maps)", c->data.path, t->src.H, t->src.W, t->S);
    const int ncls = c->data.num_classes > 0 ? c->data.num_classes : t->src.num_classes;
    if (ncls != t->src.num_classes)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: data.num_classes = %d but %s has %d classes", o->source, ncls,
                        c->data.path, t->src.num_classes);
    t->local_max = source_local_max(&t->src);
    t->micro = c->train.micro_batch > 0 && c->train.micro_batch < t->local_max ? c->train.micro_batch : t->local_max;
    ft_model_build(&t->f, c, seg, ncls, t->micro);
    /* a resumed run takes its weights from its checkpoint; --resume auto in a directory
     * without one is a fresh start and uses --init */
    char *latest = o->resume && strcmp(o->resume, "auto") == 0 ? ckpt_find_latest(o->out_dir) : NULL;
    const int resuming = o->resume && (strcmp(o->resume, "auto") != 0 || latest);
    free(latest);
    if (!resuming && strcmp(o->init, "none") != 0) ft_model_load_init(&t->f, o->init);
    else if (!resuming) beit_log("init: none (random initialisation, seed %d): the no-pre-training baseline", c->seed);
    const int H = t->src.H, W = t->src.W, C = t->src.C, S = t->S;
    t->img8 = xmalloc((size_t)t->local_max * H * W * C);
    t->labels = xcalloc((size_t)t->local_max, sizeof(int32_t));
    t->idx = xcalloc((size_t)t->local_max, sizeof(int64_t));
    t->x = xalloc_floats((size_t)t->local_max * C * S * S);
    t->dp = xalloc_floats((size_t)c->model.depth * t->micro);
    if (seg) {
        t->lab8 = xmalloc((size_t)t->local_max * H * W);
        t->labc = xmalloc((size_t)t->local_max * S * S);
        t->conf = xcalloc((size_t)ncls * ncls, sizeof(int64_t));
    }
    beit_log("finetune: %s, %d classes, %s ViT D %d, %d blocks, %d heads on %dx%dx%d, patch %d; layer decay %g, "
             "label smoothing %g, drop path %g; %zu parameters",
             seg ? "segmentation" : "classification", ncls, c->model.arch == BEIT_ARCH_VIT ? "vanilla" : "BEiT",
             c->model.embed_dim, c->model.depth, c->model.num_heads, S, S, C, c->model.patch_size,
             c->finetune.layer_decay, seg ? 0.0 : c->finetune.label_smoothing, c->model.drop_path, t->f.pt.total);

    train_task task = {0};
    task.kind = seg ? FT_KIND_SEG : FT_KIND_CLS;
    task.pt = &t->f.pt;
    task.ctx = t;
    task.steps_per_epoch = source_steps_per_epoch(&t->src);
    task.images_per_step = c->train.global_batch;
    task.nmetrics = 2;
    task.metric_names[0] = "loss";
    task.metric_names[1] = seg ? "pixel_acc" : "acc";
    task.prepare = ft_prepare;
    task.forward_backward = ft_fwd_bwd;
    train_result res = train_run(&task, c, o, d);

    /* evaluation on the eval split */
    ft_eval_result e = ft_evaluate(&t->f, c, c->data.path, c->data.eval_split, d, NULL);
    if (d->rank == 0) {
        char *p = xasprintf("%s/eval.json", o->out_dir);
        FILE *fp = fopen(p, "w");
        if (!fp) beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", p, strerror(errno));
        if (!seg)
            fprintf(fp, "{\"task\": \"classification\", \"split\": \"%s\", \"n\": %lld, \"top1\": %.6f, \"top5\": %.6f, "
                        "\"loss\": %.6f, \"steps\": %lld, \"init\": \"%s\"}\n",
                    c->data.eval_split, (long long)e.n, e.top1, e.top5, e.loss, (long long)nsteps_done(&res), o->init);
        else
            fprintf(fp, "{\"task\": \"segmentation\", \"split\": \"%s\", \"n\": %lld, \"miou\": %.6f, \"pixel_acc\": %.6f, "
                        "\"loss\": %.6f, \"steps\": %lld, \"init\": \"%s\"}\n",
                    c->data.eval_split, (long long)e.n, e.miou, e.pixel_acc, e.loss, (long long)nsteps_done(&res), o->init);
        fclose(fp);
        free(p);
    }
    if (!seg)
        beit_log("final %s accuracy: top-1 %.2f%% top-5 %.2f%% on %lld images (loss %.4f; chance %.1f%%)",
                 c->data.eval_split, 100 * e.top1, 100 * e.top5, (long long)e.n, e.loss, 100.0 / ncls);
    else
        beit_log("final %s segmentation: mIoU %.2f%% over %d classes, pixel accuracy %.2f%% on %lld images",
                 c->data.eval_split, 100 * e.miou, e.classes_counted, 100 * e.pixel_acc, (long long)e.n);
    source_close(&t->src);
    ft_model_free(&t->f);
    free(t->img8);
    free(t->labels);
    free(t->idx);
    free(t->x);
    free(t->dp);
    free(t->lab8);
    free(t->labc);
    free(t->conf);
    free(t);
    return 0;
}
