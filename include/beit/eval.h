/* eval.h: evaluation of trained models -- a fine-tuned model on a split (src/eval/ft_eval.c,
 * also the end of `beit finetune`), a fine-tuned checkpoint as `beit eval` runs it, and the
 * self-attention maps of `beit attn` (src/eval/attn_maps.c). Evaluation sits above the models
 * and the data (it reads stores and rebuilds models from checkpoints) and beside training. */
#ifndef BEIT_EVAL_H
#define BEIT_EVAL_H

#include "beit/comm.h"
#include "beit/config.h"
#include "beit/ftmodel.h"

#include <stdint.h>

typedef struct {
    int64_t n;
    double loss;              /* mean per image (classification) or per pixel (segmentation) */
    double top1, top5;        /* classification */
    double miou, pixel_acc;   /* segmentation */
    int classes_counted;
} ft_eval_result;
/* Evaluate on split of the store at data_path: every rank its slice, counts summed (the
 * result is the same on any number of ranks). The images are normalised with f->norm when it
 * holds a record (input_norm_pick), else with the store's statistics. png_path (rank 0, may be
 * NULL): segmentation: a grid of the first 8 images: image, truth, prediction; classification:
 * none. logits_path (may be NULL; classification only, else BEIT_EXIT_USAGE): an HDF5 file
 * (rank 0, atomic) with logits [N, NC] float32 and labels [N] int32 of every image of the
 * split in store order, attributes data, split, input_mean, input_std; an unwritable file ends
 * the job with BEIT_EXIT_IO. */
ft_eval_result ft_evaluate(ft_model *f, const beit_config *c, const char *data_path, const char *split,
                           const beit_dist *d, const char *png_path, const char *logits_path);

/* A fine-tuned checkpoint evaluated on a split (beit eval). */
typedef struct {
    int seg;            /* 0 classification, 1 segmentation */
    ft_eval_result e;
    char kind[64];      /* the checkpoint's kind */
    int64_t step;       /* its optimizer steps */
    char sha256[65];    /* of the checkpoint file (rank 0; "" elsewhere) */
    char *config_yaml;  /* the job stored in it (malloc'd; eval_checkpoint_free) */
} ckpt_eval_result;
/* Rebuild the model of checkpoint ckpt (kind FT_KIND_CLS or FT_KIND_SEG, else
 * BEIT_EXIT_MISMATCH) with activations for batch images per rank, and ft_evaluate it on split
 * of the store data (png, logits: as ft_evaluate). Collective. */
ckpt_eval_result eval_checkpoint(const char *ckpt, const char *data, const char *split, int batch, const char *png,
                                 const char *logits, const beit_dist *d);
void eval_checkpoint_free(ckpt_eval_result *r);

#define ATTN_MAX_ITEMS 64
/* beit attn: which maps to draw. */
typedef struct {
    const char *ckpt, *data, *split;
    const char *png; /* the PNG, or NULL */
    const char *h5;  /* the maps as numbers (HDF5, see below), or NULL */
    int nidx, idx[ATTN_MAX_ITEMS];            /* sample numbers in split: one row each */
    int nref, ry[ATTN_MAX_ITEMS], rx[ATTN_MAX_ITEMS]; /* reference patches (grid row, column): one column each */
    int layer; /* 1-based block; -1 = the last */
    int head;  /* 0-based head; -1 = mean over heads */
    int scale; /* image tiles upscaled by this, 1..64 */
} attn_maps_opts;
/* The self-attention of reference patches as in the BEiT paper's figure: block layer's
 * attention probabilities [B,NH,T,T], the row of each reference patch over the patch tokens,
 * mean over heads (or one head), reshaped to the patch grid, bilinearly upsampled and laid over
 * the image; written as one PNG (rank 0). With o->h5 the same maps as numbers (rank 0, atomic):
 * datasets maps [images, refs, gh, gw] float32 (patch keys only), cls [images, refs] float32
 * (the same mean of the attention on the CLS key: maps summed over the grid + cls = 1) and
 * row_sums [images, refs, heads] float64 (each head's whole row, = 1); attributes checkpoint,
 * step, layer (1-based), head (-1: mean), index, ref_y, ref_x. A file that cannot be written
 * ends the job with BEIT_EXIT_IO. Takes pre-training and fine-tuning checkpoints (else
 * BEIT_EXIT_MISMATCH); a layer, head, reference or index outside the model or split ends the
 * job with BEIT_EXIT_USAGE. One forward, no MPI collectives. */
void attn_maps_render(const attn_maps_opts *o);

#endif
