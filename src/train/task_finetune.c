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
#include "beit/input.h"
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

/* ---- the training task ---- */
/* The fine-tuning task. Shapes: n = local_max, H x W x C stored images, S = model.img_size,
 * NC = classes, L = depth. */
typedef struct {
    const beit_config *c;
    ft_model f;
    data_source src;
    int local_max, micro, S; /* samples per step on this rank (at most); per forward; input side */
    uint8_t *img8;    /* [n,H,W,C] the step's stored images */
    uint8_t *lab8;    /* [n,H,W] stored label maps (segmentation) */
    uint8_t *labc;    /* [n,S,S] label maps through the crop (segmentation) */
    int32_t *labels;  /* [n] image labels (classification) */
    int64_t *idx;     /* [n] sample indices */
    int64_t *conf;    /* [NC,NC] segmentation: the step's confusion matrix */
    float *x;         /* [n,C,S,S] normalised model input */
    float *dp;        /* [L,2,micro] drop-path scales (attention, MLP branch) */
    int n_local;      /* samples of this step on this rank */
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
            input_sample_crop(&b, H, W, c, &r);
        }
        ft_prepare_image(t->x + (size_t)i * C * S * S, t->f.seg ? t->labc + (size_t)i * S * S : NULL,
                         t->img8 + (size_t)i * H * W * C, t->f.seg ? t->lab8 + (size_t)i * H * W : NULL, H, W, C, &b, S,
                         t->f.norm.mean, t->f.norm.std);
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
        vit_droppath_draw(t->dp, L, B, c->model.drop_path, (uint64_t)c->seed, step, t->idx + a);
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

/* Evaluation on the eval split: after the run (eval.json and the final line) and every
 * train.eval_every steps. */
static int ft_eval_hook(void *ctx, const train_result *res, const train_opts *o, const beit_dist *d,
                        eval_results *out) {
    ft_task *t = ctx;
    const beit_config *c = t->c;
    const int seg = t->f.seg;
    ft_eval_result e = ft_evaluate(&t->f, c, c->data.path, c->data.eval_split, d, NULL, NULL);
    eval_put_str(out, "task", seg ? "segmentation" : "classification");
    eval_put_str(out, "split", c->data.eval_split);
    eval_put_int(out, "n", e.n);
    if (!seg) {
        eval_put_num(out, "top1", "%.6f", e.top1);
        eval_put_num(out, "top5", "%.6f", e.top5);
    } else {
        eval_put_num(out, "miou", "%.6f", e.miou);
        eval_put_num(out, "pixel_acc", "%.6f", e.pixel_acc);
    }
    eval_put_num(out, "loss", "%.6f", e.loss);
    eval_put_int(out, "steps", res->steps_done);
    eval_put_str(out, "init", o->init);
    char when[48] = "final";
    if (!res->final) snprintf(when, sizeof when, "step %lld:", (long long)res->steps_done);
    if (!seg)
        beit_log("%s %s accuracy: top-1 %.2f%% top-5 %.2f%% on %lld images (loss %.4f; chance %.1f%%)", when,
                 c->data.eval_split, 100 * e.top1, 100 * e.top5, (long long)e.n, e.loss, 100.0 / t->f.ncls);
    else
        beit_log("%s %s segmentation: mIoU %.2f%% over %d classes, pixel accuracy %.2f%% on %lld images", when,
                 c->data.eval_split, 100 * e.miou, e.classes_counted, 100 * e.pixel_acc, (long long)e.n);
    return 1;
}

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
    if (!resuming && strcmp(o->init, "none") != 0) ft_model_load_init(&t->f, o->init);
    else if (!resuming) beit_log("init: none (random initialisation, seed %d): the no-pre-training baseline", c->seed);
    /* the input normalisation: the one recorded with the weights the run starts from (a resumed
     * run: its checkpoint's; --init: the init checkpoint's), else the store's statistics */
    ckpt_norm rec = t->f.norm;
    const char *rec_src = o->init;
    if (resuming) {
        rec_src = latest ? latest : o->resume;
        ckpt_reader rr;
        ckpt_open(&rr, rec_src);
        rec = rr.norm;
        ckpt_close(&rr);
    }
    input_norm_pick(&t->f.norm, &rec, t->src.mean, t->src.std, t->src.C, rec_src);
    t->f.norm_src = rec_src;
    const int H = t->src.H, W = t->src.W, C = t->src.C, S = t->S;
    t->img8 = xmalloc((size_t)t->local_max * H * W * C);
    t->labels = xcalloc((size_t)t->local_max, sizeof(int32_t));
    t->idx = xcalloc((size_t)t->local_max, sizeof(int64_t));
    t->x = xalloc_floats((size_t)t->local_max * C * S * S);
    t->dp = xalloc_floats((size_t)2 * c->model.depth * t->micro);
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

    train_task task = {.kind = seg ? FT_KIND_SEG : FT_KIND_CLS, .pt = &t->f.pt, .ctx = t,
                       .steps_per_epoch = source_steps_per_epoch(&t->src),
                       .images_per_step = c->train.global_batch,
                       .nmetrics = 2, .metric_names = {"loss", seg ? "pixel_acc" : "acc"},
                       .prepare = ft_prepare, .forward_backward = ft_fwd_bwd, .evaluate = ft_eval_hook,
                       .norm = &t->f.norm};
    train_run(&task, c, o, d);

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
    free(latest);
    return 0;
}
