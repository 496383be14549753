/* input.h: model inputs from stored images -- uint8 [H,W,C] through a crop to the float
 * [C,S,S] the encoders take, normalised with the store's per-channel mean and std
 * (src/models/input.c). One definition for pre-training, fine-tuning, evaluation, the probe
 * and the attention maps, so they all feed the encoder the same numbers. */
#ifndef BEIT_INPUT_H
#define BEIT_INPUT_H

#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/config.h"

#include <stdint.h>

/* x[C,S,S] = (crop_apply(img, b, S) - mean[c]) / std[c], in float: (p - (float)mean) *
 * (float)(1 / std). img [H,W,C] uint8. */
void input_image(float *x, const uint8_t *img, int H, int W, int C, const crop_box *b, int S, const double *mean,
                 const double *std);
/* The training crop of an H x W image by the job's aug.* keys: aug.type resized_crop ->
 * crop_sample (aug.crop_*), pad_crop -> crop_sample_padded (aug.padding); aug.flip either way.
 * Draws from r only. (aug.enable is the caller's: it decides whether to crop at all.) */
void input_sample_crop(crop_box *b, int H, int W, const beit_config *c, rng_t *r);
/* In place: x[C,S,S] (already on [0,1]) -> (x - mean[c]) / std[c] as above. */
void input_normalise(float *x, int C, int S, const double *mean, const double *std);

/* n = per-channel statistics mean, std of C channels (1..CKPT_NORM_MAX_CHANS). */
void input_norm_set(ckpt_norm *n, const double *mean, const double *std, int C);
/* The normalisation of the input of a model whose weights come from checkpoint `ckpt` with the
 * record rec (checkpoint.h): rec when it has one (chans > 0; it must have C channels, else the
 * job ends with BEIT_EXIT_MISMATCH naming the file), else the data's statistics data_mean,
 * data_std (the store's: what checkpoints without the record were trained with). When the
 * record is used and differs from the data's statistics, rank 0 logs both. */
void input_norm_pick(ckpt_norm *out, const ckpt_norm *rec, const double *data_mean, const double *data_std, int C,
                     const char *ckpt);

/* Fine-tuning / evaluation: input_image, and when labmap and labmap_out are given the label
 * map labmap [H,W] is cut with the same crop by nearest neighbour into labmap_out [S,S]. */
void ft_prepare_image(float *x, uint8_t *labmap_out, const uint8_t *img, const uint8_t *labmap, int H, int W, int C,
                      const crop_box *b, int S, const double *mean, const double *std);

#endif
