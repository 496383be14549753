/* tokenizer.h: a frozen image tokenizer from its checkpoint, whatever its kind -- beit's own
 * dVAE (kind "dvae", dvae.h) or DALL-E's encoder converted by tools/import_dalle.py (kind
 * "dalle-encoder", dalle.h) -- for `beit tokenize` and pretrain.target tokens_online
 * (src/tokenize/tokenizer.c).
 *
 * The view a tokenizer sees of a crop box: the box resized to S x S and scaled to [0, 1]
 * (crop_apply_resize), then inside the encoder 0.8 x + 0.1 (DALL-E's map_pixels, logit-Laplace
 * eps 0.1; beit's dVAE applies the same map). The resize follows the tokenizer:
 *   dvae            bilinear (antialiased, as the dVAE was trained: crop_apply)
 *   dalle-encoder   PIL's Lanczos (BEiT's DataAugmentationForBEiT: second_interpolation
 *                   'lanczos', second_size 112)
 */
#ifndef BEIT_TOKENIZER_H
#define BEIT_TOKENIZER_H

#include "beit/augment.h"
#include "beit/modelcfg.h"

#include <stdint.h>

typedef struct {
    ckpt_model cm;          /* MODEL_DVAE or MODEL_DALLE */
    int S, h, V, C;         /* input side, token grid side, vocabulary, channels */
    int resize;             /* RESIZE_BILINEAR or RESIZE_LANCZOS */
    int max_batch;          /* of tokenizer_alloc */
    const char *kind;       /* the checkpoint kind */
    const char *resize_name, *pixel_map; /* as recorded in token stores */
} tokenizer;

/* Open the checkpoint at path and rebuild its tokenizer (ckpt_open's errors; a kind that is
 * not a tokenizer, or max_vocab > 0 and a vocabulary above it (the token store's uint16), ends
 * the job with BEIT_EXIT_MISMATCH naming the file). The stored config is returned in t->cm.c.
 * No activations yet. */
void tokenizer_open(tokenizer *t, const char *path, int max_vocab);
/* Bytes of activations for batches of B views. */
size_t tokenizer_activation_bytes(const tokenizer *t, int B);
/* The largest batch whose activations fit budget bytes (at least 1, at most cap). */
int tokenizer_batch_within(const tokenizer *t, size_t budget, int cap);
void tokenizer_alloc(tokenizer *t, int max_batch);
/* dst [C,S,S] in [0,1]: the view of crop b of img [H,W,C] (the tokenizer's resize). */
void tokenizer_view(const tokenizer *t, float *dst, const uint8_t *img, int H, int W, int C, const crop_box *b);
/* tokens [B,h,h] of views x [B,C,S,S], in chunks of max_batch. */
void tokenizer_encode(tokenizer *t, const float *x, int B, int32_t *tokens);
void tokenizer_free(tokenizer *t);

#endif
