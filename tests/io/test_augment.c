/* The random resized crop of augment.h: crop_sample (torchvision RandomResizedCrop.get_params +
 * horizontal flip) and crop_apply.
 *   - the central-crop fallback against hand-computed boxes (incl. Python's half-to-even round)
 *   - statistics over 20000 draws: boxes inside the image with integer coordinates, area
 *     fraction and aspect within the ranges (up to the +-0.5 px rounding of w and h), flips
 *     ~50%, positions uniform, determinism per (seed, sample, view)
 *   - crop_apply: identity = the bytes / 255 and = a plain resize (images_to_float); a crop of
 *     side S = the exact sub-image; flip = mirror; a constant image stays constant
 * (crop_apply against PIL's resize is checked by tokenize/tokenize.sh via tok_probe.) */
#include "beit/augment.h"
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/source.h"
#include "beit/tokens.h"
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int box_is(const crop_box *b, float y0, float x0, float h, float w) {
    return b->y0 == y0 && b->x0 == x0 && b->h == h && b->w == w;
}

static void fallback_checks(void) {
    crop_box b;
    rng_t r = rng_stream(1, RNG_TEST, 0, 0);
    /* aspect >= 2 at full area never fits a square: centre crop w = W, h = round(W / 2) */
    crop_sample(&b, 30, 30, 1.0, 1.0, 2.0, 3.0, 0, &r);
    t_ok(box_is(&b, 7, 0, 15, 30) && b.flip == 0, "fallback, 30x30, ratio [2,3]: (7,0,15,30) got (%g,%g,%g,%g)", b.y0,
         b.x0, b.h, b.w);
    crop_sample(&b, 30, 30, 1.0, 1.0, 0.25, 0.5, 0, &r);
    t_ok(box_is(&b, 0, 7, 30, 15), "fallback, 30x30, ratio [1/4,1/2]: (0,7,30,15) got (%g,%g,%g,%g)", b.y0, b.x0, b.h,
         b.w);
    /* 20x30 at scale 1, ratio 1: w = h = round(sqrt(600)) = 24 > 20 always; in-ratio 1.5 > 1 */
    crop_sample(&b, 20, 30, 1.0, 1.0, 1.0, 1.0, 0, &r);
    t_ok(box_is(&b, 0, 5, 20, 20), "fallback, 20x30, ratio 1: (0,5,20,20) got (%g,%g,%g,%g)", b.y0, b.x0, b.h, b.w);
    /* 5x5, ratio [2,3]: h = round(5 / 2) = round(2.5) = 2 in Python (half to even), y0 = 3 // 2 */
    crop_sample(&b, 5, 5, 1.0, 1.0, 2.0, 3.0, 0, &r);
    t_ok(box_is(&b, 1, 0, 2, 5), "fallback, 5x5, ratio [2,3]: round(2.5) = 2 as Python: (1,0,2,5) got (%g,%g,%g,%g)",
         b.y0, b.x0, b.h, b.w);
    /* the whole area at ratio 1 on a square always fits at the first attempt: the full image */
    crop_sample(&b, 17, 17, 1.0, 1.0, 1.0, 1.0, 0, &r);
    t_ok(box_is(&b, 0, 0, 17, 17), "scale 1, ratio 1, 17x17: the whole image");
}

