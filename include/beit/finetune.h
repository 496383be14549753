/* finetune.h: the downstream training commands -- `beit finetune` (src/train/task_finetune.c)
 * and `beit probe` (src/train/task_probe.c). The model they train is ftmodel.h's; the
 * evaluation of a fine-tuned model is eval.h's. */
#ifndef BEIT_FINETUNE_H
#define BEIT_FINETUNE_H

#include "beit/comm.h"
#include "beit/config.h"
#include "beit/eval.h"
#include "beit/ftmodel.h"
#include "beit/train.h"

/* beit finetune (o->init: a checkpoint or "none"): train, checkpoint (kinds FT_KIND_CLS /
 * FT_KIND_SEG), then ft_evaluate on data.eval_split (eval.json). */
int finetune_main(const beit_config *c, const train_opts *o, const beit_dist *d);
/* beit probe (o->init) */
int probe_main(const beit_config *c, const train_opts *o, const beit_dist *d);

#endif
