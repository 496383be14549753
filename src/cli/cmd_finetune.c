/* beit finetune / beit probe: downstream training of a pre-trained encoder. */
#include "beit/finetune.h"
#include "commands.h"
#include "runopts.h"

static const char *FT_USAGE =
    "usage: beit finetune -c JOB --init PRETRAIN.h5|none --out DIR [--steps N] [--resume auto|FILE]\n"
    "                     [--set KEY=VALUE]...\n"
    "\n"
    "Fine-tunes the encoder of a pre-training checkpoint (beit pretrain) on labelled data:\n"
    "finetune.task classification (mean-pooled patch tokens + fc_norm + linear head, or the CLS\n"
    "token with finetune.pool: cls; label smoothing) or segmentation (blocks finetune.seg_blocks\n"
    "into a light decoder, per-pixel cross-entropy; data from beit data mosaic). Layer-wise lr\n"
    "decay finetune.layer_decay^(L+1-id) (embeddings id 0, block k id k+1, the rest L+1), drop\n"
    "path, warmup + cosine, random resized crop + flip (aug.*). The shared relative position\n"
    "bias of pre-training is copied into every block's own table. --init none trains from\n"
    "random initialisation: the no-pre-training baseline (give it finetune.layer_decay: 1.0).\n"
    "Data parallel over the MPI ranks; logs and DIR/metrics.jsonl as pre-training; checkpoints\n"
    "DIR/ckpt-<step>.h5 (kind finetune-cls / finetune-seg, for beit eval); at the end\n"
    "DIR/eval.json with top-1/top-5 (or mIoU and pixel accuracy) on data.eval_split.\n"
    "Example: mpirun -np 2 build/beit finetune -c jobs/fmnist/finetune.yaml \\\n"
    "           --init runs/pretrain/ckpt-00004680.h5 --out runs/finetune";

static const char *PROBE_USAGE =
    "usage: beit probe -c JOB --init PRETRAIN.h5|none --out DIR [--set KEY=VALUE]...\n"
    "\n"
    "Linear probe: the encoder is frozen; the average-pooled patch tokens of each block in\n"
    "finetune.probe_blocks (1-based, -1 = the last), standardised with the train statistics,\n"
    "feed a linear classifier trained with AdamW (optim.*, train.epochs, train.global_batch).\n"
    "Prints one JSON line per block ({\"task\": \"probe\", \"block\", \"top1\", \"top5\", ...}) and\n"
    "writes DIR/eval.json (the same lines) and DIR/metrics.jsonl (per block and epoch).\n"
    "Example: mpirun -np 2 build/beit probe -c jobs/fmnist/probe.yaml --init runs/pretrain/ckpt-00004680.h5 \\\n"
    "           --out runs/probe";

int cmd_finetune(int argc, char **argv) {
    const char *init = NULL;
    extra_flag extra[] = {{"--init", "CKPT", "pre-training checkpoint to start from, or 'none' (random init)", &init},
                          {NULL, NULL, NULL, NULL}};
    return run_training_command(argc, argv, BEIT_TASK_FINETUNE, "finetune", FT_USAGE, finetune_main, extra, &init);
}

int cmd_probe(int argc, char **argv) {
    const char *init = NULL;
    extra_flag extra[] = {{"--init", "CKPT", "pre-training checkpoint whose encoder is probed, or 'none'", &init},
                          {NULL, NULL, NULL, NULL}};
    return run_training_command(argc, argv, BEIT_TASK_PROBE, "probe", PROBE_USAGE, probe_main, extra, &init);
}
