/* beit pretrain: masked image modeling (BEiT stage 2). */
#include "beit/tasks.h"
#include "commands.h"
#include "runopts.h"

static const char *USAGE =
    "usage: beit pretrain -c JOB --out DIR [--steps N] [--resume auto|FILE] [--set KEY=VALUE]...\n"
    "\n"
    "Masked image modeling: the ViT encoder sees the patches with mask.num_patches of them\n"
    "(blockwise, or random with mask.type: random) replaced by the mask token, and predicts the\n"
    "visual token of every masked patch (pretrain.target: tokens, from the token store\n"
    "data.tokens written by `beit tokenize`), or regresses its pixels (pixels), or takes tokens\n"
    "from a frozen tokenizer on the fly (tokens_online, tokenize.checkpoint: beit's dVAE or\n"
    "DALL-E's encoder converted by tools/import_dalle.py). Data parallel over the\n"
    "MPI ranks; logs loss, masked-token accuracy, lr, gradient norm, images/s and ETA to stdout\n"
    "and DIR/metrics.jsonl; checkpoints DIR/ckpt-<step>.h5 (timm/unilm tensor names); at the end\n"
    "DIR/eval.json with the masked-token accuracy on data.eval_split.\n"
    "Example: mpirun -np 2 build/beit pretrain -c jobs/fmnist/pretrain.yaml --out runs/pretrain";

int cmd_pretrain(int argc, char **argv) {
    return run_training_command(argc, argv, BEIT_TASK_PRETRAIN, "pretrain", USAGE, pretrain_main, NULL, NULL);
}
