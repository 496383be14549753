/* The mosaic segmentation dataset: garments of a Fashion-MNIST store pasted on a black canvas,
 * with per-pixel masks. The recipe is in include/beit/mosaic.h, the layout in
 * datasets/mosaic.md. */
#include "beit/mosaic.h"

#include "beit/error.h"
#include "beit/rng.h"
#include "beit/image.h"
#include "beit/store.h"

#include <stdlib.h>
#include <string.h>

#define NPIX (MOSAIC_SIZE * MOSAIC_SIZE)
#define BATCH 1024   /* samples composed per source read */
#define PNG_SAMPLES 16
#define PNG_SCALE 4

int mosaic_draw(uint64_t seed, uint32_t split_id, int64_t i, int64_t src_count,
                mosaic_piece pieces[MOSAIC_MAX_GARMENTS]) {
    rng_t r = rng_stream(seed, RNG_MOSAIC, split_id, (uint32_t)i);
    int k = 1 + (int)rng_below(&r, MOSAIC_MAX_GARMENTS);
    for (int j = 0; j < k; j++) {
        pieces[j].src = (int64_t)rng_below(&r, (uint64_t)src_count);
        pieces[j].x = (int)rng_below(&r, MOSAIC_SIZE - MOSAIC_GARMENT + 1);
        pieces[j].y = (int)rng_below(&r, MOSAIC_SIZE - MOSAIC_GARMENT + 1);
    }
    return k;
}

void mosaic_downscale(const uint8_t *src, uint8_t *dst) {
    for (int v = 0; v < MOSAIC_GARMENT; v++)
        for (int u = 0; u < MOSAIC_GARMENT; u++) {
            const uint8_t *p = src + (2 * v) * MOSAIC_SIZE + 2 * u;
            int sum = p[0] + p[1] + p[MOSAIC_SIZE] + p[MOSAIC_SIZE + 1];
            dst[v * MOSAIC_GARMENT + u] = (uint8_t)((sum + 2) / 4);
        }
}

int mosaic_label(const uint8_t *mask, int npix, int num_classes) {
    int64_t count[256] = {0};
    for (int p = 0; p < npix; p++) count[mask[p]]++;
    int best = 0;
    for (int c = 1; c < num_classes && c < 256; c++)
        if (count[c] > 0 && (best == 0 || count[c] > count[best])) best = c;
    return best;
}

int mosaic_compose(const mosaic_piece *pieces, int k, const uint8_t *garments, const int32_t *classes, uint8_t *image,
                   uint8_t *mask) {
    memset(image, 0, NPIX);
    memset(mask, 0, NPIX);
    uint8_t g[MOSAIC_GARMENT * MOSAIC_GARMENT];
    for (int j = 0; j < k; j++) {
        mosaic_downscale(garments + (size_t)j * NPIX, g);
        for (int v = 0; v < MOSAIC_GARMENT; v++)
            for (int u = 0; u < MOSAIC_GARMENT; u++) {
                uint8_t val = g[v * MOSAIC_GARMENT + u];
                if (val < MOSAIC_FOREGROUND) continue;
                int p = (pieces[j].y + v) * MOSAIC_SIZE + pieces[j].x + u;
                image[p] = val;
                mask[p] = (uint8_t)(classes[j] + 1);
            }
    }
    return mosaic_label(mask, NPIX, MOSAIC_NUM_CLASSES);
}

/* One split of the mosaic: samples [0, n) in batches of BATCH, garments read from the source
 * split of the same name. Keeps the first PNG_SAMPLES images/masks of the split in keep_*. */
static void build_split(beit_store_writer *w, beit_store *src, const char *split, uint32_t split_id, uint64_t seed,
                        int64_t n, uint8_t *keep_img, uint8_t *keep_mask, int *nkeep) {
    int64_t src_count = store_split_count(src, split);
    if (src_count < 1)
        beit_fatal_user(BEIT_EXIT_DATA, "%s: split '%s' is empty (expected garments to draw from)", src->path, split);
    store_begin_split(w, split, n);
    mosaic_piece *pieces = xmalloc((size_t)BATCH * MOSAIC_MAX_GARMENTS * sizeof *pieces);
    int *k = xmalloc((size_t)BATCH * sizeof *k);
    int64_t *idx = xmalloc((size_t)BATCH * MOSAIC_MAX_GARMENTS * sizeof *idx);
    uint8_t *garments = xmalloc((size_t)BATCH * MOSAIC_MAX_GARMENTS * NPIX);
    int32_t *classes = xmalloc((size_t)BATCH * MOSAIC_MAX_GARMENTS * sizeof *classes);
    uint8_t *images = xmalloc((size_t)BATCH * NPIX), *masks = xmalloc((size_t)BATCH * NPIX);
    int32_t *labels = xmalloc((size_t)BATCH * sizeof *labels);
    for (int64_t s0 = 0; s0 < n; s0 += BATCH) {
        int nb = (int)(n - s0 < BATCH ? n - s0 : BATCH), m = 0;
        for (int b = 0; b < nb; b++) {
            k[b] = mosaic_draw(seed, split_id, s0 + b, src_count, pieces + (size_t)m);
            for (int j = 0; j < k[b]; j++) idx[m + j] = pieces[m + j].src;
            m += k[b];
        }
        store_read(src, split, idx, m, garments, classes);
        m = 0;
        for (int b = 0; b < nb; b++) {
            labels[b] = mosaic_compose(pieces + m, k[b], garments + (size_t)m * NPIX, classes + m,
                                       images + (size_t)b * NPIX, masks + (size_t)b * NPIX);
            m += k[b];
            if (*nkeep < PNG_SAMPLES) {
                memcpy(keep_img + (size_t)*nkeep * NPIX, images + (size_t)b * NPIX, NPIX);
                memcpy(keep_mask + (size_t)*nkeep * NPIX, masks + (size_t)b * NPIX, NPIX);
                (*nkeep)++;
            }
        }
        store_append(w, images, labels, nb);
        store_append_masks(w, masks, nb);
    }
    store_end_split(w);
    free(pieces);
    free(k);
    free(idx);
    free(garments);
    free(classes);
    free(images);
    free(masks);
    free(labels);
}

