/* Evaluation of a fine-tuned model: on a split of a store (ft_evaluate), and of a fine-tuned
 * checkpoint as `beit eval` runs it (include/beit/eval.h). */
#include "beit/eval.h"

#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/h5attr.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/modelcfg.h"
#include "beit/nn.h"
#include "beit/source.h"
#include "beit/store.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* logits [n, NC] and labels [n] of the whole split (rank 0) into an HDF5 file, atomically */
static void write_logits(const char *path, const float *logits, const int32_t *labels, int64_t n, int NC,
                         const char *data, const char *split, const ckpt_norm *nm) {
    char *tmp = beit_tmp_path(path);
    beit_tmp_guard_set(tmp);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    int bad = f < 0;
    hsize_t dl[2] = {(hsize_t)n, (hsize_t)NC};
    const char *names[2] = {"logits", "labels"};
    const void *bufs[2] = {logits, labels};
    hid_t ft[2] = {H5T_IEEE_F32LE, H5T_STD_I32LE}, mt[2] = {H5T_NATIVE_FLOAT, H5T_NATIVE_INT32};
    for (int k = 0; k < 2 && !bad; k++) {
        hid_t sp = H5Screate_simple(k == 0 ? 2 : 1, dl, NULL);
        hid_t ds = H5Dcreate2(f, names[k], ft[k], sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad |= ds < 0 || (n > 0 && H5Dwrite(ds, mt[k], H5S_ALL, H5S_ALL, H5P_DEFAULT, bufs[k]) < 0);
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(sp);
    }
    if (!bad) {
        bad |= h5a_put_str(f, "data", data) < 0;
        bad |= h5a_put_str(f, "split", split) < 0;
        bad |= h5a_put(f, "input_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)nm->chans, nm->mean) < 0;
        bad |= h5a_put(f, "input_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)nm->chans, nm->std) < 0;
    }
    if (f >= 0) bad |= H5Fclose(f) < 0;
    if (bad || beit_commit_file(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s (%s)", path, bad ? "HDF5 write failed" : strerror(e));
    }
    beit_tmp_guard_clear();
    free(tmp);
    beit_log("wrote %s: logits [%lld, %d], labels [%lld]", path, (long long)n, NC, (long long)n);
}

ft_eval_result ft_evaluate(ft_model *f, const beit_config *c, const char *data_path, const char *split,
                           const beit_dist *d, const char *png_path, const char *logits_path) {
    ft_eval_result e = {0};
    if (logits_path && f->seg)
        beit_fatal_user(BEIT_EXIT_USAGE, "--logits: per-image logits are for classification models (this one "
                        "segments)");
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
    ckpt_norm nm; /* the weights' record, else the store's statistics */
    input_norm_pick(&nm, &f->norm, src.mean, src.std, C, f->norm_src ? f->norm_src : "(the model)");
    /* --logits: every rank fills its own rows, a sum assembles the split (each row once) */
    float *all_logits = logits_path ? xcalloc((size_t)src.n * NC, sizeof(float)) : NULL;
    int64_t *all_labels = logits_path ? xcalloc((size_t)src.n, sizeof(int64_t)) : NULL;
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
                             f->seg ? lab8 + (size_t)i * H * W : NULL, H, W, C, &whole, S, nm.mean, nm.std);
        if (k == 0) continue;
        ft_model_forward(f, x, NULL, k);
        if (!f->seg) {
            int t1 = 0, t5 = 0;
            for (int i = 0; all_logits && i < k; i++) {
                memcpy(all_logits + (size_t)idx[i] * NC, clshead_logits(&f->h) + (size_t)i * NC, (size_t)NC * sizeof(float));
                all_labels[idx[i]] = labels[i];
            }
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
    if (all_logits) {
        dist_sum_f32(d, all_logits, (size_t)src.n * NC);
        dist_sum_i64(d, all_labels, (size_t)src.n);
        if (d->rank == 0) {
            int32_t *lab32 = xcalloc((size_t)src.n + 1, sizeof(int32_t));
            for (int64_t i = 0; i < src.n; i++) lab32[i] = (int32_t)all_labels[i];
            write_logits(logits_path, all_logits, lab32, src.n, NC, data_path, split, &nm);
            free(lab32);
        }
        dist_barrier(d);
        free(all_logits);
        free(all_labels);
    }
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

ckpt_eval_result eval_checkpoint(const char *ckpt, const char *data, const char *split, int batch, const char *png,
                                 const char *logits, const beit_dist *d) {
    ckpt_eval_result res;
    memset(&res, 0, sizeof res);
    ckpt_reader r;
    ckpt_open(&r, ckpt);
    const model_kind kind = model_kind_of(r.kind);
    if (kind != MODEL_FT_CLS && kind != MODEL_FT_SEG)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: a '%s' checkpoint has no classifier or decoder; beit eval takes a fine-tuned checkpoint "
                        "(kind %s or %s, from beit finetune)", ckpt, r.kind, FT_KIND_CLS, FT_KIND_SEG);
    res.seg = kind == MODEL_FT_SEG;
    /* no batch above a rank's share of the split: the model allocates its activations for the
     * whole batch (ViT-B/16 at 224: ~150 MB per image), so 64 for a handful of images would
     * waste ~10 GB per rank */
    beit_store *st = store_open(data, d->comm);
    if (store_has_split(st, split)) {
        int64_t share = (store_split_count(st, split) + d->size - 1) / d->size;
        if (share >= 1 && share < batch) batch = (int)share;
    }
    store_close(st);
    ckpt_model cm;
    model_from_checkpoint(&cm, &r, kind, ckpt, batch);
    res.step = r.step;
    if (d->rank == 0 && beit_sha256_file(ckpt, res.sha256) != 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot read for its sha256", ckpt);

    res.e = ft_evaluate(&cm.ft, &cm.c, data, split, d, png, logits);
    snprintf(res.kind, sizeof res.kind, "%s", r.kind);
    res.config_yaml = xstrdup(r.config_yaml);
    ckpt_close(&r);
    ckpt_model_free(&cm);
    return res;
}

void eval_checkpoint_free(ckpt_eval_result *r) {
    free(r->config_yaml);
    r->config_yaml = NULL;
}
