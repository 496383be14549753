/* Model inputs: stored uint8 images -> normalised float tensors (include/beit/input.h). */
#include "beit/input.h"

#include "beit/error.h"
#include "beit/log.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>

void input_normalise(float *x, int C, int S, const double *mean, const double *std) {
    for (int k = 0; k < C; k++) {
        float mu = (float)mean[k], inv = (float)(1.0 / std[k]);
        float *p = x + (size_t)k * S * S;
        for (int j = 0; j < S * S; j++) p[j] = (p[j] - mu) * inv;
    }
}

void input_sample_crop(crop_box *b, int H, int W, const beit_config *c, rng_t *r) {
    if (c->aug.type == BEIT_AUG_PAD_CROP)
        crop_sample_padded(b, H, W, c->aug.padding, c->aug.flip, r);
    else
        crop_sample(b, H, W, c->aug.crop_scale_min, c->aug.crop_scale_max, c->aug.crop_ratio_min, c->aug.crop_ratio_max,
                    c->aug.flip, r);
}

void input_image(float *x, const uint8_t *img, int H, int W, int C, const crop_box *b, int S, const double *mean,
                 const double *std) {
    crop_apply(x, img, H, W, C, b, S);
    input_normalise(x, C, S, mean, std);
}

void ft_prepare_image(float *x, uint8_t *labmap_out, const uint8_t *img, const uint8_t *labmap, int H, int W, int C,
                      const crop_box *b, int S, const double *mean, const double *std) {
    input_image(x, img, H, W, C, b, S, mean, std);
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

void input_norm_set(ckpt_norm *n, const double *mean, const double *std, int C) {
    if (C < 1 || C > CKPT_NORM_MAX_CHANS)
        beit_fatal(BEIT_EXIT_FAILURE, "input normalisation of %d channels (1..%d supported)", C, CKPT_NORM_MAX_CHANS);
    memset(n, 0, sizeof *n);
    n->chans = C;
    for (int k = 0; k < C; k++) n->mean[k] = mean[k], n->std[k] = std[k];
}

static void norm_text(char *buf, size_t cap, const double *mean, const double *std, int C) {
    size_t o = (size_t)snprintf(buf, cap, "mean");
    for (int k = 0; k < C && o < cap; k++) o += (size_t)snprintf(buf + o, cap - o, "%s%.4g", k ? "," : " ", mean[k]);
    if (o < cap) o += (size_t)snprintf(buf + o, cap - o, " std");
    for (int k = 0; k < C && o < cap; k++) o += (size_t)snprintf(buf + o, cap - o, "%s%.4g", k ? "," : " ", std[k]);
}

void input_norm_pick(ckpt_norm *out, const ckpt_norm *rec, const double *data_mean, const double *data_std, int C,
                     const char *ckpt) {
    if (!rec || rec->chans == 0) {
        input_norm_set(out, data_mean, data_std, C);
        return;
    }
    if (rec->chans != C)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: its input normalisation (input_mean, input_std) has %d channels, the "
                        "images have %d", ckpt, rec->chans, C);
    *out = *rec;
    int same = 1;
    for (int k = 0; k < C; k++) same &= rec->mean[k] == data_mean[k] && rec->std[k] == data_std[k];
    if (!same) {
        char a[160], b[160];
        norm_text(a, sizeof a, rec->mean, rec->std, C);
        norm_text(b, sizeof b, data_mean, data_std, C);
        beit_log("input normalisation from the checkpoint %s: %s (the data store's statistics, %s, are not used)", ckpt,
                 a, b);
    }
}
