/* io/config: the job-file loader, --set, defaults, cross-field checks, the resolved YAML.
 *
 * Errors end the process (beit_fatal_user -> exit 2), so every failing case runs in a
 * fork()ed child with stderr on a pipe; the parent checks the exit status and that the
 * message holds the expected "file:line:col:" (1-based, counted by hand from the files in
 * tests/io/configs/), the dotted key and what was expected. Expected values of a good load
 * are typed in from the files and the schema spec, not read back from the code. */
#include "beit/config.h"
#include "beit/error.h"
#include "harness.h"

#include <stddef.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CFG_DIR BEIT_SOURCE_DIR "/tests/io/configs/"

/* ---- running a case in a child ---------------------------------------------------------- */

typedef struct {
    const char *file;        /* config_load(CFG_DIR file), if set */
    const char *sets[8];     /* then config_set each (on defaults when file is NULL) */
    int validate;            /* then config_validate(c, "test-source") */
    const char *require;     /* then config_require(c, require, "test-source") */
} job;

typedef struct {
    int exited, code;
    char err[8192];
} outcome;

static void run_job(const job *j) {
    beit_config c;
    if (j->file) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s", CFG_DIR, j->file);
        config_load(&c, path);
    } else {
        config_defaults(&c);
    }
    for (int i = 0; i < 8 && j->sets[i]; i++) config_set(&c, j->sets[i]);
    if (j->validate) config_validate(&c, "test-source");
    if (j->require) config_require(&c, j->require, "test-source");
}

static outcome run_child(const job *j) {
    outcome o;
    memset(&o, 0, sizeof o);
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(1); }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        run_job(j);
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], o.err + n, sizeof o.err - 1 - n)) > 0) n += (size_t)r;
    o.err[n] = 0;
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    o.exited = WIFEXITED(st);
    o.code = o.exited ? WEXITSTATUS(st) : -1;
    return o;
}

/* The same job through the entry points that return errors (config_parse_buffer on the file's
 * bytes, config_try_set): -1 at the same step, with the message the exit printed. Jobs that
 * get as far as config_validate/config_require are not for them (1 = nothing to compare). */
static int buffer_agrees(const job *j, const outcome *o) {
    if (j->validate || j->require) return 1;
    beit_config c;
    char err[4096] = "", path[4096];
    int rc = 0;
    if (j->file) {
        snprintf(path, sizeof path, "%s%s", CFG_DIR, j->file);
        FILE *f = fopen(path, "rb");
        if (!f) return 1; /* an unreadable file: config_load only */
        static char text[1 << 16];
        size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        rc = config_parse_buffer(&c, text, n, path, 0, err, sizeof err);
    } else {
        config_defaults(&c);
    }
    for (int i = 0; i < 8 && j->sets[i] && rc == 0; i++) rc = config_try_set(&c, j->sets[i], err, sizeof err);
    if (rc == 0 || !err[0] || !strstr(o->err, err)) {
        t_diag("buffer entry point: rc %d, message: %s", rc, err);
        return 0;
    }
    return 1;
}

/* The job must exit with BEIT_EXIT_USAGE and stderr must contain every needle (NULL-ended);
 * the entry points that return errors must return the same message. */
static void expect_fail(const char *name, const job *j, ...) {
    outcome o = run_child(j);
    t_ok(buffer_agrees(j, &o), "%s: the buffer entry points return the same error", name);
    int ok = o.exited && o.code == BEIT_EXIT_USAGE;
    va_list ap;
    va_start(ap, j);
    const char *missing = NULL;
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(o.err, s) && !missing) missing = s;
    va_end(ap);
    if (!ok || missing) {
        t_diag("exit %d (want %d); stderr: %s", o.code, BEIT_EXIT_USAGE, o.err);
        if (missing) t_diag("missing from the message: %s", missing);
    }
    t_ok(ok && !missing, "%s: exit 2 and the message names place, key, expectation", name);
}

