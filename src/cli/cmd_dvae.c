/* beit dvae train: train the visual tokenizer (BEiT stage 1). */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/tasks.h"
#include "commands.h"
#include "runopts.h"

#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "usage: beit dvae train -c JOB --out DIR [--steps N] [--resume auto|FILE] [--set KEY=VALUE]...\n"
    "\n"
    "Trains the dVAE visual tokenizer (stage 1 of BEiT) with the job's dvae.* settings, data\n"
    "parallel over the MPI ranks (run under mpirun/srun). Logs every train.log_every steps\n"
    "(losses, temperature, KL weight, lr, gradient norm, images/s, ETA) to stdout and\n"
    "DIR/metrics.jsonl, checkpoints to DIR/ckpt-<step>.h5, and at the end evaluates on\n"
    "data.eval_split with hard argmax tokens: DIR/eval.json (mse, psnr, codes used,\n"
    "perplexity) and DIR/reconstructions.png (rows of originals above their reconstructions).\n"
    "Example: mpirun -np 2 build/beit dvae train -c jobs/fmnist/dvae.yaml --out runs/dvae";

int cmd_dvae(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "train"))
        return run_training_command(argc - 1, argv + 1, BEIT_TASK_DVAE, "dvae train", USAGE, dvae_train_main, NULL, NULL);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    if (beit_rank() == 0) fprintf(help ? stdout : stderr, "%s\n", USAGE);
    return help ? 0 : BEIT_EXIT_USAGE;
}