/* background black, the 10 garment classes in matplotlib's tab10 colours */
static const uint8_t PALETTE[MOSAIC_NUM_CLASSES][3] = {
    {0, 0, 0},       {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},   {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
};

/* PNG: each sample as two tiles (image, colour-coded mask), upscaled PNG_SCALE x, 8 tiles a row. */
static void write_png(const char *path, const uint8_t *img, const uint8_t *mask, int n) {
    const int S = MOSAIC_SIZE * PNG_SCALE, cols = 8, gap = 4;
    int ntiles = 2 * n;
    uint8_t *tiles = xmalloc((size_t)ntiles * S * S * 3);
    for (int i = 0; i < n; i++) {
        uint8_t *ti = tiles + (size_t)(2 * i) * S * S * 3, *tm = ti + (size_t)S * S * 3;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int p = (y / PNG_SCALE) * MOSAIC_SIZE + x / PNG_SCALE;
                uint8_t v = img[(size_t)i * NPIX + p];
                const uint8_t *c = PALETTE[mask[(size_t)i * NPIX + p] % MOSAIC_NUM_CLASSES];
                for (int ch = 0; ch < 3; ch++) {
                    ti[((size_t)y * S + x) * 3 + ch] = v;
                    tm[((size_t)y * S + x) * 3 + ch] = c[ch];
                }
            }
    }
    int gh, gw;
    image_grid_size(ntiles, cols, S, S, gap, &gh, &gw);
    uint8_t *grid = xmalloc((size_t)gh * gw * 3);
    image_grid(grid, tiles, ntiles, cols, S, S, 3, gap, 255);
    char err[512];
    if (png_write(path, grid, gh, gw, 3, err, sizeof err) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "%s: %s (expected a writable path for the PNG)", path, err);
    free(grid);
    free(tiles);
}

void mosaic_build(const mosaic_opts *o) {
    beit_store *src = store_open(o->src_path, MPI_COMM_NULL); /* validates; errors exit 3 */
    if (store_height(src) != MOSAIC_SIZE || store_width(src) != MOSAIC_SIZE || store_channels(src) != 1 ||
        store_num_classes(src) != MOSAIC_SOURCE_CLASSES)
        beit_fatal_user(BEIT_EXIT_DATA,
                        "%s: the source store holds %dx%dx%d images of %d classes (expected a %dx%dx1 store with %d "
                        "classes, e.g. from 'beit data import fashion-mnist')",
                        o->src_path, store_height(src), store_width(src), store_channels(src), store_num_classes(src),
                        MOSAIC_SIZE, MOSAIC_SIZE, MOSAIC_SOURCE_CLASSES);
    const char *splits[2] = {"train", "test"};
    int64_t n[2] = {o->n_train, o->n_test};
    for (int s = 0; s < 2; s++) {
        if (!store_has_split(src, splits[s]))
            beit_fatal_user(BEIT_EXIT_DATA, "%s: no split '%s' (expected the splits train and test)", o->src_path,
                            splits[s]);
        if (n[s] < 0) n[s] = store_split_count(src, splits[s]);
    }

    const char *names[MOSAIC_NUM_CLASSES];
    names[0] = "background";
    for (int c = 0; c < MOSAIC_SOURCE_CLASSES; c++) names[c + 1] = store_class_name(src, c);
    char *source = xasprintf("mosaic of %s (dataset uuid %s), seed %llu: 1..%d garments of %dx%d, foreground >= %d",
                             o->src_path, store_uuid(src), (unsigned long long)o->seed, MOSAIC_MAX_GARMENTS,
                             MOSAIC_GARMENT, MOSAIC_GARMENT, MOSAIC_FOREGROUND);
    beit_store_meta meta = {.source = source,
                            .height = MOSAIC_SIZE,
                            .width = MOSAIC_SIZE,
                            .channels = 1,
                            .num_classes = MOSAIC_NUM_CLASSES,
                            .class_names = names,
                            .stats_split = "train",
                            .pixel_labels = 1};
    uint8_t *keep_img = xmalloc((size_t)PNG_SAMPLES * NPIX), *keep_mask = xmalloc((size_t)PNG_SAMPLES * NPIX);
    int nkeep = 0, nkeep_test = PNG_SAMPLES; /* only train samples are kept for the PNG */
    beit_store_writer *w = store_create(o->out_path, &meta);
    build_split(w, src, "train", 0, o->seed, n[0], keep_img, keep_mask, &nkeep);
    build_split(w, src, "test", 1, o->seed, n[1], keep_img, keep_mask, &nkeep_test);
    store_commit(w);
    if (o->png_path && nkeep > 0) write_png(o->png_path, keep_img, keep_mask, nkeep);
    free(keep_img);
    free(keep_mask);
    free(source);
    store_close(src);
}