static void expect_ok(const char *name, const job *j) {
    outcome o = run_child(j);
    int ok = o.exited && o.code == 0 && !o.err[0];
    if (!ok) t_diag("exit %d; stderr: %s", o.code, o.err);
    t_ok(ok, "%s: accepted", name);
}

static void load_file(beit_config *c, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s", CFG_DIR, name);
    config_load(c, path);
}

static int list_is(const beit_int_list *l, int n, const int *v) {
    if (l->n != n) return 0;
    for (int i = 0; i < n; i++)
        if (l->v[i] != v[i]) return 0;
    for (int i = n; i < BEIT_CONFIG_LIST_MAX; i++)
        if (l->v[i] != 0) return 0;
    return 1;
}

/* ---- good inputs ------------------------------------------------------------------------ */

static void test_defaults(void) {
    beit_config c;
    config_defaults(&c);
    /* values from the schema spec, typed in by hand */
    int ok = c.task == BEIT_TASK_UNSET && c.seed == 0 && c.data.source == BEIT_DATA_STORE &&
             !strcmp(c.data.path, "") && !strcmp(c.data.split, "train") &&
             !strcmp(c.data.eval_split, "test") && !strcmp(c.data.tokens, "") && c.data.subset == 0 &&
             c.data.image_size == 0 && c.data.channels == 0 && c.data.num_classes == 0 &&
             c.data.synthetic_size == 1024;
    t_ok(ok, "defaults: task unset, seed, data.*");
    ok = c.aug.crop_scale_min == 0.08 && c.aug.crop_scale_max == 1.0 && c.aug.crop_ratio_min == 0.75 &&
         c.aug.crop_ratio_max == 1.3333333 && c.aug.flip && c.aug.enable;
    t_ok(ok, "defaults: aug.*");
    ok = c.model.arch == BEIT_ARCH_BEIT && c.model.img_size == 224 && c.model.patch_size == 16 &&
         c.model.in_chans == 3 && c.model.embed_dim == 768 && c.model.depth == 12 &&
         c.model.num_heads == 12 && c.model.mlp_ratio == 4.0 && c.model.layer_scale_init == 0.1 &&
         c.model.drop_path == 0.1 && c.model.vocab_size == 8192 && c.model.init_std == 0.02;
    t_ok(ok, "defaults: model.*");
    ok = c.mask.type == BEIT_MASK_BLOCK && c.mask.num_patches == 75 && c.mask.min_patches == 16 &&
         c.mask.max_patches == 0 && c.mask.min_aspect == 0.3 && c.mask.max_aspect == 0.0 &&
         config_mask_max_patches(&c) == 75 && fabs(config_mask_max_aspect(&c) - 1 / 0.3) < 1e-15 &&
         c.pretrain.target == BEIT_TARGET_TOKENS;
    t_ok(ok, "defaults: mask.*, pretrain.target, derived max_patches / max_aspect");
    ok = c.dvae.image_size == 112 && c.dvae.in_chans == 3 && c.dvae.vocab_size == 8192 &&
         list_is(&c.dvae.widths, 3, (const int[]){64, 128, 256}) && c.dvae.blocks_per_group == 1 &&
         c.dvae.recon == BEIT_RECON_MSE && c.dvae.kl_weight == 0.0 && c.dvae.kl_warmup_steps == 0 &&
         c.dvae.temp_start == 1.0 && c.dvae.temp_end == 0.0625 && c.dvae.temp_anneal_steps == 0;
    t_ok(ok, "defaults: dvae.*");
    ok = c.tokenize.views == 1 && c.tokenize.batch == 256 && !strcmp(c.tokenize.checkpoint, "") &&
         c.finetune.task == BEIT_FT_CLASSIFICATION && c.finetune.pool == BEIT_POOL_MEAN &&
         c.finetune.label_smoothing == 0.1 && c.finetune.layer_decay == 0.65 &&
         c.finetune.head_init_scale == 0.001 &&
         list_is(&c.finetune.seg_blocks, 4, (const int[]){4, 6, 8, 12}) && list_is(&c.finetune.probe_blocks, 1, (const int[]){-1});
    t_ok(ok, "defaults: tokenize.*, finetune.*");
    ok = c.train.epochs == 1.0 && c.train.global_batch == 256 && c.train.micro_batch == 0 &&
         c.train.log_every == 10 && c.train.ckpt_every == 0 && c.train.keep_last == 2 &&
         c.train.eval_every == 0 && c.optim.lr == 1.5e-3 && c.optim.min_lr == 1e-5 &&
         c.optim.warmup_epochs == 10 && c.optim.warmup_steps == 0 && c.optim.weight_decay == 0.05 &&
         c.optim.beta1 == 0.9 && c.optim.beta2 == 0.999 && c.optim.eps == 1e-8 &&
         c.optim.clip_grad == 3.0 && c.dist.bucket_mb == 25 && c.dist.zero == 0 && c.dist.overlap;
    t_ok(ok, "defaults: train.*, optim.*, dist.*");
}

