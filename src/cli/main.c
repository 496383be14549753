/* beit: git-style dispatcher. Every subcommand has --help. */
#include "beit/error.h"
#include "beit/log.h"
#include "commands.h"

#include <hdf5.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#ifndef BEIT_VERSION
#define BEIT_VERSION "dev"
#endif

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"data", cmd_data, "import a dataset into an HDF5 store (fashion-mnist, image folder); info"},
    {"check", cmd_check, "validate a job file (keys, types, ranges, files) without running it"},
    {"dvae", cmd_dvae, "train the dVAE visual tokenizer (stage 1)"},
    {"tokenize", cmd_tokenize, "encode a dataset into visual tokens (HDF5), MPI-parallel"},
    {"pretrain", cmd_pretrain, "masked image modeling pre-training of the ViT encoder (stage 2)"},
    {"finetune", cmd_finetune, "fine-tune a pre-trained encoder: classification or segmentation"},
    {"probe", cmd_probe, "linear probe of a frozen encoder, per block"},
    {"eval", cmd_eval, "evaluate a fine-tuned checkpoint on a split: one JSON line"},
    {"attn", cmd_attn, "render self-attention maps of a reference patch (PNG)"},
    {"config", cmd_config, "list every job-file key with its type, default and meaning"},
    {"bench", cmd_bench, "measure: sgemm peak, training steps, encoding (for tools/bench)"},
};
#define NCOMMANDS (int)(sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f,
            "usage: beit <command> [options]\n"
            "\n"
            "BEiT pre-training on CPU clusters: a dVAE visual tokenizer, masked image modeling,\n"
            "fine-tuning and evaluation. Run under mpirun or srun for several ranks.\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f,
            "\n"
            "`beit <command> --help` describes a command. Exit codes: 0 ok, 1 internal error,\n"
            "2 bad command line or job file, 3 bad data, 4 bad checkpoint, 5 inputs disagree,\n"
            "6 NaN/Inf, 7 output not writable, 8 preempted (checkpoint written).\n");
}

/* A rank started by mpirun (or its per-node daemon) dies with it. Killing mpirun with SIGKILL
 * cannot be forwarded, and each rank sits in its own process group, so without this the ranks
 * of a killed job run on and keep writing checkpoints into the run directory, racing the job
 * that resumes there. (srun: Slurm kills the whole step itself.) */
static void die_with_launcher(void) {
#ifdef __linux__
    if (!getenv("OMPI_COMM_WORLD_RANK")) return; /* no mpirun: a shell's child may outlive it */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "beit: warning: prctl(PR_SET_PDEATHSIG): this rank will not end if mpirun is killed\n");
        return;
    }
    if (getppid() != parent) raise(SIGKILL); /* the launcher died before the call */
#endif
}

int main(int argc, char **argv) {
    die_with_launcher();
    MPI_CHECK(MPI_Init(&argc, &argv));
    int rank = 0, size = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    beit_set_rank(rank, size);
    beit_h5_quiet();

    int rc;
    if (argc < 2) {
        usage(stderr);
        rc = BEIT_EXIT_USAGE;
    } else if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        if (argc >= 3 && strcmp(argv[1], "help") == 0) {
            for (int i = 0; i < NCOMMANDS; i++)
                if (!strcmp(argv[2], COMMANDS[i].name)) {
                    char *sub[] = {argv[2], "--help", NULL};
                    rc = COMMANDS[i].fn(2, sub);
                    goto done;
                }
        }
        if (rank == 0) usage(stdout);
        rc = 0;
    } else if (!strcmp(argv[1], "--version")) {
        if (rank == 0) printf("beit %s\n", BEIT_VERSION);
        rc = 0;
    } else {
        const command *c = NULL;
        for (int i = 0; i < NCOMMANDS; i++)
            if (!strcmp(argv[1], COMMANDS[i].name)) c = &COMMANDS[i];
        if (!c) {
            if (rank == 0) {
                fprintf(stderr, "beit: unknown command '%s'\n\n", argv[1]);
                usage(stderr);
            }
            rc = BEIT_EXIT_USAGE;
        } else {
            rc = c->fn(argc - 1, argv + 1);
        }
    }
done:
    if (rc != 0) beit_exit(rc);
    MPI_CHECK(MPI_Finalize());
    return 0;
}
