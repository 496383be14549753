/* tasks.h: what each training command computes per step (the train_task of train.h) and its
 * end-of-run evaluation. One file per task under src/train/. The dims of a job's models:
 * modelcfg.h (included). */
#ifndef BEIT_TASKS_H
#define BEIT_TASKS_H

#include "beit/config.h"
#include "beit/comm.h"
#include "beit/dvae.h"
#include "beit/masking.h"
#include "beit/modelcfg.h"
#include "beit/train.h"
#include "beit/vit.h"

/* ---- dVAE tokenizer (src/train/task_dvae.c) ---- */
/* Gumbel-softmax temperature at step s: cosine from temp_start to temp_end over
 * temp_anneal_steps (0 = the whole run), then temp_end. */
double dvae_temperature(const beit_config *c, int64_t s, int64_t total_steps);
/* KL weight at step s: kl_weight, ramped linearly from 0 over kl_warmup_steps. */
double dvae_kl_weight(const beit_config *c, int64_t s);

typedef struct {
    int64_t n;          /* images evaluated */
    double mse;         /* per pixel on [0,1] pixels, mean output from hard argmax tokens */
    double psnr;        /* 10 log10(1 / mse) */
    int codes_used;     /* distinct tokens over the split */
    double perplexity;  /* exp(entropy of the token histogram) */
} dvae_eval_result;

/* beit dvae train: train, checkpoint, then evaluate on data.eval_split (eval.json and a PNG
 * grid of originals beside reconstructions in the run directory). Returns an exit code. */
int dvae_train_main(const beit_config *c, const train_opts *o, const beit_dist *d);
/* Evaluate trained parameters on a split: every rank its slice, counts summed. When png_path
 * is given, rank 0 writes a grid of the first 32 images (originals above reconstructions). */
dvae_eval_result dvae_evaluate(dvae_model *m, const param_table *pt, const beit_config *c, const char *split,
                               const beit_dist *d, const char *png_path);

/* ---- masked image modeling (src/train/task_pretrain.c) ---- */
/* The mask settings of a job (the model's: vit_dims_from_config, modelcfg.h). */
void mask_params_from_config(mask_params *p, const beit_config *c);
/* beit pretrain: MIM on the token store (or pixels / an online tokenizer), checkpoints of
 * kind "beit-pretrain", then masked-token accuracy on data.eval_split (eval.json). */
int pretrain_main(const beit_config *c, const train_opts *o, const beit_dist *d);

#endif