static void stats(int H, int W, double smin, double smax, double rmin, double rmax) {
    const int n = 20000;
    int inside = 1, integer = 1, area_ok = 1, aspect_ok = 1, whole = 0, flips = 0, accepted = 0;
    double posy = 0, posx = 0, npos_y = 0, npos_x = 0, area_mean = 0;
    char worst[256] = "";
    for (int i = 0; i < n; i++) {
        rng_t r = rng_stream(42, RNG_VIEW, (uint64_t)i, 1);
        crop_box b;
        crop_sample(&b, H, W, smin, smax, rmin, rmax, 1, &r);
        flips += b.flip;
        if (b.y0 != floorf(b.y0) || b.x0 != floorf(b.x0) || b.h != floorf(b.h) || b.w != floorf(b.w)) integer = 0;
        if (b.y0 < 0 || b.x0 < 0 || b.h < 1 || b.w < 1 || b.y0 + b.h > H || b.x0 + b.w > W) inside = 0;
        if (b.h == H && b.w == W) { /* possibly the fallback: its area and aspect are not drawn */
            whole++;
            continue;
        }
        accepted++;
        /* w, h are round(sqrt(area*aspect)), round(sqrt(area/aspect)): the drawn values lie
         * within 0.5 of them */
        double hw = (double)H * W, w = b.w, h = b.h;
        if ((w - 0.5) * (h - 0.5) > smax * hw * (1 + 1e-9) || (w + 0.5) * (h + 0.5) < smin * hw * (1 - 1e-9)) {
            area_ok = 0;
            snprintf(worst, sizeof worst, "box %gx%g area %.4f", h, w, w * h / hw);
        }
        if ((w - 0.5) / (h + 0.5) > rmax * (1 + 1e-9) || (w + 0.5) / (h - 0.5) < rmin * (1 - 1e-9)) {
            aspect_ok = 0;
            snprintf(worst, sizeof worst, "box %gx%g aspect %.4f", h, w, w / h);
        }
        area_mean += w * h / hw;
        if (H - b.h > 0) posy += b.y0 / (H - b.h), npos_y++;
        if (W - b.w > 0) posx += b.x0 / (W - b.w), npos_x++;
    }
    t_ok(integer && inside, "%dx%d: %d boxes have integer coordinates and lie inside the image", H, W, n);
    t_ok(area_ok, "%dx%d: area fraction within [%.2f, %.2f] up to the +-0.5 px rounding %s", H, W, smin, smax, worst);
    t_ok(aspect_ok, "%dx%d: aspect w/h within [%.3f, %.3f] up to rounding %s", H, W, rmin, rmax, worst);
    t_ok(whole < n / 100, "%dx%d: whole-image boxes (fallback or a full draw) %d of %d (< 1%%)", H, W, whole, n);
    double fr = (double)flips / n;
    t_ok(fabs(fr - 0.5) < 0.025, "%dx%d: flip rate %.4f within 0.5 +- 0.025 (5 sd)", H, W, fr);
    posy /= npos_y > 0 ? npos_y : 1;
    posx /= npos_x > 0 ? npos_x : 1;
    t_ok(fabs(posy - 0.5) < 0.02 && fabs(posx - 0.5) < 0.02,
         "%dx%d: positions uniform (mean y0/(H-h) %.3f, x0/(W-w) %.3f)", H, W, posy, posx);
    /* E[area | accepted] lies inside the scale range and is not pinned to one end */
    area_mean /= accepted;
    t_ok(area_mean > smin + 0.1 * (smax - smin) && area_mean < smax - 0.1 * (smax - smin),
         "%dx%d: mean area fraction %.3f spread over [%.2f, %.2f]", H, W, area_mean, smin, smax);
}

static void determinism(void) {
    int same = 1, differ = 0;
    for (int i = 0; i < 1000; i++) {
        crop_box a, b, c;
        rng_t r1 = rng_stream(7, RNG_VIEW, (uint64_t)i, 1), r2 = rng_stream(7, RNG_VIEW, (uint64_t)i, 1),
              r3 = rng_stream(7, RNG_VIEW, (uint64_t)i, 2);
        crop_sample(&a, 28, 28, 0.08, 1.0, 0.75, 4.0 / 3.0, 1, &r1);
        crop_sample(&b, 28, 28, 0.08, 1.0, 0.75, 4.0 / 3.0, 1, &r2);
        crop_sample(&c, 28, 28, 0.08, 1.0, 0.75, 4.0 / 3.0, 1, &r3);
        same &= memcmp(&a, &b, sizeof a) == 0;
        differ += !box_is(&a, c.y0, c.x0, c.h, c.w) || a.flip != c.flip;
    }
    t_ok(same, "the same (seed, sample, view) gives the same box");
    t_ok(differ >= 950, "views 1 and 2 of a sample differ (%d of 1000)", differ);
    int nf = 0;
    for (int i = 0; i < 1000; i++) {
        rng_t r = rng_stream(7, RNG_VIEW, (uint64_t)i, 1);
        crop_box a;
        crop_sample(&a, 28, 28, 0.08, 1.0, 0.75, 4.0 / 3.0, 0, &r);
        nf += a.flip;
    }
    t_ok(nf == 0, "flip off: no flips");
}

