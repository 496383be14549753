/* ftmodel.h: the fine-tuning model (encoder + classifier or segmentation decoder) and loading
 * a pre-trained encoder into it -- shared by `beit finetune`, `beit probe`, `beit eval` and
 * `beit attn` (src/models/ftmodel.c).
 *
 * The encoder is unilm's modeling_finetune VisionTransformer: no mask token, no lm_head, a
 * relative position table per block (arch beit), `norm` after the blocks only with CLS
 * pooling. From a pre-training checkpoint every encoder tensor is copied by name, the shared
 * rel_pos_bias table into every block's own table (as unilm's run_class_finetuning does);
 * mask_token, lm_head and the pre-training `norm` (mean pooling) are left behind, the head
 * is new. Checkpoint kinds: "finetune-cls" and "finetune-seg".
 *
 *   x [B,C,S,S] -> encoder -> classification: clshead logits [B,NC]
 *                          -> segmentation: blocks tap_block[] [B,T,D] each -> segdec
 *                             logits [B,NC,S,S]
 */
#ifndef BEIT_FTMODEL_H
#define BEIT_FTMODEL_H

#include "beit/checkpoint.h"
#include "beit/clshead.h"
#include "beit/config.h"
#include "beit/input.h"
#include "beit/segdec.h"
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
    ckpt_norm norm; /* the input normalisation recorded with the loaded weights (chans 0: none) */
    const char *norm_src; /* the file norm came from, for messages (not owned) */
} ft_model;

/* The encoder dims of a fine-tuning job (mim 0, rel_per_block for arch beit, final_norm for
 * CLS pooling, timm's init: normal(0, init_std) cut at +-2 absolute). */
void ft_vit_dims(vit_dims *d, const beit_config *c, int seg);
/* Build the table (head first, then the encoder), allocate it, initialise it from c->seed and
 * allocate activations for max_batch images. */
void ft_model_build(ft_model *f, const beit_config *c, int seg, int ncls, int max_batch);
void ft_model_free(ft_model *f);
/* Initialise the encoder from a checkpoint (rules above); f->norm = the checkpoint's record. A pre-training checkpoint, or a
 * fine-tuning checkpoint of the same kind (its head is taken too). Anything else, or a tensor
 * of another shape, ends the job with BEIT_EXIT_MISMATCH naming the tensor; an unreadable file
 * with BEIT_EXIT_CHECKPOINT. */
void ft_model_load_init(ft_model *f, const char *path);
/* Forward a batch (normalised images [B,C,S,S], drop-path scales [L,2,B] (vit_forward) or NULL): logits in the
 * head (clshead_logits) or the decoder (segdec_logits). */
void ft_model_forward(ft_model *f, const float *x, const float *dp, int B);
/* Gradient of scale * (summed loss of the last forward) into pt->grad: classification from the
 * head's loss (clshead_loss), segmentation from f->seg_dlogits [B,NC,S,S] (the caller fills it). */
void ft_model_backward(ft_model *f, float scale, int B);

#endif
