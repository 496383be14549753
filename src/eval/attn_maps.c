/* Self-attention maps as in the BEiT paper's figure (include/beit/eval.h, attn_maps_render):
 * the attention of one reference patch (its row of the chosen block's attention
 * probabilities, over the patch tokens), mean over heads or one head, reshaped to the patch
 * grid, upsampled and laid over the image. Works on pre-training and fine-tuning checkpoints.
 * One forward on the calling rank. */
#include "beit/eval.h"

#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/h5attr.h"
#include "beit/image.h"
#include "beit/input.h"
#include "beit/log.h"
#include "beit/modelcfg.h"
#include "beit/store.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a perceptual ramp black -> purple -> orange -> yellow (like matplotlib's inferno) */
static void heat(float t, uint8_t *rgb) {
    static const float k[5][3] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    float x = t * 4;
    int i = (int)x < 4 ? (int)x : 3;
    float f = x - (float)i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lrintf(k[i][c] + f * (k[i + 1][c] - k[i][c]));
}

/* The encoder of the checkpoint, rebuilt from the job stored in it, for nidx images. */
static vit_model *attn_model(ckpt_model *cm, ckpt_reader *r, const char *ckpt, int nidx) {
    const model_kind kind = model_kind_of(r->kind);
    if (kind != MODEL_PRETRAIN && kind != MODEL_FT_CLS && kind != MODEL_FT_SEG)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: a '%s' checkpoint has no ViT encoder (beit attn takes beit-pretrain, %s "
                        "or %s checkpoints)", ckpt, r->kind, FT_KIND_CLS, FT_KIND_SEG);
    if (kind != MODEL_PRETRAIN &&
        ckpt_param_dim(r, kind == MODEL_FT_SEG ? "decoder.cls.bias" : "head.bias", 0) < 2)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no head tensor (damaged checkpoint?)", ckpt);
    model_from_checkpoint(cm, r, kind, ckpt, nidx);
    return kind == MODEL_PRETRAIN ? &cm->vit : &cm->ft.m;
}

/* The attention of reference patch q of image b over the patch grid: grid[gh*gw], mean over
 * heads or head `head`. Returns the largest deviation of a probability row's sum from 1. */
static double attn_grid(float *grid, const float *att, const vit_model *m, int b, int q, int head) {
    const int NH = m->d.num_heads, T = m->T, np = m->gh * m->gw;
    double err = 0;
    for (int p = 0; p < np; p++) grid[p] = 0;
    for (int h = 0; h < NH; h++) {
        if (head >= 0 && h != head) continue;
        const float *row = att + (((size_t)b * NH + h) * T + q) * T;
        double s = 0;
        for (int k = 0; k < T; k++) s += row[k];
        err = fmax(err, fabs(s - 1.0));
        for (int p = 0; p < np; p++) grid[p] += row[1 + p] / (head >= 0 ? 1 : NH);
    }
    return err;
}

/* One U x U RGB tile: the image dispimg [C,S,S] on [0,1] (ref < 0), or its heat map of grid
 * for reference ref, with the reference patch outlined. */
static void attn_tile(uint8_t *tile, const float *dispimg, const float *grid, const vit_model *m, const attn_maps_opts *o,
                      int ref) {
    const int gh = m->gh, gw = m->gw, S = m->d.img_size, C = m->d.in_chans, scale = o->scale, U = S * scale;
    float mx = 0;
    if (ref >= 0)
        for (int p = 0; p < gh * gw; p++) mx = fmaxf(mx, grid[p]);
    for (int y = 0; y < U; y++)
        for (int xx = 0; xx < U; xx++) {
            /* the image (gray, or RGB) at this display pixel */
            int iy = y / scale, ix = xx / scale;
            float g[3];
            for (int ch = 0; ch < 3; ch++) g[ch] = dispimg[((size_t)(C == 3 ? ch : 0) * S + iy) * S + ix];
            uint8_t *out = tile + ((size_t)y * U + xx) * 3;
            if (ref < 0) {
                for (int ch = 0; ch < 3; ch++) out[ch] = (uint8_t)lrintf(255 * g[ch]);
                continue;
            }
            /* bilinear on the patch grid (align_corners=False) */
            float fy = ((float)y + 0.5f) * gh / U - 0.5f, fx = ((float)xx + 0.5f) * gw / U - 0.5f;
            fy = fy < 0 ? 0 : fy > gh - 1 ? gh - 1 : fy;
            fx = fx < 0 ? 0 : fx > gw - 1 ? gw - 1 : fx;
            int y0 = (int)fy, x0 = (int)fx, y1 = y0 + 1 < gh ? y0 + 1 : y0, x1 = x0 + 1 < gw ? x0 + 1 : x0;
            float wy = fy - y0, wx = fx - x0;
            float v = (1 - wy) * ((1 - wx) * grid[y0 * gw + x0] + wx * grid[y0 * gw + x1]) +
                      wy * ((1 - wx) * grid[y1 * gw + x0] + wx * grid[y1 * gw + x1]);
            uint8_t hc[3];
            heat(mx > 0 ? v / mx : 0, hc);
            for (int ch = 0; ch < 3; ch++) out[ch] = (uint8_t)lrintf(0.6f * hc[ch] + 0.4f * 255 * g[ch]);
            /* outline the reference patch */
            int P = m->d.patch_size * scale, py = o->ry[ref] * P, px = o->rx[ref] * P;
            int in = y >= py && y < py + P && xx >= px && xx < px + P;
            int edge = in && (y < py + 2 || y >= py + P - 2 || xx < px + 2 || xx >= px + P - 2);
            if (edge) out[0] = 0, out[1] = 255, out[2] = 255;
        }
}

