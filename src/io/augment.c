/* The random resized crop (+ horizontal flip) of tokenization and pre-training
 * (include/beit/tokens.h).
 *
 *   crop_sample: torchvision's RandomResizedCrop.get_params on an H x W image, then
 *                RandomHorizontalFlip(p = 0.5), drawing from the project's counter RNG
 *   crop_apply:  src [H,W,C] uint8 -> dst [C,S,S] float in [0,1]: the box resampled with
 *                image_resample (PIL-style antialiased bilinear), rounded to bytes like the
 *                PIL pipeline (resized_crop, then ToTensor), flipped when asked */
#include "beit/error.h"
#include "beit/image.h"
#include "beit/rng.h"
#include "beit/augment.h"

#include <math.h>
#include <stdlib.h>

/* Python's round(): half to even, which rint gives in the default rounding mode. */
static int py_round(double v) { return (int)rint(v); }

void crop_sample(crop_box *b, int H, int W, double scale_min, double scale_max, double ratio_min, double ratio_max,
                 int flip, rng_t *r) {
    const double area = (double)H * W;
    const double lr0 = log(ratio_min), lr1 = log(ratio_max);
    int found = 0, y0 = 0, x0 = 0, h = H, w = W;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        /* torch: target_area = area * uniform(scale); aspect = exp(uniform(log ratio)) */
        double target = area * (scale_min + (scale_max - scale_min) * rng_uniform_double(r));
        double aspect = exp(lr0 + (lr1 - lr0) * rng_uniform_double(r));
        int cw = py_round(sqrt(target * aspect)), ch = py_round(sqrt(target / aspect));
        if (0 < cw && cw <= W && 0 < ch && ch <= H) {
            /* torch.randint(0, H - h + 1) for the row, then the column */
            y0 = (int)rng_below(r, (uint64_t)(H - ch + 1));
            x0 = (int)rng_below(r, (uint64_t)(W - cw + 1));
            h = ch;
            w = cw;
            found = 1;
        }
    }
    if (!found) { /* the central crop, clamped to the ratio range */
        double in_ratio = (double)W / (double)H;
        if (in_ratio < ratio_min) {
            w = W;
            h = py_round(w / ratio_min);
        } else if (in_ratio > ratio_max) {
            h = H;
            w = py_round(h * ratio_max);
        } else {
            w = W;
            h = H;
        }
        y0 = (H - h) / 2;
        x0 = (W - w) / 2;
    }
    b->y0 = (float)y0;
    b->x0 = (float)x0;
    b->h = (float)h;
    b->w = (float)w;
    /* RandomHorizontalFlip: flip when rand() < p */
    b->flip = flip ? rng_uniform_double(r) < 0.5 : 0;
}

crop_box crop_identity(int H, int W) {
    crop_box b = {0.0f, 0.0f, (float)H, (float)W, 0};
    return b;
}

void crop_apply(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S) {
    const int whole = b->y0 == 0 && b->x0 == 0 && b->h == (float)H && b->w == (float)W;
    const uint8_t *im = src;
    uint8_t *tmp = NULL;
    if (!(whole && H == S && W == S)) { /* the stored image as is needs no resampling */
        tmp = xmalloc((size_t)S * S * C);
        image_resample(src, H, W, C, b->x0, b->y0, (double)b->x0 + b->w, (double)b->y0 + b->h, tmp, S, S);
        im = tmp;
    }
    const float inv = 1.0f / 255.0f;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const uint8_t *p = im + ((size_t)y * S + (b->flip ? S - 1 - x : x)) * C;
            for (int k = 0; k < C; k++) dst[((size_t)k * S + y) * S + x] = p[k] * inv;
        }
    free(tmp);
}
