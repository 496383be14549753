#include "runopts.h"

#include "beit/error.h"
#include "beit/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void print_help(FILE *f, unsigned common, const extra_flag *extra, const char *usage) {
    fprintf(f, "%s\noptions:\n", usage);
    if (common & RUNOPT_CONFIG) fprintf(f, "  -c FILE            the YAML job file (keys: `beit config --help`)\n");
    if (common & RUNOPT_SET) fprintf(f, "  --set KEY=VALUE    override a job key, e.g. --set optim.lr=1e-3 (repeatable)\n");
    if (common & RUNOPT_OUT) fprintf(f, "  --out DIR          run directory (config, log, checkpoints, metrics.jsonl, PNGs)\n");
    if ((common & RUNOPT_STEPS) && (common & RUNOPT_RESUME))
        fprintf(f, "  --steps N          stop at optimizer step N, counted from the run's start also after\n"
                   "                     --resume (a run already there trains nothing); the lr schedule is\n"
                   "                     unchanged\n");
    else if (common & RUNOPT_STEPS) fprintf(f, "  --steps N          stop after N optimizer steps (the lr schedule is unchanged)\n");
    if (common & RUNOPT_LOG) fprintf(f, "  --log-every N      log and record metrics every N steps (train.log_every)\n");
    if (common & RUNOPT_SEED) fprintf(f, "  --seed S           the run's seed (seed)\n");
    if (common & RUNOPT_RESUME) fprintf(f, "  --resume X         'auto' (newest complete checkpoint in --out) or a checkpoint file\n");
    for (const extra_flag *e = extra; e && e->name; e++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "%s%s%s", e->name, e->metavar ? " " : "", e->metavar ? e->metavar : "");
        fprintf(f, "  %-18s %s\n", lhs, e->help);
    }
    fprintf(f, "  -h, --help         this text\n");
}

static int64_t parse_count(const char *flag, const char *v) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < 0)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: expected a whole number >= 0, got '%s'", flag, v);
    return x;
}

/* The entry of table named by the len bytes at name, or NULL. */
static const extra_flag *find_flag(const extra_flag *table, const char *name, size_t len) {
    for (const extra_flag *e = table; e && e->name; e++)
        if (strlen(e->name) == len && !strncmp(e->name, name, len)) return e;
    return NULL;
}

int runopts_parse(runopts *ro, int argc, char **argv, unsigned common, const extra_flag *extra,
                  const char *usage) {
    memset(ro, 0, sizeof *ro);
    ro->steps = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            if (beit_rank() == 0) print_help(stdout, common, extra, usage);
            return 1;
        }
        /* --flag=value is accepted too */
        char flag[64];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof flag) {
            memcpy(flag, a, (size_t)(eq - a));
            flag[eq - a] = '\0';
            val = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", a);
        }
#define TAKE()                                                                                      \
    (val ? val                                                                                      \
         : (i + 1 < argc ? argv[++i]                                                                \
                         : (beit_fatal_user(BEIT_EXIT_USAGE, "%s %s: %s needs a value (see --help)", \
                                            "beit", argv[0], flag), (const char *)NULL)))
        if ((common & RUNOPT_CONFIG) && (!strcmp(flag, "-c") || !strcmp(flag, "--config"))) ro->config = TAKE();
        else if ((common & RUNOPT_SET) && !strcmp(flag, "--set")) {
            if (ro->nsets == RUNOPTS_MAX_SETS) beit_fatal_user(BEIT_EXIT_USAGE, "too many --set (max %d)", RUNOPTS_MAX_SETS);
            ro->sets[ro->nsets++] = TAKE();
        } else if ((common & RUNOPT_OUT) && !strcmp(flag, "--out")) ro->out = TAKE();
        else if ((common & RUNOPT_STEPS) && !strcmp(flag, "--steps")) ro->steps = parse_count("--steps", TAKE());
        else if ((common & RUNOPT_LOG) && !strcmp(flag, "--log-every")) ro->log_every = TAKE();
        else if ((common & RUNOPT_SEED) && !strcmp(flag, "--seed")) ro->seed = TAKE();
        else if ((common & RUNOPT_RESUME) && !strcmp(flag, "--resume")) ro->resume = TAKE();
        else {
            const extra_flag *e = find_flag(extra, flag, strlen(flag));
            if (!e) {
                if (beit_rank() == 0) {
                    fprintf(stderr, "beit %s: unknown option '%s'\n\n", argv[0], a);
                    print_help(stderr, common, extra, usage);
                }
                beit_exit(BEIT_EXIT_USAGE);
            }
            if (e->metavar) *e->value = TAKE();
            else {
                if (val) beit_fatal_user(BEIT_EXIT_USAGE, "beit %s: %s takes no value", argv[0], flag);
                *e->value = "1";
            }
        }