static void test_valid(void) {
    beit_config c;
    load_file(&c, "valid.yaml");
    t_ok(c.task == BEIT_TASK_PRETRAIN && c.seed == 7, "valid.yaml: task, seed");
    t_ok(!strcmp(c.data.path, "/data/fmnist store.h5") && !strcmp(c.data.split, "train") &&
             c.data.subset == 100 && !strcmp(c.data.eval_split, "test"),
         "valid.yaml: data (plain string with a space, quoted string, default kept)");
    t_ok(c.model.arch == BEIT_ARCH_VIT && c.model.img_size == 28 && c.model.patch_size == 4 &&
             c.model.embed_dim == 64 && c.model.depth == 4 && c.model.num_heads == 4 &&
             c.model.drop_path == 0.0 && c.model.vocab_size == 8192,
         "valid.yaml: model");
    t_ok(c.mask.type == BEIT_MASK_RANDOM && c.mask.num_patches == 20 && c.mask.min_patches == 4 &&
             c.mask.min_aspect == 0.5 && fabs(config_mask_max_aspect(&c) - 2.0) < 1e-15,
         "valid.yaml: mask");
    t_ok(c.optim.lr == 2e-4 && c.optim.beta2 == 0.98 && c.optim.warmup_steps == 50 &&
             c.optim.beta1 == 0.9,
         "valid.yaml: dotted key optim.lr and section optim together");
    t_ok(!c.aug.flip && c.aug.crop_scale_min == 0.2 && c.aug.enable, "valid.yaml: flow mapping aug");
    t_ok(list_is(&c.dvae.widths, 2, (const int[]){32, 64}) && c.dvae.image_size == 28 &&
             c.dvae.recon == BEIT_RECON_LOGIT_LAPLACE,
         "valid.yaml: block sequence dvae.widths");
    t_ok(list_is(&c.finetune.seg_blocks, 3, (const int[]){1, 2, 4}), "valid.yaml: flow sequence");
    t_ok(c.train.epochs == 0.5 && c.train.global_batch == 64 && c.train.micro_batch == 16 &&
             !c.dist.overlap && c.dist.zero == 1,
         "valid.yaml: train, dist");
    expect_ok("valid.yaml passes config_validate", &(job){.file = "valid.yaml", .validate = 1});

    load_file(&c, "synthetic.yaml");
    t_ok(c.data.source == BEIT_DATA_SYNTHETIC && !strcmp(c.data.split, "train"),
         "data: synthetic sets data.source");
    load_file(&c, "empty.yaml");
    beit_config d;
    config_defaults(&d);
    t_ok(memcmp(&c, &d, sizeof c) == 0, "a file of comments only gives the defaults");
    t_ok(!strcmp(config_enum_name("task", BEIT_TASK_PRETRAIN), "pretrain") &&
             !strcmp(config_enum_name("dvae.recon", BEIT_RECON_LOGIT_LAPLACE), "logit_laplace") &&
             !strcmp(config_enum_name("task", -1), "(unset)"),
         "config_enum_name");
}