/* One dataset of `rank` dims; negative on failure. */
static herr_t put_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                          const void *buf) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    if (sp < 0) return -1;
    hid_t ds = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

/* The maps as numbers (rank 0), written atomically to o->h5:
 *   maps     [nidx, nref, gh, gw] float32  what the PNG draws: the mean over heads (or the one
 *                                          head) of the reference's attention row, patch keys
 *   cls      [nidx, nref]         float32  the same mean of its attention on the CLS key, so
 *                                          maps.sum over the grid + cls = 1 (softmax over CLS +
 *                                          patches)
 *   row_sums [nidx, nref, heads]  float64  each head's whole attention row summed (= 1)
 * and attributes checkpoint, step, layer, head, index, ref_y, ref_x. att [B,NH,T,T]. */
static void attn_write_h5(const attn_maps_opts *o, const vit_model *m, const float *att, const float *maps, int layer,
                          int64_t step) {
    const int NH = m->d.num_heads, T = m->T, nidx = o->nidx, nref = o->nref, head = o->head;
    float *cls = xalloc_floats((size_t)nidx * nref);
    double *sums = xmalloc((size_t)nidx * nref * NH * sizeof(double));
    for (int b = 0; b < nidx; b++)
        for (int i = 0; i < nref; i++) {
            const int q = 1 + o->ry[i] * m->gw + o->rx[i];
            float c = 0;
            for (int h = 0; h < NH; h++) {
                const float *row = att + (((size_t)b * NH + h) * T + q) * T;
                double s = 0;
                for (int k = 0; k < T; k++) s += row[k];
                sums[((size_t)b * nref + i) * NH + h] = s;
                if (head < 0 || h == head) c += row[0] / (head >= 0 ? 1 : NH);
            }
            cls[(size_t)b * nref + i] = c;
        }
    char *tmp = beit_tmp_path(o->h5);
    beit_tmp_guard_set(tmp);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) beit_fatal_user(BEIT_EXIT_IO, "cannot create %s (%s)", o->h5, strerror(errno));
    const hsize_t dm[4] = {(hsize_t)nidx, (hsize_t)nref, (hsize_t)m->gh, (hsize_t)m->gw};
    const hsize_t ds[3] = {(hsize_t)nidx, (hsize_t)nref, (hsize_t)NH};
    int32_t ry[ATTN_MAX_ITEMS], rx[ATTN_MAX_ITEMS];
    for (int i = 0; i < nref; i++) ry[i] = o->ry[i], rx[i] = o->rx[i];
    int bad = put_dataset(f, "maps", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dm, maps) < 0;
    bad |= put_dataset(f, "cls", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dm, cls) < 0;
    bad |= put_dataset(f, "row_sums", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, ds, sums) < 0;
    bad |= h5a_put_str(f, "checkpoint", o->ckpt) < 0;
    bad |= h5a_put_i64(f, "step", step) < 0;
    bad |= h5a_put_i32(f, "layer", layer) < 0;
    bad |= h5a_put_i32(f, "head", head) < 0;
    bad |= h5a_put(f, "index", H5T_STD_I32LE, H5T_NATIVE_INT, 1, (hsize_t)nidx, o->idx) < 0;
    bad |= h5a_put(f, "ref_y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t)nref, ry) < 0;
    bad |= h5a_put(f, "ref_x", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, (hsize_t)nref, rx) < 0;
    bad |= H5Fclose(f) < 0;
    if (bad || beit_commit_file(tmp, o->h5) != 0) {
        int e = errno;
        unlink(tmp);
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s (%s)", o->h5, bad ? "HDF5 write failed" : strerror(e));
    }
    beit_tmp_guard_clear();
    beit_log("wrote %s: maps [%d, %d, %d, %d], cls [%d, %d], row_sums [%d, %d, %d]", o->h5, nidx, nref, m->gh, m->gw,
             nidx, nref, nidx, nref, NH);
    free(tmp);
    free(cls);
    free(sums);
}

