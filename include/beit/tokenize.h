/* tokenize.h: the tokenization stage -- every split of a dataset store encoded into visual
 * tokens with a tokenizer (tokenizer.h: a trained dVAE or DALL-E's converted encoder), K views
 * per image, MPI-parallel, every rank writing its rows of ONE HDF5 token store with
 * collective parallel-HDF5 writes (tokens.h). `beit tokenize` parses its flags and calls
 * tokenize_store (src/tokenize/tokenize.c).
 *
 * Per split, a sequential pass (reader sequential mode, global batch = tokenize.batch * ranks):
 *   img8 [L, H, W, C] -> x [L*K, C, S, S] (view 0: crop_identity; view v > 0: input_sample_crop (aug.type) with
 *   rng_stream(seed, RNG_VIEW, i, v); resized as the tokenizer wants) -> tokenizer_encode -> tokens [L, K, h, h] uint16, crops
 *   [L, K, 5] -> one collective write per dataset and step (a rank with 0 rows takes part with
 *   an empty selection). */
#ifndef BEIT_TOKENIZE_H
#define BEIT_TOKENIZE_H

#include "beit/comm.h"
#include "beit/config.h"

/* Tokenize the store c->data.path with the tokenizer checkpoint c->tokenize.checkpoint into
 * c->data.tokens (tokenize.views views, tokenize.batch images per rank per step, data.subset).
 * The tokenizer is rebuilt from the config stored in its checkpoint; dvae.* (dalle.*) keys the job
 * gave (config_key_given) must agree with it, and the store's images must fit it: else
 * BEIT_EXIT_MISMATCH naming both. src names the job in messages. Collective over d. Returns
 * tokens_commit's result: 0 when the store is complete at its path. */
int tokenize_store(const beit_config *c, const char *src, const beit_dist *d);

#endif