/* ---- bad files ------------------------------------------------------------------------- */

static void test_file_errors(void) {
    expect_fail("unreadable file", &(job){.file = "no_such_file.yaml"}, "no_such_file.yaml",
                "cannot open", NULL);
    expect_fail("malformed: bad indentation", &(job){.file = "bad_indent.yaml"},
                "bad_indent.yaml:4:9: invalid YAML", "mapping values are not allowed", NULL);
    /* the ':' after "image_size" on line 4 is where the unclosed [ of line 3 fails */
    expect_fail("malformed: unclosed bracket", &(job){.file = "bad_bracket.yaml"},
                "bad_bracket.yaml:4:13: invalid YAML", "flow sequence at line 3, column 11", NULL);
    expect_fail("malformed: dedent to no enclosing level", &(job){.file = "bad_dedent.yaml"},
                "bad_dedent.yaml:4:3: invalid YAML", "block mapping at line 1, column 1", NULL);
    expect_fail("unknown top-level key", &(job){.file = "unknown_top.yaml"},
                "unknown_top.yaml:2:1: unknown key 'sed' (did you mean 'seed'?)", NULL);
    expect_fail("unknown nested key", &(job){.file = "unknown_nested.yaml"},
                "unknown_nested.yaml:4:3: unknown key 'optim.lrr' (did you mean 'optim.lr'?)", NULL);
    expect_fail("unknown section", &(job){.file = "unknown_section.yaml"},
                "unknown_section.yaml:2:1: unknown key 'optimizer' (did you mean 'optim'?)", NULL);
    expect_fail("duplicate key", &(job){.file = "duplicate.yaml"},
                "duplicate.yaml:5:3: duplicate key 'optim.lr'", "first given at line 3, column 3", NULL);
    expect_fail("duplicate key, dotted and nested", &(job){.file = "duplicate_dotted.yaml"},
                "duplicate_dotted.yaml:4:3: duplicate key 'optim.lr'", "first given at line 1, column 1",
                NULL);
    expect_fail("duplicate top-level key", &(job){.file = "duplicate_top.yaml"},
                "duplicate_top.yaml:2:1: duplicate key 'task'", "line 1", NULL);
    expect_fail("duplicate via data: synthetic", &(job){.file = "synthetic_dup.yaml"},
                "synthetic_dup.yaml:2:1: duplicate key 'data.source'", "line 1, column 1", NULL);
    expect_fail("string for a float", &(job){.file = "type_float.yaml"},
                "type_float.yaml:3:7: optim.lr: expected a number, got 'fast'", NULL);
    expect_fail("float for an int", &(job){.file = "type_int.yaml"},
                "type_int.yaml:2:10: model.depth: expected an integer, got '2.5'", NULL);
    expect_fail("yes for a bool", &(job){.file = "type_bool.yaml"},
                "type_bool.yaml:2:9: aug.flip: expected true or false, got 'yes'", NULL);
    expect_fail("quoted number", &(job){.file = "type_quoted.yaml"},
                "type_quoted.yaml:1:7: seed: expected an integer, got the quoted string \"3\"", NULL);
    expect_fail("sequence for a scalar", &(job){.file = "type_seq.yaml"},
                "type_seq.yaml:1:7: seed: expected an integer, got a sequence", NULL);
    expect_fail("scalar for an int list", &(job){.file = "type_list_scalar.yaml"},
                "type_list_scalar.yaml:2:11: dvae.widths: expected a list of integers", "got '64'", NULL);
    /* an empty value has no characters of its own; libyaml places it right after the colon */
    expect_fail("empty value", &(job){.file = "type_empty.yaml"},
                "type_empty.yaml:2:6: optim.lr: expected a number, got an empty value", NULL);
    expect_fail("unknown key in a known section lists its keys", &(job){.sets = {"optim.foo=1"}},
                "unknown key 'optim.foo' (the keys of 'optim' are: lr, min_lr,", NULL);
    expect_fail("top-level key that belongs to a section", &(job){.sets = {"epochs=3"}},
                "unknown key 'epochs' (did you mean 'train.epochs'?)", NULL);
    expect_fail("out of range", &(job){.file = "range.yaml"},
                "range.yaml:2:7: expected 0 <= optim.lr <= 10, got -1", NULL);
    expect_fail("int list entry out of range", &(job){.file = "range_list.yaml"},
                "range_list.yaml:2:16: expected dvae.widths[1] >= 1, got 0", NULL);
    expect_fail("int list of 17 entries", &(job){.file = "list_long.yaml"},
                "list_long.yaml:2:67: dvae.widths: expected at most 16 entries", NULL);
    expect_fail("unknown enum value", &(job){.file = "enum.yaml"},
                "enum.yaml:3:9: model.arch: unknown value 'resnet' (expected one of: beit, vit)", NULL);
    expect_fail("mapping where a scalar is expected", &(job){.file = "map_for_scalar.yaml"},
                "map_for_scalar.yaml:4:5: optim.lr: expected a number, got a mapping", NULL);
    expect_fail("scalar where a section is expected", &(job){.file = "scalar_for_section.yaml"},
                "scalar_for_section.yaml:1:8: optim: expected a mapping", "lr, min_lr", "got '0.001'",
                NULL);
    expect_fail("anchors rejected", &(job){.file = "anchor.yaml"},
                "anchor.yaml:3:14: model.embed_dim: anchors (&w) are not supported", NULL);
    expect_fail("tags rejected", &(job){.file = "tag.yaml"}, "tag.yaml:1:7: seed: explicit tags", NULL);
    expect_fail("two documents rejected", &(job){.file = "two_docs.yaml"},
                "two_docs.yaml:2:1: a job file holds one YAML document", NULL);
    expect_fail("top level not a mapping", &(job){.file = "top_list.yaml"},
                "top_list.yaml:1:1: expected a mapping of keys at the top level", NULL);
}

