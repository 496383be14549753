/* import.h: the dataset importers and builders behind `beit data`: each turns its sources into
 * a dataset store (store.h) at `out`, written to a temporary file beside it and renamed when
 * complete, so a failed or interrupted job leaves `out` as it was (nothing, or the old file).
 * They replace an existing `out`: the command refuses one first unless --force (outfile.h).
 * Single-process: the caller runs them on one rank. Each logs one "wrote OUT: ..." line with its counts and time.
 * Bad input data ends the job with beit_fatal_user(BEIT_EXIT_DATA, "<file>: ... (expected
 * ...)"), write failures with BEIT_EXIT_IO. */
#ifndef BEIT_IMPORT_H
#define BEIT_IMPORT_H

#include "beit/mosaic.h"

#include <stdint.h>

/* ---- Fashion-MNIST (src/io/import_fmnist.c) --------------------------------------------- */
#define IMPORT_FMNIST_DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

typedef struct {
    const char *src;            /* folder of {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz;
                                   NULL: IMPORT_FMNIST_DEFAULT_SRC */
    const char *out;            /* the store */
    int64_t expect_train, expect_test; /* required sample counts; -1 accepts any count */
} import_fmnist_opts;

/* Read and check the four IDX files (gzip integrity, magic numbers, 28x28 images, equal
 * image/label counts, labels 0..9, the expected counts; all before the output exists) and
 * write /train and /test: images uint8 [N, 28, 28, 1], 10 classes. Returns 0. */
int import_fmnist(const import_fmnist_opts *o);

/* ---- a class-per-subfolder tree of PNG/JPEG images (src/io/import_folder.c) -------------- */
typedef struct {
    const char *dir;      /* one subfolder per class (sorted by name: labels 0..K-1) */
    const char *out;      /* the store */
    int size;             /* output side S in pixels, 1..4096 */
    const char *split;    /* the split the images go to: a name without '/', under 64 chars;
                             NULL: train */
    double test_fraction; /* 0 <= F < 1: hold out round(F * n) images of each class as 'test' */
} import_folder_opts;

/* The folder's split would be empty: every image held out (nothing is written). */
#define IMPORT_FOLDER_SPLIT_EMPTY 1

/* Each class's .png/.jpg/.jpeg files (any case, sorted by name; others skipped with a
 * warning) are decoded, center-cropped and resized to size x size (image.h). Channels: 1 if
 * every image is grayscale, else 3. The held-out images of a class are a fixed-seed random
 * choice (seed 0, stream (RNG_SHUFFLE, class, 1)). Returns 0, or IMPORT_FOLDER_SPLIT_EMPTY
 * when test_fraction leaves o->split empty (the caller words that message). */
int import_folder(const import_folder_opts *o);

/* ---- an ImageNet-style root: ROOT/train and ROOT/val, one folder per class in each -------- */
typedef struct {
    const char *root;      /* holds train/ and val/ */
    const char *out;       /* the store */
    int size;              /* output side S in pixels, 1..4096 */
    const char *val_split; /* the split val/ goes to: a name without '/', under 64 chars, not
                              "train"; NULL: test */
} import_imagenet_opts;

/* train/ -> split train, val/ -> split val_split, decoded and resized as import_folder does.
 * Both trees must hold the same class folders (labels 0..K-1 by sorted name, the same index in
 * both splits); otherwise exit 3 naming the classes missing from either side (at most 10 per
 * side). A val/ of loose images without class folders is refused with its own message. Channels:
 * 1 if every image of both splits is grayscale, else 3. mean/std are over train only. Returns 0. */
int import_imagenet(const import_imagenet_opts *o);

/* ---- the segmentation mosaic of a Fashion-MNIST store (src/io/import_mosaic.c) ------------ */
/* mosaic_build (mosaic.h), then the "wrote" line (counts read back from the store) and, with
 * a PNG, a line naming it. Returns 0. */
int import_mosaic(const mosaic_opts *o);

#endif
