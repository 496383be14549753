/* beit dvae train: train the visual tokenizer. */
#include "beit/core.h"
#include "beit/dist.h"
#include "beit/tasks.h"
#include "commands.h"
#include "runopts.h"

#include <stdio.h>
#include <stdlib.h>
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
    if (argc < 2 || (strcmp(argv[1], "train") != 0)) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            if (beit_rank() == 0) puts(USAGE);
            return 0;
        }
        if (beit_rank() == 0) fprintf(stderr, "%s\n", USAGE);
        return BEIT_EXIT_USAGE;
    }
    runopts ro;
    if (runopts_parse(&ro, argc - 1, argv + 1, RUNOPT_TRAIN, NULL, USAGE)) return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    if (c.task != BEIT_TASK_DVAE)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: task is '%s'; beit dvae train runs jobs with task: dvae", ro.config,
                        config_enum_name("task", c.task));
    if (!ro.out) beit_fatal_user(BEIT_EXIT_USAGE, "beit dvae train: --out DIR is required (the run directory)");
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    char *yaml = config_to_yaml(&c);
    beit_log("# resolved job (%s)\n%s", runopts_source(&ro), yaml);
    free(yaml);
    train_opts o = {ro.out, ro.steps, ro.resume, runopts_source(&ro)};
    return dvae_train_main(&c, &o, &d);
}