/* ---- --set ------------------------------------------------------------------------------ */

static void test_set(void) {
    beit_config c;
    /* a string that the resolved YAML could not carry back (found by tools/fuzz/fuzz_config) */
    expect_fail("--set string not UTF-8", &(job){.sets = {"data.path=a\xff.h5"}},
                "--set 'data.path=a\xff.h5': data.path: expected UTF-8 text, got a byte that is not UTF-8 at byte 2",
                NULL);
    /* C1 controls and the line separator are kept, written as \u escapes */
    config_defaults(&c);
    config_set(&c, "data.path=a\xc2\x85" "b\xe2\x80\xa8" "c\xc3\xa9");
    char *y = config_to_yaml(&c);
    beit_config d;
    char err[4096];
    t_ok(strstr(y, "\"a\\u0085b\\u2028c\xc3\xa9\"") && config_parse_buffer(&d, y, strlen(y), "resolved", 1, err, sizeof err) == 0 &&
             !strcmp(d.data.path, c.data.path),
         "a string with NEL, U+2028 and an accent survives the resolved YAML");
    free(y);
    config_defaults(&c);
    config_set(&c, "optim.lr=1e-3");
    config_set(&c, " model.depth = 6 ");
    config_set(&c, "data.path=/a b/c=d.h5");
    config_set(&c, "dvae.widths=[16, 32,64]");
    config_set(&c, "finetune.seg_blocks=2,4");
    config_set(&c, "aug.flip=false");
    config_set(&c, "task=dvae");
    config_set(&c, "data=synthetic");
    t_ok(c.optim.lr == 1e-3 && c.model.depth == 6 && !strcmp(c.data.path, "/a b/c=d.h5") &&
             list_is(&c.dvae.widths, 3, (const int[]){16, 32, 64}) &&
             list_is(&c.finetune.seg_blocks, 2, (const int[]){2, 4}) && !c.aug.flip &&
             c.task == BEIT_TASK_DVAE && c.data.source == BEIT_DATA_SYNTHETIC,
         "--set: float, trimmed int, literal string with '=' and ' ', lists, bool, enum, data=synthetic");
    config_set(&c, "data.path=");
    t_ok(!strcmp(c.data.path, ""), "--set data.path= gives an empty string");
    config_set(&c, "dvae.widths=[8]");
    t_ok(list_is(&c.dvae.widths, 1, (const int[]){8}), "--set a shorter list clears the old entries");

    expect_fail("--set unknown key", &(job){.sets = {"optim.lrr=1"}},
                "--set 'optim.lrr=1': unknown key 'optim.lrr' (did you mean 'optim.lr'?)", NULL);
    expect_fail("--set key in the wrong section", &(job){.sets = {"train.lr=1"}},
                "--set 'train.lr=1': unknown key 'train.lr' (did you mean 'optim.lr'?)", NULL);
    expect_fail("--set bad value", &(job){.sets = {"optim.lr=fast"}},
                "--set 'optim.lr=fast': optim.lr: expected a number, got 'fast'", NULL);
    expect_fail("--set out of range (exclusive bound)", &(job){.sets = {"aug.crop_scale_min=0"}},
                "--set 'aug.crop_scale_min=0': expected 0 < aug.crop_scale_min <= 1, got 0", NULL);
    expect_fail("--set int beyond 32 bits", &(job){.sets = {"seed=99999999999"}},
                "--set 'seed=99999999999': seed: expected an integer between", NULL);
    expect_fail("--set nan", &(job){.sets = {"optim.eps=nan"}},
                "optim.eps: expected a finite number, got 'nan'", NULL);
    expect_fail("--set bad enum", &(job){.sets = {"task=train"}},
                "--set 'task=train': task: unknown value 'train' (expected one of: dvae, tokenize, "
                "pretrain, finetune, probe, eval)", NULL);
    expect_fail("--set bad list entry", &(job){.sets = {"dvae.widths=32,x"}},
                "dvae.widths[1]: expected an integer, got 'x'", NULL);
    expect_fail("--set empty list", &(job){.sets = {"dvae.widths=[]"}},
                "dvae.widths: expected a list of 1 to 16 integers", NULL);
    expect_fail("--set without =", &(job){.sets = {"optim.lr"}}, "--set 'optim.lr': expected key=value",
                NULL);
    expect_fail("--set a section", &(job){.sets = {"optim=1"}},
                "--set 'optim=1': 'optim' is a section", NULL);
    expect_fail("--set overrides a file, then fails", &(job){.file = "valid.yaml", .sets = {"seed=1", "seed=-1"}},
                "--set 'seed=-1': expected seed >= 0, got -1", NULL);
    expect_ok("--set on a file", &(job){.file = "valid.yaml", .sets = {"optim.lr=1e-4", "data=synthetic"},
                                        .validate = 1});
}

