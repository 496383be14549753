/* modelcfg.h: models from a job -- the dims a config asks for, and the model a checkpoint
 * holds, rebuilt from the job stored in it (src/models/from_config.c). The models themselves
 * take dims, not the config; this module is the one bridge. */
#ifndef BEIT_MODELCFG_H
#define BEIT_MODELCFG_H

#include "beit/checkpoint.h"
#include "beit/config.h"
#include "beit/dalle.h"
#include "beit/dvae.h"
#include "beit/ftmodel.h"
#include "beit/vit.h"

/* The pre-training encoder of a job (model.*). head: HEAD_TOKENS or HEAD_PIXELS. */
void vit_dims_from_config(vit_dims *d, const beit_config *c, int head);
/* The dVAE tokenizer of a job (dvae.*). */
void dvae_dims_from_config(dvae_dims *d, const beit_config *c);
/* DALL-E's encoder (dalle.*), as tools/import_dalle.py records it. */
void dalle_dims_from_config(dalle_dims *d, const beit_config *c);

/* What a checkpoint holds, from its kind. */
typedef enum { MODEL_NONE = 0, MODEL_DVAE, MODEL_PRETRAIN, MODEL_FT_CLS, MODEL_FT_SEG, MODEL_DALLE } model_kind;
/* "dvae", "beit-pretrain", FT_KIND_CLS, FT_KIND_SEG, DALLE_KIND; anything else MODEL_NONE. */
model_kind model_kind_of(const char *ckpt_kind);

typedef struct {
    model_kind kind;
    beit_config c;   /* the job stored in the checkpoint */
    param_table *pt; /* the model's parameters (&own_pt, or &ft.pt) */
    param_table own_pt;
    dvae_model dvae; /* MODEL_DVAE */
    vit_model vit;   /* MODEL_PRETRAIN: head from pretrain.target */
    ft_model ft;     /* MODEL_FT_CLS / MODEL_FT_SEG: head size from the checkpoint's head tensor */
    ckpt_norm norm;  /* the input normalisation recorded in the checkpoint (chans 0: none); also ft.norm */
    dalle_model dalle; /* MODEL_DALLE: DALL-E's encoder (forward only) */
} ckpt_model;

/* Rebuild a model of the given kind from the job stored in the open checkpoint r (parsed under
 * the name config_name in messages) and load its parameters from r. The caller has checked
 * r->kind (each command says in its own words what it takes; usually kind =
 * model_kind_of(r->kind)); r stays open. max_batch: activations for that
 * many images (0: none; the caller allocates). A fine-tuning checkpoint without its head tensor
 * ends the job with BEIT_EXIT_CHECKPOINT "<path>: no <tensor> tensor (damaged checkpoint?)";
 * a missing or misshapen tensor as ckpt_load_params. The ckpt_model must not be copied. */
void model_from_checkpoint(ckpt_model *cm, ckpt_reader *r, model_kind kind, const char *config_name, int max_batch);
void ckpt_model_free(ckpt_model *cm);

#endif
