/* tokens.h: the token store (visual tokens precomputed by `beit tokenize`) and the random
 * resized crop shared by tokenization and pre-training.
 *
 * Layout (format "beit-tokens", format_version 1), one file for all splits:
 *   /<split>/tokens  uint16 [N, K, h, w]   K views per image; view 0 = the image as stored
 *   /<split>/crops   float32 [N, K, 5]     the view's crop box in stored-image pixels
 *                                          (y0, x0, height, width) and flip (0 or 1);
 *                                          view 0 = (0, 0, H, W, 0)
 *   root attributes: format, format_version, vocab_size, grid (h), views (K),
 *                    tokenizer_input (the side the tokenizer saw), image_height/width/channels
 *                    (of the store), tokenizer_sha256 (SHA-256 of the dVAE checkpoint file),
 *                    dataset_uuid (the store's uuid), dataset_path, config (resolved YAML),
 *                    created_by
 * Written collectively by every rank with parallel HDF5 into a temporary name and renamed
 * once every rank succeeded.
 *
 * View v > 0 of sample i: crop drawn with rng_stream(seed, RNG_VIEW, i, v) (crop_sample below),
 * so pre-training can apply the identical crop to the patches and still use these tokens. */
#ifndef BEIT_TOKENS_H
#define BEIT_TOKENS_H

#include "beit/core.h"

#include <mpi.h>
#include <stdint.h>

#define TOKENS_FORMAT "beit-tokens"
#define TOKENS_FORMAT_VERSION 1

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

typedef struct token_store token_store;
/* Open read-only (comm == MPI_COMM_NULL: serial). Validates the format; problems end the job
 * with BEIT_EXIT_DATA naming the path and what is wrong. */
token_store *tokens_open(const char *path, MPI_Comm comm);
void tokens_close(token_store *t);
int tokens_vocab(const token_store *t);
int tokens_grid(const token_store *t);
int tokens_views(const token_store *t);
const char *tokens_dataset_uuid(const token_store *t);
const char *tokens_tokenizer_sha256(const token_store *t);
int64_t tokens_count(const token_store *t, const char *split); /* -1 if the split is missing */
/* Read view views[i] of sample indices[i] for i < n: tokens [n, h, w] int32, crops [n] (may
 * be NULL). */
void tokens_read(token_store *t, const char *split, const int64_t *indices, const int *views, int n, int32_t *tokens,
                 crop_box *crops);

#endif
