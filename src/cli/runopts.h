/* The flags every training or evaluation command shares, so scripts can rely on them:
 *   -c FILE          the YAML job
 *   --set key=value  override one key (repeatable; applied in order, after the file)
 *   --out DIR        run directory: resolved config, log, checkpoints, metrics.jsonl, PNGs
 *   --steps N        stop at global step N, also on resume (the schedule still spans the config's run)
 *   --log-every N    = --set train.log_every=N
 *   --seed S         = --set seed=S
 *   --resume X       "auto" (newest complete checkpoint in --out) or a checkpoint path
 * A command adds its own flags with an extra table. */
#ifndef BEIT_CLI_RUNOPTS_H
#define BEIT_CLI_RUNOPTS_H

#include "beit/config.h"

#include <stdint.h>
#include <stdio.h>

#define RUNOPTS_MAX_SETS 64

typedef struct {
    const char *name;    /* "--tokens" */
    const char *metavar; /* "FILE", or NULL for a switch */
    const char *help;
    const char **value;  /* where the value (or "1" for a switch) goes */
} extra_flag;

typedef struct {
    const char *config;
    const char *sets[RUNOPTS_MAX_SETS];
    int nsets;
    const char *out;
    int64_t steps; /* -1 = the whole schedule */
    const char *log_every, *seed;
    const char *resume;
} runopts;

/* Parse argv (argv[0] is the command name). `common` selects which shared flags the command
 * takes (RUNOPT_* bits). Unknown flags and missing values exit with BEIT_EXIT_USAGE;
 * --help prints `usage` + the flags and returns 1 (the command then returns 0). */
enum {
    RUNOPT_CONFIG = 1, RUNOPT_SET = 2, RUNOPT_OUT = 4, RUNOPT_STEPS = 8, RUNOPT_LOG = 16,
    RUNOPT_SEED = 32, RUNOPT_RESUME = 64,
    RUNOPT_TRAIN = 127, /* all of the above */
    RUNOPT_JOB = RUNOPT_CONFIG | RUNOPT_SET | RUNOPT_SEED,
};
int runopts_parse(runopts *ro, int argc, char **argv, unsigned common, const extra_flag *extra,
                  const char *usage);
/* Commands without a job file whose arguments are flags and positionals (`beit data ...`):
 * argv[1..] (argv[0] is the subcommand) are flags of `flags` (--flag VALUE or --flag=VALUE;
 * a flag without metavar is a switch set to "1") and at most npos_max positional arguments,
 * which go to pos[0..*npos) in order; after "--" every argument is positional. cmd is the
 * command's full name in messages ("beit data info"). -h/--help prints usage(stdout) on rank 0
 * and returns 1 (the command then returns 0). An unknown flag, a flag without its value and
 * an argument beyond npos_max exit with BEIT_EXIT_USAGE ("cmd: ... (see 'cmd --help')"). */
int runopts_parse_args(const char *cmd, int argc, char **argv, const extra_flag *flags, const char **pos,
                       int npos_max, int *npos, void (*usage)(FILE *));
/* The value s of a flag as an integer in [lo, hi]; anything else exits with BEIT_EXIT_USAGE:
 * "cmd: flag 's' (expected an integer in lo..hi)". */
long long runopts_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi);

/* Load the job: defaults, -c file, --seed/--log-every, --set overrides (in order), then the
 * cross-field checks. Requires -c. */
void runopts_load_config(const runopts *ro, beit_config *c);
/* "FILE" or "FILE + --set ..." : names the config's origin in messages */
const char *runopts_source(const runopts *ro);

/* The whole of a training command: parse the shared flags (+ `extra`, may be NULL), load and
 * check the job (its task must be `task`), require --out, print the resolved job, run main_fn
 * on MPI_COMM_WORLD. *init (when init is given) becomes train_opts.init. */
#include "beit/train.h"
int run_training_command(int argc, char **argv, int task, const char *name, const char *usage,
                         int (*main_fn)(const beit_config *, const train_opts *, const beit_dist *),
                         const extra_flag *extra, const char *const *init);

#endif
