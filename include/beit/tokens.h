/* tokens.h: the token store (visual tokens precomputed by `beit tokenize`). The random
 * resized crop of its views is augment.h.
 *
 * Layout (format "beit-tokens", format_version 1), one file for all splits:
 *   /<split>/tokens  uint16 [N, K, h, w]   K views per image; view 0 = the image as stored
 *   /<split>/crops   float32 [N, K, 5]     the view's crop box in stored-image pixels
 *                                          (y0, x0, height, width) and flip (0 or 1);
 *                                          view 0 = (0, 0, H, W, 0)
 *   /<split>         attribute count (int64) = N
 *   root attributes: format, format_version, vocab_size, grid (h), views (K),
 *                    tokenizer_input (the side the tokenizer saw), image_height/width/channels
 *                    (of the store), tokenizer_sha256 (SHA-256 of the tokenizer checkpoint file),
 *                    tokenizer_kind (its kind: dvae, dalle-encoder), tokenizer_checkpoint (its
 *                    path), tokenizer_resize (the view's resize: bilinear, lanczos),
 *                    tokenizer_pixel_map (what the tokenizer applied to pixels in [0, 1]),
 *                    dataset_uuid (the store's uuid), dataset_path, config (resolved YAML),
 *                    created_by. (The four tokenizer_* names after the hash are absent from
 *                    stores written before they were recorded.)
 * Written collectively by every rank with parallel HDF5 into a temporary name and renamed
 * once every rank succeeded.
 *
 * View v > 0 of sample i: crop drawn with rng_stream(seed, RNG_VIEW, i, v) (input_sample_crop: aug.type),
 * so pre-training can apply the identical crop to the patches and still use these tokens. */
#ifndef BEIT_TOKENS_H
#define BEIT_TOKENS_H

#include "beit/augment.h"
#include "beit/error.h"

#include <mpi.h>
#include <stdint.h>

#define TOKENS_FORMAT "beit-tokens"
#define TOKENS_FORMAT_VERSION 1

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
/* Reading strategy: on the first tokens_read of a split, the whole split (tokens + crops) is
 * loaded into memory when it fits in what is left of the store's cache budget (default
 * TOKENS_CACHE_DEFAULT; Fashion-MNIST with K views takes 70000*K*49*2 bytes + crops), and
 * every later read is served from RAM. A split that does not fit is read per call: the
 * requested (index, view) rows, sorted and deduplicated, as one hyperslab union (independent
 * I/O). Token values outside [0, vocab) found while reading are bad data (BEIT_EXIT_DATA). */
#define TOKENS_CACHE_DEFAULT ((size_t)1 << 30)
void tokens_set_cache_budget(token_store *t, size_t bytes);
int tokens_input_size(const token_store *t);   /* tokenizer_input */
int tokens_image_height(const token_store *t); /* of the store that was tokenized */
int tokens_image_width(const token_store *t);
int tokens_image_channels(const token_store *t);

/* `beit data info` of a token store (src/io/tokens_describe.c): the root attributes (vocabulary,
 * grid, views, tokenizer and dataset links), the splits and the layout. verify = 1 reads every
 * row of every split and checks every token < vocab_size and every crop box (finite, inside
 * the stored image, flip 0 or 1, view 0 = the whole image): a violation ends the job with
 * BEIT_EXIT_DATA naming the split, the dataset and the row. Returns 0. */
int tokens_describe(FILE *f, const char *path, int verify);

/* ---- writing (beit tokenize) ------------------------------------------------------------
 * Every call below is collective over comm (every rank calls it, with the same arguments
 * except the rows of tokens_write_rows). The file is created with the MPI-IO driver at
 * beit_tmp_path(final_path) as computed on rank 0 (broadcast: the pid differs per rank);
 * rank 0 first removes stale temporaries of the same final name (".<base>.tmp.*") left by a
 * killed run. Datasets are contiguous and uncompressed (collective writes into chunked,
 * filtered datasets need care in HDF5 1.10), with no fill pass. While the writer is open,
 * SIGINT/SIGTERM/SIGHUP remove the temporary file before the process dies. Nothing appears
 * at final_path until tokens_commit succeeds on every rank. */
typedef struct {
    int vocab, grid, views, tokenizer_input;
    int image_height, image_width, image_channels;
    const char *tokenizer_sha256, *dataset_uuid, *dataset_path, *config_yaml;
    /* which tokenizer made the tokens and how its view was made (root attributes
     * tokenizer_kind, tokenizer_checkpoint, tokenizer_resize, tokenizer_pixel_map) */
    const char *tokenizer_kind, *tokenizer_checkpoint, *tokenizer_resize, *tokenizer_pixel_map;
} tokens_meta;
typedef struct tokens_writer tokens_writer;
/* A file that cannot be created ends the job with BEIT_EXIT_IO naming the path. */
tokens_writer *tokens_create(const char *final_path, const tokens_meta *meta, MPI_Comm comm);
/* Create /<split>/tokens uint16 [count, K, h, h] and /<split>/crops float32 [count, K, 5]
 * (and the group attribute count). */
void tokens_begin_split(tokens_writer *w, const char *split, int64_t count);
/* Write this rank's rows [row0, row0 + n) of the current split: tokens [n, K, h, h] and
 * crops [n, K, 5] (y0, x0, h, w, flip), with one collective H5Dwrite per dataset. n may be 0
 * (an empty selection: the rank still takes part). Returns 0, or -1 after a failed write
 * (the failure is reported at commit). */
int tokens_write_rows(tokens_writer *w, int64_t row0, int n, const uint16_t *tokens, const float *crops);
void tokens_end_split(tokens_writer *w);
/* Close the file; when every rank succeeded, rank 0 fsyncs and renames it to the final path
 * and returns 0 on every rank. Otherwise the temporary file is removed and every rank
 * returns BEIT_EXIT_IO (rank 0 prints why). Frees w. */
int tokens_commit(tokens_writer *w);
/* Close and remove the temporary file (collective). Frees w. */
void tokens_abort(tokens_writer *w);
const char *tokens_writer_tmp_path(const tokens_writer *w);

#endif
