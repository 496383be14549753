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
#include <string.h>

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

void crop_sample_padded(crop_box *b, int H, int W, int pad, int flip, rng_t *r) {
    /* torchvision RandomCrop.get_params on the padded (H + 2 pad) x (W + 2 pad) image */
    int i = (int)rng_below(r, (uint64_t)(2 * pad + 1)), j = (int)rng_below(r, (uint64_t)(2 * pad + 1));
    b->y0 = (float)(i - pad);
    b->x0 = (float)(j - pad);
    b->h = (float)H;
    b->w = (float)W;
    b->flip = flip ? rng_uniform_double(r) < 0.5 : 0;
}

crop_box crop_identity(int H, int W) {
    crop_box b = {0.0f, 0.0f, (float)H, (float)W, 0};
    return b;
}

/* dst [C,S,S] from the S x S box at integer (y0, x0) of src: a plain copy, zeros outside */
static void crop_copy(float *dst, const uint8_t *src, int H, int W, int C, int y0, int x0, int flip, int S) {
    const float inv = 1.0f / 255.0f;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sy = y0 + y, sx = x0 + (flip ? S - 1 - x : x);
            int in = sy >= 0 && sy < H && sx >= 0 && sx < W;
            for (int k = 0; k < C; k++)
                dst[((size_t)k * S + y) * S + x] = in ? src[((size_t)sy * W + sx) * C + k] * inv : 0.0f;
        }
}

void crop_apply(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S) {
    crop_apply_resize(dst, src, H, W, C, b, S, RESIZE_BILINEAR);
}

void crop_apply_resize(float *dst, const uint8_t *src, int H, int W, int C, const crop_box *b, int S, int resize) {
    const int integral = b->y0 == floorf(b->y0) && b->x0 == floorf(b->x0);
    const int outside = b->y0 < 0 || b->x0 < 0 || b->y0 + b->h > (float)H || b->x0 + b->w > (float)W;
    /* no resampling: the stored image as is, or a padded crop of it at its own size */
    if (integral && b->h == (float)S && b->w == (float)S && ((H == S && W == S) || outside)) {
        crop_copy(dst, src, H, W, C, (int)b->y0, (int)b->x0, b->flip, S);
        return;
    }
    if (outside) { /* a padded crop resized to another size: resample the zero-padded image */
        int m = (int)ceilf(fmaxf(fmaxf(-b->y0, -b->x0), fmaxf(b->y0 + b->h - (float)H, b->x0 + b->w - (float)W)));
        int Hp = H + 2 * m, Wp = W + 2 * m;
        uint8_t *pad = xcalloc((size_t)Hp * Wp * C, 1);
        for (int y = 0; y < H; y++)
            memcpy(pad + ((size_t)(y + m) * Wp + m) * C, src + (size_t)y * W * C, (size_t)W * C);
        crop_box q = *b;
        q.y0 += (float)m;
        q.x0 += (float)m;
        crop_apply_resize(dst, pad, Hp, Wp, C, &q, S, resize);
        free(pad);
        return;
    }
    const int whole = b->y0 == 0 && b->x0 == 0 && b->h == (float)H && b->w == (float)W;
    const uint8_t *im = src;
    uint8_t *tmp = NULL;
    if (!(whole && H == S && W == S)) { /* the stored image as is needs no resampling */
        tmp = xmalloc((size_t)S * S * C);
        if (resize == RESIZE_LANCZOS)
            image_resample_lanczos(src, H, W, C, b->x0, b->y0, b->x0 + b->w, b->y0 + b->h, tmp, S, S);
        else
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
