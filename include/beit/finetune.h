/* finetune.h: the fine-tuning model (encoder + classifier or segmentation decoder), loading a
 * pre-trained encoder into it, and its evaluation -- shared by `beit finetune`, `beit eval`,
 * `beit probe` and `beit attn` (src/train/task_finetune.c, task_probe.c).
 *
 * The encoder is unilm's modeling_finetune VisionTransformer: no mask token, no lm_head, a
 * relative position table per block (arch beit), `norm` after the blocks only with CLS
 * pooling. From a pre-training checkpoint every encoder tensor is copied by name, the shared
 * rel_pos_bias table into every block's own table (as unilm's run_class_finetuning does);
 * mask_token, lm_head and the pre-training `norm` (mean pooling) are left behind, the head
 * is new. Checkpoint kinds: "finetune-cls" and "finetune-seg".
 */
#ifndef BEIT_FINETUNE_H
#define BEIT_FINETUNE_H

#include "beit/augment.h"
#include "beit/clshead.h"
#include "beit/config.h"
#include "beit/comm.h"
#include "beit/segdec.h"
#include "beit/tokens.h"
#include "beit/train.h"
#include "beit/vit.h"

#define FT_KIND_CLS "finetune-cls"
#define FT_KIND_SEG "finetune-seg"
#define FT_MAX_TAPS BEIT_CONFIG_LIST_MAX

typedef struct {
    int seg;   /* 0 classification, 1 segmentation */
    int ncls;  /* classes (segmentation: pixel classes, background included) */
    vit_model m;
    param_table pt;
    clshead h;  /* classification */
    segdec sd;  /* segmentation */
    int ntaps, tap_block[FT_MAX_TAPS]; /* 0-based blocks feeding the decoder */
    float *dtaps;                      /* [ntaps][max_batch,T,D] */
    float *seg_dlogits;                /* [max_batch,NC,S,S] */
    int max_batch;
} ft_model;

/* The encoder dims of a fine-tuning job (mim 0, rel_per_block for arch beit, final_norm for
 * CLS pooling, timm's init: normal(0, init_std) cut at +-2 absolute). */
void ft_vit_dims(vit_dims *d, const beit_config *c, int seg);
/* Build the table (head first, then the encoder), allocate it, initialise it from c->seed and
 * allocate activations for max_batch images. */
void ft_model_build(ft_model *f, const beit_config *c, int seg, int ncls, int max_batch);
void ft_model_free(ft_model *f);
/* Initialise the encoder from a checkpoint (rules above). A pre-training checkpoint, or a
 * fine-tuning checkpoint of the same kind (its head is taken too). Anything else, or a tensor
 * of another shape, ends the job with BEIT_EXIT_MISMATCH naming the tensor; an unreadable file
 * with BEIT_EXIT_CHECKPOINT. */
void ft_model_load_init(ft_model *f, const char *path);
/* Forward a batch (normalised images [B,C,S,S], drop-path scales or NULL): logits in the head
 * (clshead_logits) or the decoder (segdec_logits). */
void ft_model_forward(ft_model *f, const float *x, const float *dp, int B);

/* Images of one split for fine-tuning/evaluation: uint8 [H,W,C] -> normalised float
 * [C,S,S] with the store's mean/std, through crop b; the label map (segmentation) is cut with
 * the same crop by nearest neighbour. */
void ft_prepare_image(float *x, uint8_t *labmap_out, const uint8_t *img, const uint8_t *labmap, int H, int W, int C,
                      const crop_box *b, int S, const double *mean, const double *std);

typedef struct {
    int64_t n;
    double loss;              /* mean per image (classification) or per pixel (segmentation) */
    double top1, top5;        /* classification */
    double miou, pixel_acc;   /* segmentation */
    int classes_counted;
} ft_eval_result;
/* Evaluate on split of the store at data_path: every rank its slice, counts summed (the
 * result is the same on any number of ranks). png_path (rank 0, may be NULL): segmentation:
 * a grid of the first 8 images: image, truth, prediction; classification: none. */
ft_eval_result ft_evaluate(ft_model *f, const beit_config *c, const char *data_path, const char *split,
                           const beit_dist *d, const char *png_path);

/* beit finetune (o->init: a checkpoint or "none") */
int finetune_main(const beit_config *c, const train_opts *o, const beit_dist *d);
/* beit probe (o->init) */
int probe_main(const beit_config *c, const train_opts *o, const beit_dist *d);

#endif