static uint8_t *random_image(int H, int W, int C, uint64_t seed) {
    uint8_t *im = xmalloc((size_t)H * W * C);
    rng_t r = rng_stream(seed, RNG_TEST, 1, 0);
    for (size_t i = 0; i < (size_t)H * W * C; i++) im[i] = (uint8_t)(rng_u32(&r) >> 24);
    return im;
}

static void apply_checks(void) {
    const int C = 3;
    /* identity at the stored size: the bytes / 255, channels first */
    {
        int S = 12;
        uint8_t *im = random_image(S, S, C, 1);
        float *x = xalloc_floats((size_t)C * S * S);
        crop_box b = crop_identity(S, S);
        crop_apply(x, im, S, S, C, &b, S);
        int ok = 1;
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++)
                for (int k = 0; k < C; k++)
                    ok &= x[((size_t)k * S + y) * S + xx] == im[((size_t)y * S + xx) * C + k] * (1.0f / 255.0f);
        t_ok(ok, "crop_apply(identity) at the stored size = bytes * (1/255) in CHW (as images_to_float)");
        free(im);
        free(x);
    }
    /* identity with resizing = the plain resize of images_to_float */
    {
        int H = 56, W = 40, S = 28;
        uint8_t *im = random_image(H, W, C, 2);
        float *a = xalloc_floats((size_t)C * S * S), *b2 = xalloc_floats((size_t)C * S * S);
        crop_box b = crop_identity(H, W);
        crop_apply(a, im, H, W, C, &b, S);
        images_to_float(b2, im, 1, H, W, C, S);
        t_ok(memcmp(a, b2, sizeof(float) * C * S * S) == 0, "crop_apply(identity) of 56x40 -> 28 = images_to_float");
        free(im);
        free(a);
        free(b2);
    }
    /* a crop of side S: no scaling, the exact sub-image */
    {
        int H = 40, W = 44, S = 20;
        uint8_t *im = random_image(H, W, C, 3);
        float *x = xalloc_floats((size_t)C * S * S), *xf = xalloc_floats((size_t)C * S * S);
        crop_box b = {3, 5, (float)S, (float)S, 0};
        crop_apply(x, im, H, W, C, &b, S);
        int ok = 1;
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++)
                for (int k = 0; k < C; k++)
                    ok &= x[((size_t)k * S + y) * S + xx] ==
                          im[((size_t)(y + 3) * W + xx + 5) * C + k] * (1.0f / 255.0f);
        t_ok(ok, "crop (3,5,20,20) of a 40x44 image at S = 20: the exact sub-image");
        b.flip = 1;
        crop_apply(xf, im, H, W, C, &b, S);
        ok = 1;
        for (int k = 0; k < C; k++)
            for (int y = 0; y < S; y++)
                for (int xx = 0; xx < S; xx++)
                    ok &= xf[((size_t)k * S + y) * S + xx] == x[((size_t)k * S + y) * S + (S - 1 - xx)];
        t_ok(ok, "flip = the horizontal mirror of the unflipped crop");
        free(im);
        free(x);
        free(xf);
    }
    /* a constant image stays constant through any crop and scale */
    {
        int H = 30, W = 30, S = 28;
        uint8_t *im = xmalloc((size_t)H * W * C);
        memset(im, 77, (size_t)H * W * C);
        float *x = xalloc_floats((size_t)C * S * S);
        int ok = 1;
        for (int i = 0; i < 50; i++) {
            rng_t r = rng_stream(9, RNG_VIEW, (uint64_t)i, 1);
            crop_box b;
            crop_sample(&b, H, W, 0.08, 1.0, 0.75, 4.0 / 3.0, 1, &r);
            crop_apply(x, im, H, W, C, &b, S);
            for (size_t j = 0; j < (size_t)C * S * S; j++) ok &= x[j] == 77 * (1.0f / 255.0f);
        }
        t_ok(ok, "a constant image (77) gives 77/255 through 50 random crops");
        free(im);
        free(x);
    }
}

