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
/* torchvision RandomCrop(size=(H, W), padding=pad) of an H x W image with zero padding, then
 * RandomHorizontalFlip when `flip` is set: i = randint(0, 2 pad + 1) for the row, then j for
 * the column, and the box is the image shifted to y0 = i - pad, x0 = j - pad (h = H, w = W):
 * its part outside the image is zeros. Draws from r only. */
void crop_sample_padded(crop_box *b, int H, int W, int pad, int flip, rng_t *r);
/* The whole image, no flip. */
crop_box crop_identity(int H, int W);
/* Resample crop b of src [H,W,C] uint8 to dst [C,S,S] float in [0,1] (bilinear, flip applied).
 * A box of integer position and exactly S x S is copied as is; the part of a box outside the
 * image (crop_sample_padded) reads zeros. */
void crop_apply(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S);
/* The resize of a view: the antialiased bilinear filter of crop_apply, or PIL's Lanczos
 * (image_resample_lanczos: BEiT's tokenizer view, second_interpolation 'lanczos'). */
enum { RESIZE_BILINEAR = 0, RESIZE_LANCZOS = 1 };
/* crop_apply with the given resize (the copy and padding rules are the same). */
void crop_apply_resize(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S, int resize);

#endif