#undef TAKE
    }
    return 0;
}

int runopts_parse_args(const char *cmd, int argc, char **argv, const extra_flag *flags, const char **pos,
                       int npos_max, int *npos, void (*usage)(FILE *)) {
    *npos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            if (beit_rank() == 0) usage(stdout);
            return 1;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const extra_flag *e = find_flag(flags, a, len);
            if (!e) beit_fatal_user(BEIT_EXIT_USAGE, "%s: unknown flag %.*s (see '%s --help')", cmd, (int)len, a, cmd);
            if (!e->metavar) {
                if (eq) beit_fatal_user(BEIT_EXIT_USAGE, "%s: %s takes no value (see '%s --help')", cmd, e->name, cmd);
                *e->value = "1";
            } else if (eq) *e->value = eq + 1;
            else if (i + 1 < argc) *e->value = argv[++i];
            else beit_fatal_user(BEIT_EXIT_USAGE, "%s: flag %s needs a value (see '%s --help')", cmd, e->name, cmd);
            continue;
        }
        if (*npos == npos_max)
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: unexpected argument '%s' (see '%s --help')", cmd, a, cmd);
        pos[(*npos)++] = a;
    }
    return 0;
}

long long runopts_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: %s '%s' (expected an integer in %lld..%lld)", cmd, flag, s, lo, hi);
    return v;
}

static char g_source[2048]; /* message prefix only; written once per process by load */

const char *runopts_source(const runopts *ro) {
    snprintf(g_source, sizeof g_source, "%s%s", ro->config ? ro->config : "(no job file)",
             ro->nsets ? " + --set" : "");
    return g_source;
}

void runopts_load_config(const runopts *ro, beit_config *c) {
    if (!ro->config) beit_fatal_user(BEIT_EXIT_USAGE, "no job file: give one with -c FILE (see --help)");
    config_load(c, ro->config);
    char buf[128];
    if (ro->seed) {
        snprintf(buf, sizeof buf, "seed=%s", ro->seed);
        config_set(c, buf);
    }
    if (ro->log_every) {
        snprintf(buf, sizeof buf, "train.log_every=%s", ro->log_every);
        config_set(c, buf);
    }
    for (int i = 0; i < ro->nsets; i++) config_set(c, ro->sets[i]);
    config_validate(c, runopts_source(ro));
}

int run_training_command(int argc, char **argv, int task, const char *name, const char *usage,
                         int (*main_fn)(const beit_config *, const train_opts *, const beit_dist *),
                         const extra_flag *extra, const char *const *init) {
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_TRAIN, extra, usage)) return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    if (c.task != task)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: task is '%s'; beit %s runs jobs with task: %s", ro.config,
                        config_enum_name("task", c.task), name, config_enum_name("task", task));
    if (!ro.out) beit_fatal_user(BEIT_EXIT_USAGE, "beit %s: --out DIR is required (the run directory)", name);
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    char *yaml = config_to_yaml(&c);
    beit_log("# resolved job (%s)\n%s", runopts_source(&ro), yaml);
    free(yaml);
    train_opts o = {ro.out, ro.steps, ro.resume, runopts_source(&ro), init ? *init : NULL};
    return main_fn(&c, &o, &d);
}