void attn_maps_render(const attn_maps_opts *o) {
    const char *ckpt = o->ckpt, *data = o->data, *split = o->split, *png = o->png;
    const int nidx = o->nidx, nref = o->nref, head = o->head;
    ckpt_reader r;
    ckpt_open(&r, ckpt);
    ckpt_model cm;
    vit_model *m = attn_model(&cm, &r, ckpt, nidx);
    const int L = m->d.depth, NH = m->d.num_heads, gh = m->gh, gw = m->gw, S = m->d.img_size, C = m->d.in_chans;
    const int layer = o->layer == -1 ? L : o->layer;
    if (layer < 1 || layer > L) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --layer %d: the model has blocks 1..%d", layer, L);
    if (head < -1 || head >= NH) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --head %d: the model has heads 0..%d", head, NH - 1);
    for (int i = 0; i < nref; i++)
        if (o->ry[i] < 0 || o->ry[i] >= gh || o->rx[i] < 0 || o->rx[i] >= gw)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --ref %d,%d outside the %dx%d patch grid", o->ry[i], o->rx[i],
                            gh, gw);

    /* the images */
    beit_store *st = store_open(data, MPI_COMM_NULL);
    const int64_t n = store_split_count(st, split);
    int64_t idx[ATTN_MAX_ITEMS];
    for (int i = 0; i < nidx; i++) {
        if (o->idx[i] < 0 || o->idx[i] >= n)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --index %d outside split '%s' of %s (0..%lld)", o->idx[i], split,
                            data, (long long)n - 1);
        idx[i] = o->idx[i];
    }
    const int H = store_height(st), W = store_width(st);
    if (store_channels(st) != C)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images have %d channels, the model %d", data, store_channels(st), C);
    uint8_t *img8 = xmalloc((size_t)nidx * H * W * C);
    store_read(st, split, idx, nidx, img8, NULL);
    float *x = xalloc_floats((size_t)nidx * C * S * S);
    crop_box whole = crop_identity(H, W);
    ckpt_norm nm; /* the checkpoint's record, else the store's statistics */
    input_norm_pick(&nm, &cm.norm, store_mean(st), store_std(st), C, ckpt);
    for (int i = 0; i < nidx; i++)
        input_image(x + (size_t)i * C * S * S, img8 + (size_t)i * H * W * C, H, W, C, &whole, S, nm.mean, nm.std);
    vit_forward(m, cm.pt, x, NULL, NULL, nidx);
    const float *att = vit_attention(m, layer - 1); /* [B,NH,T,T] */

    /* render: tiles of U x U RGB; column 0 the image, then one per reference */
    const int U = S * o->scale, cols = 1 + nref, ntiles = nidx * cols;
    uint8_t *tiles = xcalloc((size_t)ntiles * U * U * 3, 1);
    float *grid = xalloc_floats((size_t)gh * gw);
    float *maps = o->h5 ? xalloc_floats((size_t)nidx * nref * gh * gw) : NULL; /* [nidx, nref, gh, gw] */
    float *dispimg = xalloc_floats((size_t)C * S * S);
    double rowsum_err = 0;
    for (int b = 0; b < nidx; b++) {
        crop_apply(dispimg, img8 + (size_t)b * H * W * C, H, W, C, &whole, S); /* [0,1] for display */
        for (int col = 0; col < cols; col++) {
            if (col > 0) {
                rowsum_err = fmax(rowsum_err, attn_grid(grid, att, m, b, 1 + o->ry[col - 1] * gw + o->rx[col - 1], head));
                if (maps) memcpy(maps + ((size_t)b * nref + col - 1) * gh * gw, grid, (size_t)gh * gw * sizeof *grid);
            }
            if (!png) continue;
            attn_tile(tiles + ((size_t)b * cols + col) * U * U * 3, dispimg, grid, m, o, col - 1);
        }
    }
    int GH, GW;
    image_grid_size(ntiles, cols, U, U, 4, &GH, &GW);
    uint8_t *out = xmalloc((size_t)GH * GW * 3);
    image_grid(out, tiles, ntiles, cols, U, U, 3, 4, 255);
    char err[256];
    if (png) {
        if (beit_rank() == 0 && png_write(png, out, GH, GW, 3, err, sizeof err) != 0)
            beit_fatal_user(BEIT_EXIT_IO, "%s: %s", png, err);
        beit_log("wrote %s: %d image%s x %d reference patch%s, block %d of %d, %s (%s checkpoint %s, step %lld); "
                 "attention rows sum to 1 within %.1e",
                 png, nidx, nidx > 1 ? "s" : "", nref, nref > 1 ? "es" : "", layer, L,
                 head < 0 ? "mean over heads" : "one head", r.kind, ckpt, (long long)r.step, rowsum_err);
    }
    if (maps && beit_rank() == 0) attn_write_h5(o, m, att, maps, layer, r.step);
    ckpt_close(&r);
    store_close(st);
    ckpt_model_free(&cm);
    free(out);
    free(tiles);
    free(grid);
    free(maps);
    free(dispimg);
    free(img8);
    free(x);
}
