/* Linear probing (beit-reference.md §4): the encoder is frozen; the average-pooled patch tokens
 * of one block, standardised with the train split's per-channel mean and std (a BatchNorm
 * without affine, as the reference's probe), feed a linear classifier trained with AdamW and
 * a cosine schedule. One probe per chosen block.
 *
 * The features are extracted once (forward only, no augmentation): every rank encodes its
 * slice of each split and a sum over ranks assembles the whole [N, D] matrix on every rank.
 * The classifiers are then trained redundantly and identically on every rank (small: N x D x
 * classes), so the result does not depend on the number of ranks. */
#include "beit/augment.h"
#include "beit/error.h"
#include "beit/finetune.h"
#include "beit/fsutil.h"
#include "beit/log.h"
#include "beit/nn.h"
#include "beit/optim.h"
#include "beit/rng.h"
#include "beit/source.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* feats[nb][n, D]: pooled outputs of blocks[] for every sample of the split */
static int64_t extract(ft_model *f, const char *init, const beit_config *c, const char *split, int subset,
                       const int *blocks, int nb, float **feats_out, int32_t **labels_out, const beit_dist *d) {
    beit_config ec = *c;
    ec.data.subset = subset;
    const int S = f->m.d.img_size, C = f->m.d.in_chans, B = f->max_batch, D = f->m.d.embed_dim, T = f->m.T;
    data_source src;
    source_open(&src, &ec, split, B * d->size, 0, d, S, C);
    const int64_t n = src.n;
    float *feats = xcalloc((size_t)nb * n * D, sizeof(float));
    int32_t *labels = xcalloc((size_t)n, sizeof(int32_t));
    uint8_t *img8 = xmalloc((size_t)B * src.H * src.W * src.C);
    int32_t *lab = xcalloc((size_t)B, sizeof(int32_t));
    int64_t *idx = xcalloc((size_t)B, sizeof(int64_t));
    float *x = xalloc_floats((size_t)B * C * S * S), *pooled = xalloc_floats((size_t)B * D);
    crop_box whole = crop_identity(src.H, src.W);
    ckpt_norm nm; /* the init checkpoint's record, else the store's statistics */
    input_norm_pick(&nm, &f->norm, src.mean, src.std, src.C, init);
    double t0 = beit_now();
    const int64_t steps = source_steps_per_epoch(&src);
    for (int64_t s = 0; s < steps; s++) {
        int k = source_next(&src, 0, s, img8, lab, idx);
        for (int i = 0; i < k; i++)
            input_image(x + (size_t)i * C * S * S, img8 + (size_t)i * src.H * src.W * src.C, src.H, src.W, src.C,
                        &whole, S, nm.mean, nm.std);
        if (k > 0) {
            vit_forward(&f->m, &f->pt, x, NULL, NULL, k);
            for (int j = 0; j < nb; j++) {
                meanpool_forward(pooled, vit_block_output(&f->m, blocks[j]), k, T, D, 1);
                for (int i = 0; i < k; i++)
                    memcpy(feats + ((size_t)j * n + idx[i]) * D, pooled + (size_t)i * D, (size_t)D * sizeof(float));
            }
            for (int i = 0; i < k; i++) labels[idx[i]] = lab[i];
        }
        if ((s + 1) % 50 == 0 || s + 1 == steps)
            beit_log("probe: features of %s: %lld/%lld batches (%.0f img/s)", split, (long long)s + 1, (long long)steps,
                     (double)(s + 1) * B * d->size / (beit_now() - t0));
    }
    /* each sample was written by exactly one rank: a sum assembles the matrix everywhere */
    dist_sum_f32(d, feats, (size_t)nb * n * D);
    int64_t *l64 = xcalloc((size_t)n, sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) l64[i] = labels[i];
    /* labels likewise: 0 except at the samples this rank read */
    dist_sum_i64(d, l64, (size_t)n);
    for (int64_t i = 0; i < n; i++) labels[i] = (int32_t)l64[i];
    free(l64);
    source_close(&src);
    free(img8);
    free(lab);
    free(idx);
    free(x);
    free(pooled);
    *feats_out = feats;
    *labels_out = labels;
    return n;
}

/* logits[n, NC] of rows x[n, D] */
static void linear_logits(float *logits, const float *x, const param_table *pt, int64_t n, int D, int NC) {
    linear_forward(logits, x, params_data(pt, 0), params_data(pt, 1), (int)n, D, NC);
}

