/* source.h: where a training or evaluation step's images come from: the HDF5 store (through
 * the distributed reader) or synthetic images (data.source: synthetic, for smoke tests and
 * benchmarks at any shape). Either way a rank gets its slice of each global batch and the
 * global sample indices, which key every random draw of that sample. */
#ifndef BEIT_SOURCE_H
#define BEIT_SOURCE_H

#include "beit/config.h"
#include "beit/comm.h"
#include "beit/reader.h"
#include "beit/store.h"

#include <stdint.h>

typedef struct {
    int synthetic;
    beit_store *store; /* NULL when synthetic */
    beit_reader reader;
    char split[64];
    int H, W, C, num_classes;
    int64_t n;          /* samples in the split (after data.subset) */
    int global_batch, shuffle;
    uint64_t seed;
    int rank, nranks;
    double mean[4], std[4];
    char uuid[64];
} data_source;

/* Open the split for training (shuffle = 1: drop the last partial batch) or a pass over every
 * sample (shuffle = 0). synth_hw/synth_c give the synthetic image shape. */
void source_open(data_source *s, const beit_config *c, const char *split, int global_batch, int shuffle,
                 const beit_dist *d, int synth_hw, int synth_c);
void source_close(data_source *s);
int64_t source_steps_per_epoch(const data_source *s);
int source_local_max(const data_source *s);
/* This rank's slice of (epoch, step): images [n,H,W,C] uint8, labels [n] (may be NULL),
 * indices [n] (global sample indices, may be NULL). Returns n. */
int source_next(data_source *s, int64_t epoch, int64_t step, uint8_t *images, int32_t *labels, int64_t *indices);

/* uint8 NHWC -> float NCHW in [0,1], resampled to S x S when the stored size differs. */
void images_to_float(float *out, const uint8_t *in, int n, int H, int W, int C, int S);

#endif
