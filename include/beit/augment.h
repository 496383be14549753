/* augment.h: the random resized crop shared by tokenization, pre-training and fine-tuning
 * (src/io/augment.c). View v > 0 of sample i in a token store is drawn with
 * rng_stream(seed, RNG_VIEW, i, v), so pre-training can apply the identical crop to the
 * patches and still use the stored tokens. */
#ifndef BEIT_AUGMENT_H
#define BEIT_AUGMENT_H

#include "beit/rng.h"

#include <stdint.h>

typedef struct {
    float y0, x0, h, w; /* crop box in source pixels */
    int flip;           /* horizontal flip after the crop */
} crop_box;

/* torchvision RandomResizedCrop.get_params on an H x W image: up to 10 attempts of
 * area = uniform(scale) * H*W, log-uniform aspect in ratio, w = round(sqrt(area*aspect)),
 * h = round(sqrt(area/aspect)), accepted when 0 < w <= W and 0 < h <= H, position uniform;
 * else the central crop clamped to the ratio range. Then flip with probability 1/2 when
 * `flip` is set. Draws from r only. */
void crop_sample(crop_box *b, int H, int W, double scale_min, double scale_max, double ratio_min, double ratio_max,
                 int flip, rng_t *r);
/* The whole image, no flip. */
crop_box crop_identity(int H, int W);
/* Resample crop b of src [H,W,C] uint8 to dst [C,S,S] float in [0,1] (bilinear, flip applied). */
void crop_apply(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S);

#endif