/* RandomCrop(28, padding=2) + flip: offsets uniform on [-2, 2] for rows and columns, the
 * box the image's own size, flips half the time; crop_apply shifts the pixels and reads zeros
 * outside; a padded crop resized to another size resamples the zero-padded image. */
static void padded_checks(void) {
    enum { N = 50000, PAD = 2, H = 28, W = 28 };
    long cy[2 * PAD + 1] = {0}, cx[2 * PAD + 1] = {0}, flips = 0;
    int shape_ok = 1;
    for (int i = 0; i < N; i++) {
        rng_t r = rng_stream(5, RNG_AUGMENT, 0, (uint32_t)i);
        crop_box b;
        crop_sample_padded(&b, H, W, PAD, 1, &r);
        shape_ok &= b.h == H && b.w == W && b.y0 == floorf(b.y0) && b.x0 == floorf(b.x0) && fabsf(b.y0) <= PAD &&
                    fabsf(b.x0) <= PAD;
        if (!shape_ok) break;
        cy[(int)b.y0 + PAD]++;
        cx[(int)b.x0 + PAD]++;
        flips += b.flip;
    }
    double e = (double)N / (2 * PAD + 1), sd = sqrt(N * (1.0 / (2 * PAD + 1)) * (1 - 1.0 / (2 * PAD + 1))), worst = 0;
    for (int k = 0; k <= 2 * PAD; k++) worst = fmax(worst, fmax(fabs(cy[k] - e), fabs(cx[k] - e)) / sd);
    t_ok(shape_ok, "pad crop: integer offsets in [-%d, %d], box the image's size", PAD, PAD);
    t_ok(worst < 5, "pad crop: row and column offsets uniform over the %d values (worst %.1f sd, %d draws)",
         2 * PAD + 1, worst, N);
    t_ok(fabs(flips - N / 2.0) / sqrt(N / 4.0) < 5, "pad crop: flipped %ld of %d", flips, N);

    uint8_t img[H * W];
    for (int i = 0; i < H * W; i++) img[i] = (uint8_t)(1 + i % 250);
    float out[H * W];
    crop_box b = {-2.0f, 1.0f, (float)H, (float)W, 0}; /* shifted down 2 rows, left 1 column */
    crop_apply(out, img, H, W, 1, &b, H);
    int ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y - 2, sx = x + 1;
            float want = sy >= 0 && sx < W ? img[sy * W + sx] * (1.0f / 255.0f) : 0.0f;
            ok &= out[y * W + x] == want;
        }
    t_ok(ok, "pad crop: crop_apply of box (y0 -2, x0 1) shifts the image and reads zeros outside");
    b.flip = 1;
    crop_apply(out, img, H, W, 1, &b, H);
    ok = 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y - 2, sx = (W - 1 - x) + 1;
            float want = sy >= 0 && sx < W ? img[sy * W + sx] * (1.0f / 255.0f) : 0.0f;
            ok &= out[y * W + x] == want;
        }
    t_ok(ok, "pad crop: ... and with the flip, mirrors the shifted box");
    /* resized: equal to resampling an explicitly zero-padded image */
    enum { M = 3, HP = H + 2 * M, WP = W + 2 * M, S = 20 };
    uint8_t padimg[HP * WP];
    memset(padimg, 0, sizeof padimg);
    for (int y = 0; y < H; y++) memcpy(padimg + (y + M) * WP + M, img + y * W, W);
    crop_box q = {-1.0f, 2.0f, (float)H, (float)W, 0}, qp = {-1.0f + M, 2.0f + M, (float)H, (float)W, 0};
    float a[S * S], want[S * S];
    crop_apply(a, img, H, W, 1, &q, S);
    crop_apply(want, padimg, HP, WP, 1, &qp, S);
    t_ok(memcmp(a, want, sizeof a) == 0, "pad crop resized to %dx%d: the same as resampling the zero-padded image", S,
         S);
}

int main(void) {
    padded_checks();
    fallback_checks();
    stats(224, 224, 0.08, 1.0, 0.75, 4.0 / 3.0);
    stats(96, 160, 0.35, 0.9, 0.5, 2.0);
    stats(28, 28, 0.08, 1.0, 0.75, 4.0 / 3.0);
    determinism();
    apply_checks();
    return t_done();
}
