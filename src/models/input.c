/* Model inputs: stored uint8 images -> normalised float tensors (include/beit/input.h). */
#include "beit/input.h"

#include <math.h>
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