/* ---- cross-field checks ------------------------------------------------------------------ */

static void test_validate(void) {
    expect_ok("defaults + task validate", &(job){.sets = {"task=pretrain"}, .validate = 1});
    expect_fail("task is required", &(job){.validate = 1},
                "test-source: missing required key 'task'", "one of: dvae", NULL);
    expect_fail("embed_dim % num_heads", &(job){.sets = {"task=pretrain", "model.embed_dim=100"}, .validate = 1},
                "test-source: model.embed_dim (100) must be divisible by model.num_heads (12)", NULL);
    expect_fail("img_size % patch_size", &(job){.sets = {"task=pretrain", "model.img_size=100"}, .validate = 1},
                "model.img_size (100) must be divisible by model.patch_size (16)", NULL);
    expect_fail("num_patches <= grid", &(job){.sets = {"task=pretrain", "model.img_size=32"}, .validate = 1},
                "mask.num_patches (75) must be <= the 4 patches of the 2x2 grid", NULL);
    expect_fail("min_patches <= num_patches", &(job){.sets = {"task=pretrain", "mask.min_patches=80"}, .validate = 1},
                "mask.min_patches (80) must be <= mask.num_patches (75)", NULL);
    expect_fail("min_patches <= max_patches", &(job){.sets = {"task=pretrain", "mask.max_patches=10"}, .validate = 1},
                "mask.min_patches (16) must be <= mask.max_patches (10)", NULL);
    expect_fail("min_aspect <= max_aspect", &(job){.sets = {"task=pretrain", "mask.min_aspect=0.5",
                                                            "mask.max_aspect=0.4"}, .validate = 1},
                "mask.min_aspect (0.5) must be <= mask.max_aspect (0.4)", NULL);
    expect_fail("min_aspect <= 1/min_aspect", &(job){.sets = {"task=pretrain", "mask.min_aspect=2"}, .validate = 1},
                "mask.min_aspect (2) must be <= mask.max_aspect", "1/mask.min_aspect = 0.5", NULL);
    expect_fail("dvae downsampling", &(job){.sets = {"task=dvae", "dvae.image_size=30"}, .validate = 1},
                "dvae.image_size (30) must be divisible by the dVAE downsampling factor 4", NULL);
    expect_ok("dvae downsampling with 2 groups", &(job){.sets = {"task=dvae", "dvae.image_size=30",
                                                                 "dvae.widths=8,16"}, .validate = 1});
    expect_fail("crop scale ordered", &(job){.sets = {"task=pretrain", "aug.crop_scale_min=0.9",
                                                      "aug.crop_scale_max=0.5"}, .validate = 1},
                "aug.crop_scale_min (0.9) must be <= aug.crop_scale_max (0.5)", NULL);
    expect_fail("crop ratio ordered", &(job){.sets = {"task=pretrain", "aug.crop_ratio_min=2"}, .validate = 1},
                "aug.crop_ratio_min (2) must be <= aug.crop_ratio_max (1.33333)", NULL);
    expect_fail("micro_batch <= global_batch", &(job){.sets = {"task=pretrain", "train.micro_batch=512"}, .validate = 1},
                "train.micro_batch (512) must be <= train.global_batch (256)", NULL);
    expect_fail("min_lr <= lr", &(job){.sets = {"task=pretrain", "optim.min_lr=0.01"}, .validate = 1},
                "optim.min_lr (0.01) must be <= optim.lr (0.0015)", NULL);
    expect_fail("seg_blocks <= depth", &(job){.sets = {"task=finetune", "finetune.task=segmentation",
                                                       "model.depth=6"}, .validate = 1},
                "finetune.seg_blocks[2] (8) must be <= model.depth (6)", NULL);
    expect_fail("probe_block <= depth", &(job){.sets = {"task=probe", "finetune.probe_blocks=[2, 13]"}, .validate = 1},
                "finetune.probe_blocks[1] (13) must be -1", NULL);
    expect_fail("config_require of an empty string", &(job){.sets = {"task=pretrain"}, .require = "data.path"},
                "test-source: missing required key 'data.path'", NULL);
    expect_ok("config_require of a given string", &(job){.sets = {"data.path=x.h5"}, .require = "data.path"});
}