int probe_main(const beit_config *c, const train_opts *o, const beit_dist *d) {
    if (!o->init)
        beit_fatal_user(BEIT_EXIT_USAGE, "beit probe: --init is required: a pre-training checkpoint, or 'none' "
                        "(probe a randomly initialised encoder)");
    if (c->train.eval_every > 0)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: train.eval_every = %d, but beit probe tests every block after each "
                        "epoch anyway (metrics.jsonl); leave it 0", o->source, c->train.eval_every);
    /* the number of classes, from the store */
    data_source probe_src;
    source_open(&probe_src, c, c->data.split, 1, 0, d, c->model.img_size, c->model.in_chans);
    if (probe_src.synthetic) beit_fatal_user(BEIT_EXIT_USAGE, "%s: the probe needs labelled data (data.path)", o->source);
    const int NC = probe_src.num_classes;
    int64_t most = probe_src.n;
    source_close(&probe_src);
    source_open(&probe_src, c, c->data.eval_split, 1, 0, d, c->model.img_size, c->model.in_chans);
    if (probe_src.n > most) most = probe_src.n;
    source_close(&probe_src);

    /* images per rank per forward: train.micro_batch (default 64), at most a rank's share of
     * the larger split (the activations are allocated for the whole batch: ~150 MB per image
     * for ViT-B/16 at 224) */
    int B = c->train.micro_batch > 0 ? c->train.micro_batch : 64;
    if ((most + d->size - 1) / d->size < B) B = (int)((most + d->size - 1) / d->size);
    if (B < 1) B = 1;
    ft_model f;
    ft_model_build(&f, c, 0, NC, B);
    if (strcmp(o->init, "none") != 0) ft_model_load_init(&f, o->init);
    const int L = f.m.d.depth, D = f.m.d.embed_dim, nb = c->finetune.probe_blocks.n;
    int blocks[BEIT_CONFIG_LIST_MAX];
    for (int j = 0; j < nb; j++) blocks[j] = c->finetune.probe_blocks.v[j] < 0 ? L - 1 : c->finetune.probe_blocks.v[j] - 1;

    float *ftr, *fte;
    int32_t *ytr, *yte;
    int64_t ntr = extract(&f, o->init, c, c->data.split, c->data.subset, blocks, nb, &ftr, &ytr, d);
    int64_t nte = extract(&f, o->init, c, c->data.eval_split, 0, blocks, nb, &fte, &yte, d);

    if (d->rank == 0 && beit_mkdir_p(o->out_dir) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot create run directory %s: %s", o->out_dir, strerror(errno));
    dist_barrier(d);
    FILE *mf = NULL, *ef = NULL;
    /* eval.json appears only whole, with every block (tools/ablation takes it as the product of a
     * finished probe): rows go to a temporary file, renamed at the end */
    char *evpath = xasprintf("%s/eval.json", o->out_dir), *evtmp = beit_tmp_path(evpath);
    if (d->rank == 0) {
        char *p = xasprintf("%s/metrics.jsonl", o->out_dir);
        mf = fopen(p, "w");
        ef = fopen(evtmp, "w");
        if (!mf || !ef) beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", !mf ? p : evtmp, strerror(errno));
        free(p);
    }

    const int G = c->train.global_batch < ntr ? c->train.global_batch : (int)ntr;
    const int64_t spe = ntr / G, total = (int64_t)llround(c->train.epochs * spe) > 0 ? (int64_t)llround(c->train.epochs * spe) : 1;
    const int64_t warm = c->optim.warmup_steps > 0 ? c->optim.warmup_steps : (int64_t)llround(c->optim.warmup_epochs * spe);
    adamw_config acfg = {c->optim.beta1, c->optim.beta2, c->optim.eps, c->optim.weight_decay};
    float *xb = xalloc_floats((size_t)G * D), *logits = xalloc_floats((size_t)(nte > G ? nte : G) * NC);
    float *probs = xalloc_floats((size_t)G * NC), *dlog = xalloc_floats((size_t)G * NC);
    int *tg = xcalloc((size_t)(nte > G ? nte : G), sizeof(int));
    int64_t *perm = xcalloc((size_t)ntr, sizeof(int64_t));
    for (int j = 0; j < nb; j++) {
        float *Xtr = ftr + (size_t)j * ntr * D, *Xte = fte + (size_t)j * nte * D;
        /* standardise with the train statistics (BatchNorm without affine, eps 1e-6) */
        for (int k = 0; k < D; k++) {
            double s1 = 0, s2 = 0;
            for (int64_t i = 0; i < ntr; i++) s1 += Xtr[i * D + k];
            double mu = s1 / (double)ntr;
            for (int64_t i = 0; i < ntr; i++) s2 += (Xtr[i * D + k] - mu) * (Xtr[i * D + k] - mu);
            float inv = (float)(1.0 / sqrt(s2 / (double)ntr + 1e-6)), fm = (float)mu;
            for (int64_t i = 0; i < ntr; i++) Xtr[i * D + k] = (Xtr[i * D + k] - fm) * inv;
            for (int64_t i = 0; i < nte; i++) Xte[i * D + k] = (Xte[i * D + k] - fm) * inv;
        }
        param_table pt;
        params_init(&pt);
        int64_t ws[2] = {NC, D}, bs[1] = {NC};
        params_add(&pt, "head.weight", 2, ws, 1, -1);
        params_add(&pt, "head.bias", 1, bs, 0, -1);
        params_alloc(&pt);
        /* zero init: the reference probe's head starts at trunc_normal(0.01); zero is as good
         * for a convex problem and depends on nothing */
        float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
        int64_t step = 0;
        double t0 = beit_now();
        for (int64_t ep = 0; step < total; ep++) {
            for (int64_t i = 0; i < ntr; i++) perm[i] = i;
            rng_t r = rng_stream((uint64_t)c->seed, RNG_SHUFFLE, (uint64_t)ep, 1000u + (uint32_t)blocks[j]);
            for (int64_t i = ntr - 1; i > 0; i--) {
                int64_t q = (int64_t)rng_below(&r, (uint64_t)i + 1), tmp = perm[i];
                perm[i] = perm[q];
                perm[q] = tmp;
            }
            double lsum = 0, csum = 0;
            int64_t seen = 0;
            for (int64_t s = 0; s < spe && step < total; s++, step++) {
                for (int i = 0; i < G; i++) {
                    memcpy(xb + (size_t)i * D, Xtr + perm[s * G + i] * D, (size_t)D * sizeof(float));
                    tg[i] = ytr[perm[s * G + i]];
                }
                params_zero_grad(&pt);
                linear_logits(logits, xb, &pt, G, D, NC);
                csum += argmax_correct(logits, tg, G, NC);
                lsum += crossentropy_forward(probs, logits, tg, G, NC, 0.0f);
                seen += G;
                memset(dlog, 0, (size_t)G * NC * sizeof(float));
                crossentropy_backward(dlog, probs, tg, G, NC, 0.0f, 1.0f / (float)G);
                linear_backward(NULL, params_grad(&pt, 0), params_grad(&pt, 1), dlog, xb, params_data(&pt, 0), G, D, NC);
                double lr = schedule_cosine(step, total, warm, c->optim.lr, c->optim.min_lr, 0.0);
                adamw_step_range(&pt, 0, pt.total, m, v, lr, &acfg, step + 1);
            }
            /* test accuracy after this epoch */
            for (int64_t i = 0; i < nte; i++) tg[i] = yte[i];
            linear_logits(logits, Xte, &pt, nte, D, NC);
            int top1 = argmax_correct(logits, tg, (int)nte, NC);
            int top5 = topk_correct(logits, yte, (int)nte, NC, 5);
            double acc = (double)top1 / (double)nte;
            beit_log("probe block %d: epoch %lld loss %.4f train acc %.4f test top-1 %.4f top-5 %.4f (%.1f s)",
                     blocks[j] + 1, (long long)ep + 1, lsum / (double)(seen ? seen : 1), csum / (double)(seen ? seen : 1),
                     acc, (double)top5 / (double)nte, beit_now() - t0);
            if (mf) {
                fprintf(mf, "{\"block\": %d, \"epoch\": %lld, \"step\": %lld, \"loss\": %.8g, \"train_acc\": %.6f, "
                            "\"test_top1\": %.6f, \"test_top5\": %.6f}\n",
                        blocks[j] + 1, (long long)ep + 1, (long long)step, lsum / (double)(seen ? seen : 1),
                        csum / (double)(seen ? seen : 1), acc, (double)top5 / (double)nte);
                fflush(mf);
            }
            if (step >= total && d->rank == 0) {
                eval_results er = {0};
                eval_put_str(&er, "task", "probe");
                eval_put_int(&er, "block", blocks[j] + 1);
                eval_put_str(&er, "split", c->data.eval_split);
                eval_put_int(&er, "n", nte);
                eval_put_num(&er, "top1", "%.6f", acc);
                eval_put_num(&er, "top5", "%.6f", (double)top5 / (double)nte);
                eval_put_int(&er, "train_n", ntr);
                eval_put_num(&er, "epochs", "%g", c->train.epochs);
                eval_put_str(&er, "checkpoint", o->init);
                char line[4096];
                eval_results_json(&er, line, sizeof line);
                printf("%s\n", line);
                fflush(stdout);
                fprintf(ef, "%s\n", line);
            }
        }
        free(m);
        free(v);
        params_free(&pt);
    }
    if (mf) fclose(mf);
    if (ef && (fclose(ef) != 0 || beit_commit_file(evtmp, evpath) != 0))
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", evpath, strerror(errno));
    free(evpath);
    free(evtmp);
    free(xb);
    free(logits);
    free(probs);
    free(dlog);
    free(tg);
    free(perm);
    free(ftr);
    free(fte);
    free(ytr);
    free(yte);
    ft_model_free(&f);
    return 0;
}
