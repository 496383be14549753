/* mosaic.h: a deterministic semantic-segmentation dataset built from a Fashion-MNIST store
 * (`beit data mosaic`, src/io/mosaic.c; the layout and recipe are in datasets/mosaic.md).
 *
 * Sample i of split sp (split_id 0 = train, 1 = test) is a pure function of (seed, split_id, i)
 * and the source store's split of the same name:
 *   r = rng_stream(seed, RNG_MOSAIC, split_id, i)
 *   k = 1 + rng_below(r, 4) garments; then for each garment j = 0..k-1, in this order:
 *     src = rng_below(r, source count), x = rng_below(r, 15) (column), y = rng_below(r, 15) (row)
 *   canvas 28x28 = 0, mask = 0 (background); garment j (in order, so the later garment wins):
 *     g = the source image src downscaled 28 -> 14 by 2x2 averaging, rounded half up:
 *         g[v][u] = (s[2v][2u] + s[2v][2u+1] + s[2v+1][2u] + s[2v+1][2u+1] + 2) / 4
 *     for every (v, u) with g[v][u] >= MOSAIC_FOREGROUND:
 *         canvas[y+v][x+u] = g[v][u],  mask[y+v][x+u] = source label + 1 (1..10)
 *   label = the class (1..10) covering the most mask pixels (ties: the lowest class);
 *           0 when every pixel is background.
 * Hence mask 0 <=> canvas pixel 0, and mask > 0 => canvas pixel >= MOSAIC_FOREGROUND. */
#ifndef BEIT_MOSAIC_H
#define BEIT_MOSAIC_H

#include <stdint.h>

#define MOSAIC_SIZE 28          /* canvas side; also the required source image side */
#define MOSAIC_GARMENT 14       /* pasted garment side (source downscaled 2x) */
#define MOSAIC_MAX_GARMENTS 4   /* k in 1..4 */
#define MOSAIC_FOREGROUND 32    /* a downscaled garment pixel >= this is pasted */
#define MOSAIC_SOURCE_CLASSES 10
#define MOSAIC_NUM_CLASSES 11   /* background + the 10 source classes */

typedef struct {
    int64_t src; /* index into the source split */
    int x, y;    /* top-left column and row of the 14x14 garment on the canvas, 0..14 */
} mosaic_piece;

/* The draws of sample i of split split_id from a source split of src_count (>= 1) samples:
 * fills pieces[0..k) and returns k (1..MOSAIC_MAX_GARMENTS). */
int mosaic_draw(uint64_t seed, uint32_t split_id, int64_t i, int64_t src_count,
                mosaic_piece pieces[MOSAIC_MAX_GARMENTS]);
/* src [28, 28] -> dst [14, 14] by rounded 2x2 averaging. */
void mosaic_downscale(const uint8_t *src, uint8_t *dst);
/* Compose one sample: garments [k, 28, 28] are the source images of pieces[0..k), classes [k]
 * their source labels (0..9). Writes image [28, 28] and mask [28, 28]; returns the label. */
int mosaic_compose(const mosaic_piece *pieces, int k, const uint8_t *garments, const int32_t *classes, uint8_t *image,
                   uint8_t *mask);
/* The majority rule alone: the class 1..num_classes-1 with the most pixels of mask [npix]
 * (ties: lowest), 0 if none. */
int mosaic_label(const uint8_t *mask, int npix, int num_classes);

typedef struct {
    const char *src_path;  /* a 28x28x1 store with 10 classes and splits train and test */
    const char *out_path;  /* the mosaic store (written to a temporary name, then renamed) */
    const char *png_path;  /* NULL, or a PNG of the first 16 train images and their masks */
    uint64_t seed;
    int64_t n_train, n_test; /* samples per split; -1 = the source split's count */
} mosaic_opts;

/* Build the store. A source of another shape or class count is bad data (BEIT_EXIT_DATA,
 * the message names the file and what was expected); write failures BEIT_EXIT_IO. */
void mosaic_build(const mosaic_opts *o);

#endif