/* ---- resolved YAML ----------------------------------------------------------------------- */

static char *write_temp(const char *text) {
    const char *dir = getenv("TMPDIR");
    char *path = xasprintf("%s/beit-test-config-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) { perror("mkstemp"); exit(1); }
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) { perror("write"); exit(1); }
    close(fd);
    return path;
}

static void roundtrip(const char *name, const beit_config *c) {
    char *text = config_to_yaml(c);
    char *path = write_temp(text);
    beit_config back;
    config_load(&back, path);
    char *text2 = config_to_yaml(&back);
    t_ok(memcmp(c, &back, offsetof(beit_config, given)) == 0, "round-trip %s: config_to_yaml -> config_load gives an "
         "identical struct (memcmp of every value)", name);
    t_ok(strcmp(text, text2) == 0, "round-trip %s: the text is reproduced byte for byte", name);
    unlink(path);
    free(path);
    free(text);
    free(text2);
}

static void test_yaml_out(void) {
    beit_config c;
    config_defaults(&c);
    roundtrip("defaults (task unset)", &c);
    char *t = config_to_yaml(&c);
    /* spot checks of the format, typed by hand */
    t_ok(strstr(t, "# task: (unset)\n") && strstr(t, "\nseed: 0\n") && strstr(t, "\noptim:\n  lr: 0.0015\n") &&
             strstr(t, "  widths: [64, 128, 256]\n") && strstr(t, "  path: \"\"\n") &&
             strstr(t, "  eps: 1e-08\n") && strstr(t, "  epochs: 1.0\n") && strstr(t, "  flip: true\n") &&
             strstr(t, "  crop_ratio_max: 1.3333333\n"),
         "config_to_yaml text: unset task as a comment, shortest floats, lists, quoted strings");
    free(t);

    load_file(&c, "valid.yaml");
    config_set(&c, "data.path=we \"quote\", back\\slash, tab\t, é, : # [x]");
    config_set(&c, "data.split=true");
    config_set(&c, "data.eval_split=null");
    config_set(&c, "data.tokens=123");
    config_set(&c, "optim.lr=0.3333333333333333");
    config_set(&c, "optim.min_lr=1e-300");
    config_set(&c, "dvae.kl_weight=-0.0");
    config_set(&c, "model.mlp_ratio=2.675");
    config_set(&c, "finetune.seg_blocks=[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]");
    t_ok(signbit(c.dvae.kl_weight), "-0.0 keeps its sign");
    roundtrip("valid.yaml with awkward strings and floats", &c);
    /* a control character in a string: written as an escape */
    config_set(&c, "data.path=line1\nline2\x01");
    roundtrip("string with a newline and a control byte", &c);
    config_set(&c, "task=eval");
    t = config_to_yaml(&c);
    t_ok(strstr(t, "\ntask: eval\n") != NULL && !strstr(t, "(unset)"), "a set task is written as a key");
    free(t);

    /* help: every key with its doc; spot checks */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_help(f);
    fclose(f);
    t_ok(buf && strstr(buf, "optim.lr") && strstr(buf, "0 <= x <= 10") &&
             strstr(buf, "one of: dvae, tokenize, pretrain, finetune, probe, eval") &&
             strstr(buf, "dist.overlap") && strstr(buf, "(required)") && strstr(buf, "[64, 128, 256]"),
         "config_print_help lists keys, ranges, choices, defaults");
    free(buf);
}

/* config_key_given: keys the text or a --set gives, not those left at their default */
static void test_given(void) {
    beit_config c;
    load_file(&c, "valid.yaml");
    t_ok(config_key_given(&c, "data.subset") && config_key_given(&c, "model.arch") && config_key_given(&c, "seed"),
         "config_key_given: keys of nested sections and the top level in valid.yaml");
    t_ok(!config_key_given(&c, "data.eval_split") && !config_key_given(&c, "optim.eps"),
         "config_key_given: keys left at their default are not given");
    config_set(&c, "optim.eps=1e-8");
    t_ok(config_key_given(&c, "optim.eps"), "config_key_given: a --set to the default value counts as given");
    beit_config d;
    config_defaults(&d);
    int any = 0;
    for (int i = 0; i < BEIT_CONFIG_MAX_KEYS; i++) any |= d.given[i];
    t_ok(!any, "config_key_given: the defaults give no key");
}

int main(void) {
    test_defaults();
    test_given();
    test_valid();
    test_file_errors();
    test_set();
    test_validate();
    test_yaml_out();
    return t_done();
}
