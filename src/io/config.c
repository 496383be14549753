/* config.c: job file (YAML, read with libyaml's event API) -> beit_config.
 *
 * One schema table below declares every key: dotted name, type, struct field, default (as
 * the text a job file would hold, parsed by the same code as the file), range or choices,
 * and a one-line doc. Everything else (loading, --set, defaults, help, the resolved YAML)
 * walks that table. The rules a job file follows are in config.h.
 *
 * The event API (not the document API) is used because it shows what the document API hides:
 * duplicate keys, aliases and anchors, and the mark of every key and value.
 */
#include "beit/config.h"

#include "beit/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- schema ------------------------------------------------------------------------------ */

typedef enum { T_INT, T_FLOAT, T_BOOL, T_STR, T_ENUM, T_INTLIST } key_type;
static const char *const TYPE_NAME[] = {"int", "float", "bool", "string", "enum", "int list"};

typedef struct {
    int kind; /* 0 none, 1 inclusive, 2 exclusive */
    double v;
} bound;

typedef struct {
    const char *name;            /* dotted path: "optim.lr" (at most one dot) */
    key_type type;
    size_t off, size;            /* field in beit_config */
    const char *def;             /* default as job-file text; NULL = required (string/enum) */
    bound lo, hi;                /* int, float, and each int-list entry */
    const char *const *choices;  /* enum words, NULL-terminated, in the C enum's order */
    const char *doc;
} key_spec;

#define F(field) offsetof(beit_config, field), sizeof(((beit_config *)0)->field)
#define NOB {0, 0.0}
#define INC(x) {1, (x)}
#define EXC(x) {2, (x)}

static const char *const C_TASK[] = {"dvae", "tokenize", "pretrain", "finetune", "probe", "eval", NULL};
static const char *const C_SOURCE[] = {"store", "synthetic", NULL};
static const char *const C_ARCH[] = {"beit", "vit", NULL};
static const char *const C_MASK[] = {"block", "random", NULL};
static const char *const C_TARGET[] = {"tokens", "pixels", "tokens_online", NULL};
static const char *const C_RECON[] = {"mse", "logit_laplace", NULL};
static const char *const C_FTTASK[] = {"classification", "segmentation", NULL};
static const char *const C_POOL[] = {"mean", "cls", NULL};

static const key_spec KEYS[] = {
    {"task", T_ENUM, F(task), NULL, NOB, NOB, C_TASK,
     "what the job does: train the dVAE tokenizer, tokenize a dataset, pre-train, fine-tune, "
     "linear-probe or evaluate"},
    {"seed", T_INT, F(seed), "0", INC(0), NOB, NULL,
     "base seed of every random stream (init, shuffling, masking, augmentation, synthetic data)"},

    {"data.source", T_ENUM, F(data.source), "store", NOB, NOB, C_SOURCE,
     "where samples come from: the HDF5 store at data.path, or generated images "
     "(`data: synthetic` is short for data.source: synthetic)"},
    {"data.path", T_STR, F(data.path), "", NOB, NOB, NULL,
     "HDF5 dataset store (written by `beit data`); needed with data.source store"},
    {"data.split", T_STR, F(data.split), "train", NOB, NOB, NULL, "split of the store to train on"},
    {"data.eval_split", T_STR, F(data.eval_split), "test", NOB, NOB, NULL,
     "split of the store to evaluate on"},
    {"data.tokens", T_STR, F(data.tokens), "", NOB, NOB, NULL,
     "token store of visual tokens (written by `beit tokenize`) for pre-training on tokens"},
    {"data.subset", T_INT, F(data.subset), "0", INC(0), NOB, NULL,
     "use only the first N samples of a split (0 = all); for quick runs and tests"},
    {"data.image_size", T_INT, F(data.image_size), "0", INC(0), NOB, NULL,
     "resize images to this side length in pixels (0 = as stored)"},
    {"data.channels", T_INT, F(data.channels), "0", INC(0), NOB, NULL,
     "convert images to this many channels (0 = as stored)"},
    {"data.num_classes", T_INT, F(data.num_classes), "0", INC(0), NOB, NULL,
     "number of classes (0 = read from the store)"},
    {"data.synthetic_size", T_INT, F(data.synthetic_size), "1024", INC(1), NOB, NULL,
     "samples per epoch with data.source synthetic"},

    {"aug.crop_scale_min", T_FLOAT, F(aug.crop_scale_min), "0.08", EXC(0), INC(1), NULL,
     "random resized crop: smallest crop area, as a fraction of the image area"},
    {"aug.crop_scale_max", T_FLOAT, F(aug.crop_scale_max), "1.0", EXC(0), INC(1), NULL,
     "random resized crop: largest crop area, as a fraction of the image area"},
    {"aug.crop_ratio_min", T_FLOAT, F(aug.crop_ratio_min), "0.75", EXC(0), NOB, NULL,
     "random resized crop: smallest aspect ratio (width / height)"},
    {"aug.crop_ratio_max", T_FLOAT, F(aug.crop_ratio_max), "1.3333333", EXC(0), NOB, NULL,
     "random resized crop: largest aspect ratio (width / height)"},
    {"aug.flip", T_BOOL, F(aug.flip), "true", NOB, NOB, NULL, "random horizontal flip"},
    {"aug.enable", T_BOOL, F(aug.enable), "true", NOB, NOB, NULL,
     "augment training images at all (false = the whole image, resized)"},

    {"model.arch", T_ENUM, F(model.arch), "beit", NOB, NOB, C_ARCH,
     "encoder variant: beit (the BEiT encoder) or vit (a plain ViT baseline)"},
    {"model.img_size", T_INT, F(model.img_size), "224", INC(1), NOB, NULL,
     "encoder input side length in pixels"},
    {"model.patch_size", T_INT, F(model.patch_size), "16", INC(1), NOB, NULL,
     "patch side length in pixels (must divide model.img_size)"},
    {"model.in_chans", T_INT, F(model.in_chans), "3", INC(1), NOB, NULL, "encoder input channels"},
    {"model.embed_dim", T_INT, F(model.embed_dim), "768", INC(1), NOB, NULL, "token width"},
    {"model.depth", T_INT, F(model.depth), "12", INC(1), NOB, NULL, "transformer blocks"},
    {"model.num_heads", T_INT, F(model.num_heads), "12", INC(1), NOB, NULL,
     "attention heads per block (must divide model.embed_dim)"},
    {"model.mlp_ratio", T_FLOAT, F(model.mlp_ratio), "4.0", EXC(0), NOB, NULL,
     "MLP hidden width as a multiple of model.embed_dim"},
    {"model.layer_scale_init", T_FLOAT, F(model.layer_scale_init), "0.1", INC(0), NOB, NULL,
     "initial LayerScale value (0 disables LayerScale)"},
    {"model.drop_path", T_FLOAT, F(model.drop_path), "0.1", INC(0), EXC(1), NULL,
     "stochastic depth rate of the last block (rising linearly from 0 at the first)"},
    {"model.vocab_size", T_INT, F(model.vocab_size), "8192", INC(2), NOB, NULL,
     "visual-token vocabulary of the pre-training head (the tokenizer's dvae.vocab_size)"},
    {"model.init_std", T_FLOAT, F(model.init_std), "0.02", EXC(0), NOB, NULL,
     "standard deviation of the truncated-normal weight initialisation"},

    {"mask.type", T_ENUM, F(mask.type), "block", NOB, NOB, C_MASK,
     "masking: block (BEiT's blockwise masking) or random patches"},
    {"mask.num_patches", T_INT, F(mask.num_patches), "75", INC(1), NOB, NULL,
     "patches masked per image (75 of the 196 of a 224/16 grid = ~40%)"},
    {"mask.min_patches", T_INT, F(mask.min_patches), "16", INC(1), NOB, NULL,
     "smallest block of blockwise masking, in patches"},
    {"mask.max_patches", T_INT, F(mask.max_patches), "0", INC(0), NOB, NULL,
     "largest block of blockwise masking, in patches (0 = mask.num_patches)"},
    {"mask.min_aspect", T_FLOAT, F(mask.min_aspect), "0.3", EXC(0), NOB, NULL,
     "smallest block aspect ratio of blockwise masking"},
    {"mask.max_aspect", T_FLOAT, F(mask.max_aspect), "0", INC(0), NOB, NULL,
     "largest block aspect ratio of blockwise masking (0 = 1 / mask.min_aspect)"},

    {"pretrain.target", T_ENUM, F(pretrain.target), "tokens", NOB, NOB, C_TARGET,
     "what masked patches predict: visual tokens from data.tokens, normalised pixels, or "
     "tokens computed during training by the dVAE at tokenize.checkpoint"},

    {"dvae.image_size", T_INT, F(dvae.image_size), "112", INC(1), NOB, NULL,
     "dVAE input side length in pixels (tokens per side = this / 2^(len(dvae.widths) - 1))"},
    {"dvae.in_chans", T_INT, F(dvae.in_chans), "3", INC(1), NOB, NULL, "dVAE input channels"},
    {"dvae.vocab_size", T_INT, F(dvae.vocab_size), "8192", INC(2), NOB, NULL,
     "codebook size: distinct visual tokens"},
    {"dvae.widths", T_INTLIST, F(dvae.widths), "[64, 128, 256]", INC(1), NOB, NULL,
     "channels of each encoder group; each group after the first halves the resolution "
     "(downsampling 2^(len - 1)); the decoder mirrors them"},
    {"dvae.blocks_per_group", T_INT, F(dvae.blocks_per_group), "1", INC(1), NOB, NULL,
     "residual blocks per group"},
    {"dvae.recon", T_ENUM, F(dvae.recon), "mse", NOB, NOB, C_RECON,
     "reconstruction loss: mse on pixels, or DALL-E's logit-Laplace"},
    {"dvae.kl_weight", T_FLOAT, F(dvae.kl_weight), "0.0", INC(0), NOB, NULL,
     "weight of the KL divergence to the uniform prior (after warm-up)"},
    {"dvae.kl_warmup_steps", T_INT, F(dvae.kl_warmup_steps), "0", INC(0), NOB, NULL,
     "steps over which the KL weight rises from 0 (0 = full weight from the start)"},
    {"dvae.temp_start", T_FLOAT, F(dvae.temp_start), "1.0", EXC(0), NOB, NULL,
     "Gumbel-softmax temperature at the start"},
    {"dvae.temp_end", T_FLOAT, F(dvae.temp_end), "0.0625", EXC(0), NOB, NULL,
     "Gumbel-softmax temperature at the end of annealing"},
    {"dvae.temp_anneal_steps", T_INT, F(dvae.temp_anneal_steps), "0", INC(0), NOB, NULL,
     "steps over which the temperature is annealed (0 = the whole run)"},

    {"tokenize.views", T_INT, F(tokenize.views), "1", INC(1), NOB, NULL,
     "views tokenized per image"},
    {"tokenize.batch", T_INT, F(tokenize.batch), "256", INC(1), NOB, NULL,
     "images per tokenizer forward pass"},
    {"tokenize.checkpoint", T_STR, F(tokenize.checkpoint), "", NOB, NOB, NULL,
     "dVAE checkpoint that tokenizes (also for pretrain.target tokens_online)"},

    {"finetune.task", T_ENUM, F(finetune.task), "classification", NOB, NOB, C_FTTASK,
     "fine-tuning head: image classification or semantic segmentation"},
    {"finetune.pool", T_ENUM, F(finetune.pool), "mean", NOB, NOB, C_POOL,
     "classification features: mean of the patch tokens, or the CLS token"},
    {"finetune.label_smoothing", T_FLOAT, F(finetune.label_smoothing), "0.1", INC(0), EXC(1), NULL,
     "label smoothing of the classification loss"},
    {"finetune.layer_decay", T_FLOAT, F(finetune.layer_decay), "0.65", EXC(0), INC(1), NULL,
     "layer-wise learning-rate decay (1 = none)"},
    {"finetune.head_init_scale", T_FLOAT, F(finetune.head_init_scale), "0.001", EXC(0), NOB, NULL,
     "factor on the head's initial weights"},
    {"finetune.seg_blocks", T_INTLIST, F(finetune.seg_blocks), "[4, 6, 8, 12]", INC(1), NOB, NULL,
     "blocks (1-based) whose outputs feed the segmentation head"},
    {"finetune.decoder_dim", T_INT, F(finetune.decoder_dim), "64", INC(1), NOB, NULL,
     "channels of the segmentation decoder"},
    {"finetune.probe_blocks", T_INTLIST, F(finetune.probe_blocks), "[-1]", INC(-1), NOB, NULL,
     "blocks (1-based) whose average-pooled outputs the linear probe reads, one probe each "
     "(-1 = the last block)"},

    {"train.epochs", T_FLOAT, F(train.epochs), "1", EXC(0), NOB, NULL,
     "length of training in epochs (may be fractional)"},
    {"train.global_batch", T_INT, F(train.global_batch), "256", INC(1), NOB, NULL,
     "samples per optimizer step, summed over all ranks"},
    {"train.micro_batch", T_INT, F(train.micro_batch), "0", INC(0), NOB, NULL,
     "samples per rank per forward/backward; smaller than global_batch / ranks accumulates "
     "gradients (0 = global_batch / ranks, no accumulation)"},
    {"train.log_every", T_INT, F(train.log_every), "10", INC(1), NOB, NULL, "steps between log lines"},
    {"train.ckpt_every", T_INT, F(train.ckpt_every), "0", INC(0), NOB, NULL,
     "steps between checkpoints (0 = only at the end)"},
    {"train.keep_last", T_INT, F(train.keep_last), "2", INC(1), NOB, NULL,
     "checkpoints kept (older ones are deleted)"},
    {"train.eval_every", T_INT, F(train.eval_every), "0", INC(0), NOB, NULL,
     "steps between evaluations on data.eval_split (0 = none during training)"},

    {"optim.lr", T_FLOAT, F(optim.lr), "1.5e-3", INC(0), INC(10), NULL,
     "peak learning rate (after warm-up; cosine decay to optim.min_lr)"},
    {"optim.min_lr", T_FLOAT, F(optim.min_lr), "1e-5", INC(0), NOB, NULL,
     "learning rate at the end of the cosine schedule"},
    {"optim.warmup_epochs", T_FLOAT, F(optim.warmup_epochs), "10", INC(0), NOB, NULL,
     "linear warm-up from 0, in epochs"},
    {"optim.warmup_steps", T_INT, F(optim.warmup_steps), "0", INC(0), NOB, NULL,
     "linear warm-up in steps; if > 0 it wins over optim.warmup_epochs"},
    {"optim.weight_decay", T_FLOAT, F(optim.weight_decay), "0.05", INC(0), NOB, NULL,
     "AdamW decoupled weight decay"},
    {"optim.beta1", T_FLOAT, F(optim.beta1), "0.9", INC(0), EXC(1), NULL, "AdamW beta1"},
    {"optim.beta2", T_FLOAT, F(optim.beta2), "0.999", INC(0), EXC(1), NULL, "AdamW beta2"},
    {"optim.eps", T_FLOAT, F(optim.eps), "1e-8", EXC(0), NOB, NULL, "AdamW epsilon"},
    {"optim.clip_grad", T_FLOAT, F(optim.clip_grad), "3.0", INC(0), NOB, NULL,
     "clip the global gradient norm to this (0 = off)"},

    {"dist.bucket_mb", T_FLOAT, F(dist.bucket_mb), "25", EXC(0), NOB, NULL,
     "gradient all-reduce bucket size in MiB"},
    {"dist.zero", T_INT, F(dist.zero), "0", INC(0), INC(1), NULL,
     "1 = shard the optimizer state over the ranks (ZeRO stage 1); 0 = replicate it"},
    {"dist.overlap", T_BOOL, F(dist.overlap), "true", NOB, NOB, NULL,
     "overlap the gradient all-reduce with the backward pass"},
};
#define NKEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

/* A section given as a scalar sets one of its keys: `data: synthetic`. */
static const struct {
    const char *section, *key;
} SCALAR_KEYS[] = {
    {"data", "data.source"},
};
#define NSCALAR_KEYS ((int)(sizeof SCALAR_KEYS / sizeof SCALAR_KEYS[0]))

#define ERRN 2048 /* messages about one value */

/* ---- schema lookups -------------------------------------------------------------------------- */

static const key_spec *find_key(const char *name) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(KEYS[i].name, name) == 0) return &KEYS[i];
    return NULL;
}

/* "optim" is a section iff some key starts with "optim." */
static int is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < NKEYS; i++)
        if (strncmp(KEYS[i].name, name, n) == 0 && KEYS[i].name[n] == '.') return 1;
    return 0;
}

static const char *section_scalar_key(const char *section) {
    for (int i = 0; i < NSCALAR_KEYS; i++)
        if (strcmp(SCALAR_KEYS[i].section, section) == 0) return SCALAR_KEYS[i].key;
    return NULL;
}

/* length of the section part of a key name ("optim.lr" -> 5), 0 for a top-level key */
static size_t section_len(const char *name) {
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}

static void *field(beit_config *c, const key_spec *k) { return (char *)c + k->off; }
static const void *cfield(const beit_config *c, const key_spec *k) {
    return (const char *)c + k->off;
}

/* ---- growable string ----------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) BEIT_PRINTF(2, 3);
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)m + 1 > b->cap) {
        b->cap = 2 * (b->n + (size_t)m + 1) + 256;
        b->s = xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)m + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)m;
}

static const char *sb_str(sbuf *b) {
    if (!b->s) sb_add(b, "%s", "");
    return b->s;
}

/* ---- formatting values --------------------------------------------------------------------- */

/* The fewest significant digits that read back to the same double, with ".0" added to an
 * integral value so it reads as a float. Deterministic (C locale). */
static void fmt_double(char *buf, size_t n, double v) {
    if (v == floor(v) && fabs(v) < 1e15) { /* integral: "10.0", not "1e+01" */
        snprintf(buf, n, "%.1f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t len = strlen(buf);
        if (len + 3 <= n) memcpy(buf + len, ".0", 3);
    }
}

/* "0 <= optim.lr <= 10", "optim.lr >= 0", "0 < x < 1" */
static void fmt_range(char *buf, size_t n, const key_spec *k, const char *name) {
    char lo[40] = "", hi[40] = "";
    if (k->lo.kind) snprintf(lo, sizeof lo, "%g", k->lo.v);
    if (k->hi.kind) snprintf(hi, sizeof hi, "%g", k->hi.v);
    const char *lop = k->lo.kind == 2 ? "<" : "<=", *hop = k->hi.kind == 2 ? "<" : "<=";
    if (k->lo.kind && k->hi.kind) snprintf(buf, n, "%s %s %s %s %s", lo, lop, name, hop, hi);
    else if (k->lo.kind) snprintf(buf, n, "%s %s %s", name, k->lo.kind == 2 ? ">" : ">=", lo);
    else if (k->hi.kind) snprintf(buf, n, "%s %s %s", name, hop, hi);
    else buf[0] = 0;
}

static void fmt_choices(sbuf *b, const char *const *choices) {
    for (int i = 0; choices[i]; i++) sb_add(b, "%s%s", i ? ", " : "", choices[i]);
}

/* YAML double-quoted string: always quoted, so "", "true", "123" stay strings. Bytes >= 0x80
 * pass through (UTF-8); control characters are escaped. */
static void fmt_yaml_string(sbuf *b, const char *s) {
    sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') sb_add(b, "\\\"");
        else if (*p == '\\') sb_add(b, "\\\\");
        else if (*p == '\n') sb_add(b, "\\n");
        else if (*p == '\t') sb_add(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) sb_add(b, "\\x%02x", *p);
        else sb_add(b, "%c", *p);
    }
    sb_add(b, "\"");
}

static int choice_count(const char *const *choices) {
    int n = 0;
    while (choices[n]) n++;
    return n;
}

/* The value of key k in c as YAML text; returns 0 if an enum is unset (-1). */
static int fmt_value(sbuf *b, const beit_config *c, const key_spec *k) {
    const void *p = cfield(c, k);
    char num[64];
    switch (k->type) {
    case T_INT: sb_add(b, "%d", *(const int *)p); break;
    case T_FLOAT:
        fmt_double(num, sizeof num, *(const double *)p);
        sb_add(b, "%s", num);
        break;
    case T_BOOL: sb_add(b, "%s", *(const bool *)p ? "true" : "false"); break;
    case T_STR: fmt_yaml_string(b, (const char *)p); break;
    case T_ENUM: {
        int v = *(const int *)p;
        if (v == -1) return 0;
        if (v < 0 || v >= choice_count(k->choices))
            beit_fatal(BEIT_EXIT_FAILURE, "config: %s holds %d, not an index of its choices", k->name, v);
        sb_add(b, "%s", k->choices[v]);
        break;
    }
    case T_INTLIST: {
        const beit_int_list *l = p;
        sb_add(b, "[");
        for (int i = 0; i < l->n; i++) sb_add(b, "%s%d", i ? ", " : "", l->v[i]);
        sb_add(b, "]");
        break;
    }
    }
    return 1;
}

/* ---- parsing values ------------------------------------------------------------------------ */

/* YAML's plain spellings of null (an empty value too). */
static int is_yaml_null(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* decimal integer with optional sign; 0 ok, -1 not an integer, -2 beyond int64 */
static int parse_i64(const char *s, long long *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

/* decimal number (integer, fraction, exponent); 0 ok, -1 not a number, -2 not finite */
static int parse_f64(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s) || strpbrk(s, "xX")) return -1; /* no hex floats */
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end) return -1;
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

static int in_range(const key_spec *k, double v) {
    if (k->lo.kind == 1 && !(v >= k->lo.v)) return 0;
    if (k->lo.kind == 2 && !(v > k->lo.v)) return 0;
    if (k->hi.kind == 1 && !(v <= k->hi.v)) return 0;
    if (k->hi.kind == 2 && !(v < k->hi.v)) return 0;
    return 1;
}

/* An integer for key k (or entry `name` of an int list): syntax, int range, schema range. */
static int parse_int_value(const key_spec *k, const char *name, const char *text, int plain,
                           int *out, char *err) {
    long long v = 0;
    if (!plain) {
        snprintf(err, ERRN, "%s: expected an integer, got the quoted string \"%.200s\" (quotes make "
                 "a YAML string)", name, text);
        return -1;
    }
    if (is_yaml_null(text)) {
        snprintf(err, ERRN, "%s: expected an integer, got an empty value", name);
        return -1;
    }
    int rc = parse_i64(text, &v);
    if (rc == 0 && (v < INT_MIN || v > INT_MAX)) rc = -2;
    if (rc == -1) {
        snprintf(err, ERRN, "%s: expected an integer, got '%.200s'", name, text);
        return -1;
    }
    if (rc == -2) {
        snprintf(err, ERRN, "%s: expected an integer between %d and %d, got %.200s", name, INT_MIN,
                 INT_MAX, text);
        return -1;
    }
    if (!in_range(k, (double)v)) {
        char r[256];
        fmt_range(r, sizeof r, k, name);
        snprintf(err, ERRN, "expected %s, got %.200s", r, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Write a list (already checked) into key k. */
static void store_list(beit_config *c, const key_spec *k, const int *v, int n) {
    beit_int_list *l = field(c, k);
    memset(l, 0, sizeof *l);
    l->n = n;
    memcpy(l->v, v, (size_t)n * sizeof *v);
}

static int check_list_count(const key_spec *k, int n, char *err) {
    if (n < 1) {
        snprintf(err, ERRN, "%s: expected a list of 1 to %d integers, got an empty list", k->name,
                 BEIT_CONFIG_LIST_MAX);
        return -1;
    }
    if (n > BEIT_CONFIG_LIST_MAX) {
        snprintf(err, ERRN, "%s: expected at most %d entries, got more", k->name, BEIT_CONFIG_LIST_MAX);
        return -1;
    }
    return 0;
}

/* An int list from command-line text: "[4, 6, 8]" or "4,6,8". */
static int parse_list_text(beit_config *c, const key_spec *k, const char *text, char *err) {
    char *s = xstrdup(text), *p = s;
    int v[BEIT_CONFIG_LIST_MAX + 1], n = 0, rc = 0;
    while (isspace((unsigned char)*p)) p++;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) p[--len] = 0;
    if (*p == '[') {
        if (len < 2 || p[len - 1] != ']') {
            snprintf(err, ERRN, "%s: expected a list of integers like [4, 6, 8], got '%.200s'",
                     k->name, text);
            free(s);
            return -1;
        }
        p[len - 1] = 0;
        p++;
    }
    char *q = p;
    while (isspace((unsigned char)*q)) q++;
    if (*q) {
        for (char *tok = p;; n++) {
            char *comma = strchr(tok, ',');
            if (comma) *comma = 0;
            while (isspace((unsigned char)*tok)) tok++;
            size_t tl = strlen(tok);
            while (tl && isspace((unsigned char)tok[tl - 1])) tok[--tl] = 0;
            if (n == BEIT_CONFIG_LIST_MAX) { n++; break; }
            char name[96];
            snprintf(name, sizeof name, "%s[%d]", k->name, n);
            if ((rc = parse_int_value(k, name, tok, 1, &v[n], err)) != 0) break;
            if (!comma) { n++; break; }
            tok = comma + 1;
        }
    }
    free(s);
    if (rc) return rc;
    if (check_list_count(k, n, err)) return -1;
    store_list(c, k, v, n);
    return 0;
}

/* One scalar into key k. plain: an unquoted YAML scalar (always true for --set); literal:
 * the text comes from the command line or a default, so "" is an empty string, not null. */
static int set_scalar(beit_config *c, const key_spec *k, const char *text, size_t len, int plain,
                      int literal, char *err) {
    void *p = field(c, k);
    const char *name = k->name;
    if (strlen(text) != len) {
        snprintf(err, ERRN, "%s: the value contains a NUL character", name);
        return -1;
    }
    if (plain && is_yaml_null(text) && !(literal && (k->type == T_STR || k->type == T_INTLIST))) {
        sbuf b = {0};
        if (k->type == T_ENUM) fmt_choices(&b, k->choices);
        snprintf(err, ERRN, "%s: expected %s%s, got an empty value%s", name,
                 k->type == T_STR ? "a string" : k->type == T_BOOL ? "true or false"
                 : k->type == T_INT ? "an integer" : k->type == T_FLOAT ? "a number"
                 : k->type == T_ENUM ? "one of: " : "a list of integers", sb_str(&b),
                 k->type == T_STR ? " (write \"\" for an empty string)"
                 : " (leave the key out for its default)");
        free(b.s);
        return -1;
    }
    switch (k->type) {
    case T_INT: return parse_int_value(k, name, text, plain, p, err);
    case T_FLOAT: {
        double v = 0;
        if (!plain) {
            snprintf(err, ERRN, "%s: expected a number, got the quoted string \"%.200s\" (quotes "
                     "make a YAML string)", name, text);
            return -1;
        }
        int rc = parse_f64(text, &v);
        if (rc == -1) {
            snprintf(err, ERRN, "%s: expected a number, got '%.200s'", name, text);
            return -1;
        }
        if (rc == -2) {
            snprintf(err, ERRN, "%s: expected a finite number, got '%.200s'", name, text);
            return -1;
        }
        if (!in_range(k, v)) {
            char r[256];
            fmt_range(r, sizeof r, k, name);
            snprintf(err, ERRN, "expected %s, got %.200s", r, text);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case T_BOOL:
        if (plain && !strcmp(text, "true")) *(bool *)p = true;
        else if (plain && !strcmp(text, "false")) *(bool *)p = false;
        else {
            snprintf(err, ERRN, "%s: expected true or false, got %s%.200s%s", name,
                     plain ? "'" : "the quoted string \"", text, plain ? "'" : "\"");
            return -1;
        }
        return 0;
    case T_STR:
        if (len + 1 > k->size) {
            snprintf(err, ERRN, "%s: expected a string of at most %zu bytes, got %zu bytes", name,
                     k->size - 1, len);
            return -1;
        }
        memset(p, 0, k->size); /* no stale bytes after the NUL: configs compare with memcmp */
        memcpy(p, text, len + 1);
        return 0;
    case T_ENUM:
        for (int i = 0; k->choices[i]; i++)
            if (!strcmp(text, k->choices[i])) {
                *(int *)p = i;
                return 0;
            }
        {
            sbuf b = {0};
            fmt_choices(&b, k->choices);
            snprintf(err, ERRN, "%s: unknown value '%.200s' (expected one of: %s)", name, text, sb_str(&b));
            free(b.s);
        }
        return -1;
    case T_INTLIST:
        if (literal) return parse_list_text(c, k, text, err);
        snprintf(err, ERRN, "%s: expected a list of integers like [4, 6, 8], got '%.200s'", name, text);
        return -1;
    }
    return -1;
}

/* ---- reporting ----------------------------------------------------------------------------- */

static BEIT_NORETURN void fail_where(const char *where, const char *fmt, ...) BEIT_PRINTF(2, 3);
static BEIT_NORETURN void fail_where(const char *where, const char *fmt, ...) {
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    beit_fatal_user(BEIT_EXIT_USAGE, "%s: %s", where, msg);
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 128 || m > 128) return 1 << 20;
    int d[129][129];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* Every name a user could mean: keys and sections, each once, in schema order. Section names
 * are copied into secs. */
static int all_names(const char *names[], char secs[][32]) {
    int n = 0;
    for (int i = 0; i < NKEYS; i++) {
        size_t sl = section_len(KEYS[i].name);
        if (sl) {
            int dup = 0;
            for (int j = 0; j < i; j++)
                if (section_len(KEYS[j].name) == sl && !strncmp(KEYS[j].name, KEYS[i].name, sl)) dup = 1;
            if (!dup && sl < 32) {
                memcpy(secs[i], KEYS[i].name, sl);
                secs[i][sl] = 0;
                names[n++] = secs[i];
            }
        }
        names[n++] = KEYS[i].name;
    }
    return n;
}

static BEIT_NORETURN void unknown_key(const char *where, const char *name) {
    const char *names[2 * NKEYS], *sugg[3];
    char secs[NKEYS][32];
    int nn = all_names(names, secs), ns = 0, best = 1 << 20;
    size_t len = strlen(name);
    for (int i = 0; i < nn; i++) {
        int d = edit_distance(name, names[i]);
        if (d < best) { best = d; ns = 0; }
        if (d == best && ns < 3) sugg[ns++] = names[i];
    }
    if (!(best <= 2 || (size_t)best * 5 <= len)) ns = 0;
    /* the right key name in the wrong section: "train.lr", or "epochs" at the top level */
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    for (int i = 0; i < NKEYS && !ns; i++) {
        const char *kl = strrchr(KEYS[i].name, '.');
        if (kl && !strcmp(kl + 1, last) && *last) {
            for (int j = i; j < NKEYS && ns < 3; j++) {
                const char *jl = strrchr(KEYS[j].name, '.');
                if (jl && !strcmp(jl + 1, last)) sugg[ns++] = KEYS[j].name;
            }
        }
    }
    /* a longer or shorter spelling of a section: "optimizer" -> "optim" */
    for (int i = 0; i < nn && !ns; i++) {
        size_t a = strlen(names[i]), lu = strcspn(name, ".");
        if (strchr(names[i], '.') || a < 3 || lu < 3 || a == lu) continue; /* a == lu: known section */
        if (!strncmp(name, names[i], a < lu ? a : lu) && is_section(names[i])) sugg[ns++] = names[i];
    }
    if (ns) {
        sbuf b = {0};
        for (int i = 0; i < ns; i++)
            sb_add(&b, "%s'%s'", i == 0 ? "" : i == ns - 1 ? " or " : ", ", sugg[i]);
        fail_where(where, "unknown key '%s' (did you mean %s?)", name, sb_str(&b));
    }
    /* in a known section: list its keys */
    size_t sl = section_len(name);
    if (sl && sl < 64) {
        char sec[64];
        memcpy(sec, name, sl);
        sec[sl] = 0;
        if (is_section(sec)) {
            sbuf b = {0};
            for (int i = 0; i < NKEYS; i++)
                if (section_len(KEYS[i].name) == sl && !strncmp(KEYS[i].name, sec, sl))
                    sb_add(&b, "%s%s", b.n ? ", " : "", KEYS[i].name + sl + 1);
            fail_where(where, "unknown key '%s' (the keys of '%s' are: %s)", name, sec, sb_str(&b));
        }
    }
    fail_where(where, "unknown key '%s' (`beit config --help` lists every key)", name);
}

/* "the keys of optim: lr, min_lr, ..." for messages about a section */
static void section_keys(sbuf *b, const char *sec) {
    size_t sl = strlen(sec);
    for (int i = 0; i < NKEYS; i++)
        if (section_len(KEYS[i].name) == sl && !strncmp(KEYS[i].name, sec, sl))
            sb_add(b, "%s%s", b->n ? ", " : "", KEYS[i].name + sl + 1);
}

/* ---- schema self-check and defaults ------------------------------------------------------------ */

static void schema_check(void) {
    if (NKEYS > BEIT_CONFIG_MAX_KEYS)
        beit_fatal(BEIT_EXIT_FAILURE, "config schema: %d keys, BEIT_CONFIG_MAX_KEYS is %d", NKEYS, BEIT_CONFIG_MAX_KEYS);
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        size_t want = k->type == T_INT || k->type == T_ENUM ? sizeof(int)
                    : k->type == T_FLOAT ? sizeof(double)
                    : k->type == T_BOOL ? sizeof(bool)
                    : k->type == T_INTLIST ? sizeof(beit_int_list) : k->size;
        if (k->size != want || (k->type == T_STR && k->size < 2))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s is a %s but its field has %zu bytes",
                       k->name, TYPE_NAME[k->type], k->size);
        if ((k->type == T_ENUM) != (k->choices != NULL))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: choices are for enums only", k->name);
        if (!k->def && k->type != T_ENUM && k->type != T_STR)
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: only string and enum keys may be required", k->name);
        const char *dot = strchr(k->name, '.');
        if (dot && strchr(dot + 1, '.'))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: at most one level of sections", k->name);
        if (is_section(k->name))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s is both a key and a section", k->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(KEYS[j].name, k->name))
                beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s declared twice", k->name);
    }
    for (int i = 0; i < NSCALAR_KEYS; i++) {
        const key_spec *k = find_key(SCALAR_KEYS[i].key);
        size_t sl = strlen(SCALAR_KEYS[i].section);
        if (!k || k->type == T_INTLIST || strncmp(k->name, SCALAR_KEYS[i].section, sl) || k->name[sl] != '.')
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: bad scalar key %s for section %s",
                       SCALAR_KEYS[i].key, SCALAR_KEYS[i].section);
    }
}

void config_defaults(beit_config *c) {
    schema_check();
    memset(c, 0, sizeof *c);
    char err[ERRN];
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        if (!k->def) {
            if (k->type == T_ENUM) *(int *)field(c, k) = -1; /* strings stay "" */
            continue;
        }
        if (set_scalar(c, k, k->def, strlen(k->def), 1, 1, err))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: the default of %s is invalid: %s", k->name, err);
    }
}

/* ---- loading a file ------------------------------------------------------------------------ */

typedef struct {
    char *path;
    yaml_mark_t mark;
} seen_key;

typedef struct {
    yaml_parser_t parser;
    const char *file;
    beit_config *c;
    seen_key *seen;
    int nseen, cap;
    int stored; /* a config stored by beit itself (checkpoint, token store): retired keys are skipped */
} loader;

/* Keys an earlier version wrote into the configs it stored. A job file naming one is told the
 * replacement; a stored config (config_load_string) skips it, so old checkpoints still load. */
static const struct {
    const char *name, *replacement;
} RETIRED[] = {
    {"finetune.probe_block", "finetune.probe_blocks (a list of 1-based blocks, e.g. [-1])"},
};

static BEIT_NORETURN void fail_mark(const loader *L, yaml_mark_t m, const char *fmt, ...) BEIT_PRINTF(3, 4);
static BEIT_NORETURN void fail_mark(const loader *L, yaml_mark_t m, const char *fmt, ...) {
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    beit_fatal_user(BEIT_EXIT_USAGE, "%s:%zu:%zu: %s", L->file, m.line + 1, m.column + 1, msg);
}

static BEIT_NORETURN void yaml_error(const loader *L) {
    const yaml_parser_t *p = &L->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_MEMORY_ERROR) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: out of memory");
    if (p->error == YAML_READER_ERROR)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: invalid YAML: %s (at byte %zu; job files are UTF-8 text)",
                        L->file, problem, p->problem_offset);
    if (p->context)
        fail_mark(L, p->problem_mark, "invalid YAML: %s (%s at line %zu, column %zu)", problem,
                  p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    fail_mark(L, p->problem_mark, "invalid YAML: %s", problem);
}

static void next_event(loader *L, yaml_event_t *ev) {
    if (!yaml_parser_parse(&L->parser, ev)) yaml_error(L);
}

static const char *event_what(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "something else";
    }
}

/* Anchors, aliases and explicit tags are refused: job files are plain data, and a value
 * that means the same as another should be written twice. */
static void check_node(const loader *L, const yaml_event_t *ev, const char *name) {
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        fail_mark(L, ev->start_mark, "%s: aliases (*%s) are not supported in job files; write the value out",
                  name, (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: anchor = ev->data.scalar.anchor; tag = ev->data.scalar.tag; break;
    case YAML_SEQUENCE_START_EVENT: anchor = ev->data.sequence_start.anchor; tag = ev->data.sequence_start.tag; break;
    case YAML_MAPPING_START_EVENT: anchor = ev->data.mapping_start.anchor; tag = ev->data.mapping_start.tag; break;
    default: break;
    }
    if (anchor)
        fail_mark(L, ev->start_mark, "%s: anchors (&%s) are not supported in job files", name,
                  (const char *)anchor);
    if (tag)
        fail_mark(L, ev->start_mark, "%s: explicit tags (%s) are not supported in job files; write "
                  "the plain value", name, (const char *)tag);
}

/* Record that `path` was given at `m`; a second time is an error naming the first. */
static void mark_given(beit_config *c, const key_spec *k) { c->given[k - KEYS] = 1; }

int config_key_given(const beit_config *c, const char *key) {
    const key_spec *k = find_key(key);
    if (!k) beit_fatal(BEIT_EXIT_FAILURE, "config_key_given: '%s' is not a key of the schema", key);
    return c->given[k - KEYS] != 0;
}

static void mark_seen(loader *L, const char *path, yaml_mark_t m, const char *how) {
    const key_spec *k = find_key(path);
    if (!k && section_scalar_key(path)) k = find_key(section_scalar_key(path));
    if (k) mark_given(L->c, k);
    for (int i = 0; i < L->nseen; i++)
        if (!strcmp(L->seen[i].path, path))
            fail_mark(L, m, "duplicate key '%s'%s (first given at line %zu, column %zu)", path, how,
                      L->seen[i].mark.line + 1, L->seen[i].mark.column + 1);
    if (L->nseen == L->cap) {
        L->cap = 2 * L->cap + 16;
        L->seen = xrealloc(L->seen, (size_t)L->cap * sizeof *L->seen);
    }
    L->seen[L->nseen].path = xstrdup(path);
    L->seen[L->nseen].mark = m;
    L->nseen++;
}

static void load_mapping(loader *L, const char *prefix);

static void set_from_scalar_event(loader *L, const key_spec *k, const yaml_event_t *ev) {
    char err[ERRN];
    if (set_scalar(L->c, k, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                   ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, 0, err))
        fail_mark(L, ev->start_mark, "%s", err);
}

static void load_list(loader *L, const key_spec *k, const yaml_event_t *start) {
    int v[BEIT_CONFIG_LIST_MAX], n = 0;
    char err[ERRN];
    for (;;) {
        yaml_event_t ev;
        next_event(L, &ev);
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        char name[96];
        snprintf(name, sizeof name, "%s[%d]", k->name, n);
        check_node(L, &ev, name);
        if (ev.type != YAML_SCALAR_EVENT)
            fail_mark(L, ev.start_mark, "%s: expected an integer, got %s", name, event_what(&ev));
        if (n == BEIT_CONFIG_LIST_MAX)
            fail_mark(L, ev.start_mark, "%s: expected at most %d entries", k->name, BEIT_CONFIG_LIST_MAX);
        if (parse_int_value(k, name, (const char *)ev.data.scalar.value,
                            ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE, &v[n], err))
            fail_mark(L, ev.start_mark, "%s", err);
        n++;
        yaml_event_delete(&ev);
    }
    if (check_list_count(k, n, err)) fail_mark(L, start->start_mark, "%s", err);
    store_list(L->c, k, v, n);
}

static const char *type_expect(const key_spec *k) {
    switch (k->type) {
    case T_INT: return "an integer";
    case T_FLOAT: return "a number";
    case T_BOOL: return "true or false";
    case T_STR: return "a string";
    case T_ENUM: return "one of the choices";
    case T_INTLIST: return "a list of integers";
    }
    return "?";
}

/* The value of key `path`, whose key scalar started at `km`. */
static void load_value(loader *L, const char *path, yaml_mark_t km) {
    const key_spec *k = find_key(path);
    int section = !k && is_section(path);
    if (!k && !section) {
        char *where = xasprintf("%s:%zu:%zu", L->file, km.line + 1, km.column + 1);
        for (size_t i = 0; i < sizeof RETIRED / sizeof RETIRED[0]; i++) {
            if (strcmp(path, RETIRED[i].name) != 0) continue;
            if (!L->stored) fail_where(where, "key '%s' was replaced by %s", path, RETIRED[i].replacement);
            yaml_event_t ev; /* skip its value (a scalar or a flat sequence) */
            next_event(L, &ev);
            int depth = ev.type == YAML_SEQUENCE_START_EVENT;
            yaml_event_delete(&ev);
            while (depth > 0) {
                next_event(L, &ev);
                depth -= ev.type == YAML_SEQUENCE_END_EVENT;
                yaml_event_delete(&ev);
            }
            free(where);
            return;
        }
        unknown_key(where, path);
    }
    mark_seen(L, path, km, "");
    yaml_event_t ev;
    next_event(L, &ev);
    check_node(L, &ev, path);
    if (k) {
        if (ev.type == YAML_SCALAR_EVENT) set_from_scalar_event(L, k, &ev);
        else if (ev.type == YAML_SEQUENCE_START_EVENT && k->type == T_INTLIST) load_list(L, k, &ev);
        else {
            sbuf b = {0};
            if (k->type == T_ENUM) {
                sb_add(&b, " (");
                fmt_choices(&b, k->choices);
                sb_add(&b, ")");
            }
            fail_mark(L, ev.start_mark, "%s: expected %s%s, got %s", path, type_expect(k), sb_str(&b),
                      event_what(&ev));
        }
    } else if (ev.type == YAML_MAPPING_START_EVENT) {
        load_mapping(L, path);
    } else {
        const char *sk = section_scalar_key(path);
        if (ev.type == YAML_SCALAR_EVENT && sk) {
            char *how = xasprintf(" (given as '%s: %s')", path, (const char *)ev.data.scalar.value);
            mark_seen(L, sk, km, how);
            free(how);
            set_from_scalar_event(L, find_key(sk), &ev);
        } else {
            sbuf b = {0};
            section_keys(&b, path);
            if (ev.type == YAML_SCALAR_EVENT && !ev.data.scalar.length)
                fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got an "
                          "empty value", path, sb_str(&b));
            if (ev.type == YAML_SCALAR_EVENT)
                fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got '%.200s'",
                          path, sb_str(&b), (const char *)ev.data.scalar.value);
            fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got %s", path,
                      sb_str(&b), event_what(&ev));
        }
    }
    yaml_event_delete(&ev);
}

/* After a MAPPING-START: keys of the section `prefix` (NULL at the top level). */
static void load_mapping(loader *L, const char *prefix) {
    for (;;) {
        yaml_event_t kev;
        next_event(L, &kev);
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return;
        }
        const char *ctx = prefix ? prefix : "top level";
        check_node(L, &kev, ctx);
        if (kev.type != YAML_SCALAR_EVENT)
            fail_mark(L, kev.start_mark, "%s: expected a key name, got %s as a key", ctx, event_what(&kev));
        const char *key = (const char *)kev.data.scalar.value;
        if (!*key || strlen(key) != kev.data.scalar.length)
            fail_mark(L, kev.start_mark, "%s: expected a key name, got an empty key", ctx);
        char *path = prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
        yaml_mark_t km = kev.start_mark;
        yaml_event_delete(&kev);
        load_value(L, path, km);
        free(path);
    }
}

/* The whole file, NUL-terminated; n = its length. */
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) beit_fatal_user(BEIT_EXIT_USAGE, "%s: cannot open the job file: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) beit_fatal_user(BEIT_EXIT_USAGE, "%s: cannot read the job file: %s", path, strerror(errno));
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

static void load_text(beit_config *c, const char *path, const unsigned char *text, size_t len, int stored);

void config_load(beit_config *c, const char *path) {
    size_t len = 0;
    unsigned char *text = read_file(path, &len);
    load_text(c, path, text, len, 0);
    free(text);
}

void config_load_string(beit_config *c, const char *text, const char *name) {
    load_text(c, name, (const unsigned char *)text, strlen(text), 1);
}

static void load_text(beit_config *c, const char *path, const unsigned char *text, size_t len, int stored) {
    config_defaults(c);
    loader L;
    memset(&L, 0, sizeof L);
    L.file = path;
    L.c = c;
    L.stored = stored;
    yaml_event_t ev;

    /* Pass 1: syntax only, so a malformed file is reported as such even when a value before
     * the syntax error is also wrong (libyaml streams events up to the error). */
    if (!yaml_parser_initialize(&L.parser)) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: cannot initialise a parser");
    yaml_parser_set_input_string(&L.parser, text, len);
    for (int done = 0; !done;) {
        next_event(&L, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&L.parser);

    /* Pass 2: the keys and values */
    if (!yaml_parser_initialize(&L.parser)) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: cannot initialise a parser");
    yaml_parser_set_input_string(&L.parser, text, len);
    next_event(&L, &ev); /* STREAM-START */
    yaml_event_delete(&ev);
    next_event(&L, &ev);
    if (ev.type == YAML_DOCUMENT_START_EVENT) { /* else STREAM-END: an empty file */
        yaml_event_delete(&ev);
        next_event(&L, &ev);
        check_node(&L, &ev, "top level");
        if (ev.type == YAML_MAPPING_START_EVENT) {
            load_mapping(&L, NULL);
        } else if (!(ev.type == YAML_SCALAR_EVENT && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                     is_yaml_null((const char *)ev.data.scalar.value))) {
            fail_mark(&L, ev.start_mark, "expected a mapping of keys at the top level (like 'task: "
                      "pretrain'), got %s", event_what(&ev));
        }
        yaml_event_delete(&ev);
        next_event(&L, &ev); /* DOCUMENT-END */
        yaml_event_delete(&ev);
        next_event(&L, &ev);
        if (ev.type == YAML_DOCUMENT_START_EVENT)
            fail_mark(&L, ev.start_mark, "a job file holds one YAML document; a second one starts here");
    }
    yaml_event_delete(&ev);
    yaml_parser_delete(&L.parser);
    for (int i = 0; i < L.nseen; i++) free(L.seen[i].path);
    free(L.seen);
}

/* ---- --set --------------------------------------------------------------------------------- */

void config_set(beit_config *c, const char *assignment) {
    char *where = xasprintf("--set '%s'", assignment);
    const char *eq = strchr(assignment, '=');
    if (!eq) fail_where(where, "expected key=value, e.g. --set optim.lr=1e-3");
    const char *a = assignment, *b = eq;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    char *key = xmalloc((size_t)(b - a) + 1);
    memcpy(key, a, (size_t)(b - a));
    key[b - a] = 0;
    if (!*key) fail_where(where, "expected key=value, got an empty key");

    const key_spec *k = find_key(key);
    if (!k) {
        const char *sk = section_scalar_key(key);
        if (sk) k = find_key(sk);
        else if (is_section(key)) {
            sbuf s = {0};
            section_keys(&s, key);
            fail_where(where, "'%s' is a section; set one of its keys (%s) as %s.<key>=value", key,
                       sb_str(&s), key);
        } else unknown_key(where, key);
    }
    /* strings are literal; other values are trimmed */
    char *val = xstrdup(eq + 1);
    if (k->type != T_STR) {
        char *p = val;
        while (isspace((unsigned char)*p)) p++;
        memmove(val, p, strlen(p) + 1);
        size_t n = strlen(val);
        while (n && isspace((unsigned char)val[n - 1])) val[--n] = 0;
    }
    char err[ERRN];
    if (set_scalar(c, k, val, strlen(val), 1, 1, err)) fail_where(where, "%s", err);
    mark_given(c, k);
    free(val);
    free(key);
    free(where);
}

/* ---- checks ------------------------------------------------------------------------------ */

void config_require(const beit_config *c, const char *key, const char *source) {
    const key_spec *k = find_key(key);
    if (!k) beit_fatal(BEIT_EXIT_FAILURE, "config_require: no key '%s' in the schema", key);
    int missing = (k->type == T_STR && !*(const char *)cfield(c, k)) ||
                  (k->type == T_ENUM && *(const int *)cfield(c, k) == -1);
    if (!missing) return;
    sbuf b = {0};
    if (k->type == T_ENUM) {
        sb_add(&b, "; one of: ");
        fmt_choices(&b, k->choices);
    }
    beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing required key '%s' (%s%s); set it in the job file "
                    "or with --set %s=...", source, k->name, k->doc, sb_str(&b), k->name);
}

int config_mask_max_patches(const beit_config *c) {
    return c->mask.max_patches > 0 ? c->mask.max_patches : c->mask.num_patches;
}

double config_mask_max_aspect(const beit_config *c) {
    return c->mask.max_aspect > 0 ? c->mask.max_aspect : 1.0 / c->mask.min_aspect;
}

#define BAD(...) beit_fatal_user(BEIT_EXIT_USAGE, __VA_ARGS__)

void config_validate(const beit_config *c, const char *s) {
    for (int i = 0; i < NKEYS; i++)
        if (!KEYS[i].def) config_require(c, KEYS[i].name, s);

    if (c->model.embed_dim % c->model.num_heads)
        BAD("%s: model.embed_dim (%d) must be divisible by model.num_heads (%d)", s, c->model.embed_dim,
            c->model.num_heads);
    if (c->model.img_size % c->model.patch_size)
        BAD("%s: model.img_size (%d) must be divisible by model.patch_size (%d)", s, c->model.img_size,
            c->model.patch_size);
    long grid = c->model.img_size / c->model.patch_size;
    /* the mask keys only matter to pre-training (fine-tuning jobs leave them at the defaults) */
    if (c->task == BEIT_TASK_PRETRAIN) {
    if (c->mask.num_patches > grid * grid)
        BAD("%s: mask.num_patches (%d) must be <= the %ld patches of the %ldx%ld grid (model.img_size "
            "%d / model.patch_size %d)", s, c->mask.num_patches, grid * grid, grid, grid, c->model.img_size,
            c->model.patch_size);
    if (c->mask.min_patches > c->mask.num_patches)
        BAD("%s: mask.min_patches (%d) must be <= mask.num_patches (%d)", s, c->mask.min_patches,
            c->mask.num_patches);
    if (c->mask.max_patches > 0 && c->mask.min_patches > c->mask.max_patches)
        BAD("%s: mask.min_patches (%d) must be <= mask.max_patches (%d) (or set mask.max_patches: 0 "
            "for mask.num_patches)", s, c->mask.min_patches, c->mask.max_patches);
    double max_aspect = config_mask_max_aspect(c);
    if (c->mask.min_aspect > max_aspect) {
        if (c->mask.max_aspect > 0)
            BAD("%s: mask.min_aspect (%g) must be <= mask.max_aspect (%g)", s, c->mask.min_aspect,
                c->mask.max_aspect);
        BAD("%s: mask.min_aspect (%g) must be <= mask.max_aspect, which is 0, meaning 1/mask.min_aspect "
            "= %g (so mask.min_aspect must be <= 1)", s, c->mask.min_aspect, max_aspect);
    }
    }
    const beit_int_list *w = &c->dvae.widths;
    if (w->n < 1 || w->n > BEIT_CONFIG_LIST_MAX)
        BAD("%s: dvae.widths must have 1 to %d entries, has %d", s, BEIT_CONFIG_LIST_MAX, w->n);
    long factor = 1L << (w->n - 1);
    if (c->dvae.image_size % factor)
        BAD("%s: dvae.image_size (%d) must be divisible by the dVAE downsampling factor %ld "
            "(2^(len(dvae.widths) - 1), with %d entries in dvae.widths)", s, c->dvae.image_size, factor,
            w->n);
    if (c->aug.crop_scale_min > c->aug.crop_scale_max)
        BAD("%s: aug.crop_scale_min (%g) must be <= aug.crop_scale_max (%g)", s, c->aug.crop_scale_min,
            c->aug.crop_scale_max);
    if (c->aug.crop_ratio_min > c->aug.crop_ratio_max)
        BAD("%s: aug.crop_ratio_min (%g) must be <= aug.crop_ratio_max (%g)", s, c->aug.crop_ratio_min,
            c->aug.crop_ratio_max);
    if (c->train.micro_batch > c->train.global_batch)
        BAD("%s: train.micro_batch (%d) must be <= train.global_batch (%d) (or 0 = no accumulation)", s,
            c->train.micro_batch, c->train.global_batch);
    if (c->optim.min_lr > c->optim.lr)
        BAD("%s: optim.min_lr (%g) must be <= optim.lr (%g)", s, c->optim.min_lr, c->optim.lr);
    if (c->task == BEIT_TASK_FINETUNE && c->finetune.task == BEIT_FT_SEGMENTATION)
        for (int i = 0; i < c->finetune.seg_blocks.n; i++)
            if (c->finetune.seg_blocks.v[i] > c->model.depth)
                BAD("%s: finetune.seg_blocks[%d] (%d) must be <= model.depth (%d)", s, i,
                    c->finetune.seg_blocks.v[i], c->model.depth);
    if (c->task == BEIT_TASK_PROBE)
        for (int i = 0; i < c->finetune.probe_blocks.n; i++)
            if (c->finetune.probe_blocks.v[i] == 0 || c->finetune.probe_blocks.v[i] > c->model.depth)
                BAD("%s: finetune.probe_blocks[%d] (%d) must be -1 (the last block) or 1..model.depth (%d)", s, i,
                    c->finetune.probe_blocks.v[i], c->model.depth);
}

/* ---- output -------------------------------------------------------------------------------- */

char *config_to_yaml(const beit_config *c) {
    sbuf b = {0};
    sb_add(&b, "# beit resolved config (every key)\n");
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        size_t sl = section_len(k->name);
        if (!sl) {
            size_t mark = b.n;
            sb_add(&b, "%s: ", k->name);
            if (!fmt_value(&b, c, k)) {
                b.n = mark;
                sb_add(&b, "# %s: (unset)", k->name);
            }
            sb_add(&b, "\n");
            continue;
        }
        /* a section is written whole where its first key appears in the table */
        int first = 1;
        for (int j = 0; j < i && first; j++)
            if (section_len(KEYS[j].name) == sl && !strncmp(KEYS[j].name, k->name, sl)) first = 0;
        if (!first) continue;
        sb_add(&b, "%.*s:\n", (int)sl, k->name);
        for (int j = i; j < NKEYS; j++) {
            const key_spec *kj = &KEYS[j];
            if (section_len(kj->name) != sl || strncmp(kj->name, k->name, sl)) continue;
            size_t mark = b.n;
            sb_add(&b, "  %s: ", kj->name + sl + 1);
            if (!fmt_value(&b, c, kj)) {
                b.n = mark;
                sb_add(&b, "  # %s: (unset)", kj->name + sl + 1);
            }
            sb_add(&b, "\n");
        }
    }
    sb_str(&b);
    return b.s;
}

void config_print_help(FILE *f) {
    fprintf(f,
            "Job file keys. A job file is YAML: sections are nested mappings (optim: {lr: 1e-3})\n"
            "or dotted keys (optim.lr: 1e-3); `--set key=value` overrides any key. Unknown and\n"
            "duplicate keys are errors. Types: int, float (nan/inf refused), bool (true/false),\n"
            "string (\"\" for empty), enum (one of the listed words), int list ([4, 6, 8], 1 to %d\n"
            "entries). `data: synthetic` is short for data.source: synthetic.\n\n",
            BEIT_CONFIG_LIST_MAX);
    for (int i = 0; i < NKEYS; i++) {
        const key_spec *k = &KEYS[i];
        sbuf d = {0}, r = {0};
        if (!k->def) sb_add(&d, "(required)");
        else if (k->type == T_STR) fmt_yaml_string(&d, k->def);
        else sb_add(&d, "%s", k->def);
        if (k->type == T_ENUM) {
            sb_add(&r, "one of: ");
            fmt_choices(&r, k->choices);
        } else if (k->lo.kind || k->hi.kind) {
            char buf[256];
            fmt_range(buf, sizeof buf, k, k->type == T_INTLIST ? "each" : "x");
            sb_add(&r, "%s", buf);
        }
        if (r.n) fprintf(f, "  %-26s %-8s default %-16s %s\n", k->name, TYPE_NAME[k->type], sb_str(&d), r.s);
        else fprintf(f, "  %-26s %-8s default %s\n", k->name, TYPE_NAME[k->type], sb_str(&d));
        fprintf(f, "      %s\n", k->doc);
        free(d.s);
        free(r.s);
    }
}

const char *config_enum_name(const char *key, int value) {
    const key_spec *k = find_key(key);
    if (!k || k->type != T_ENUM) beit_fatal(BEIT_EXIT_FAILURE, "config_enum_name: '%s' is not an enum key", key);
    if (value == -1) return "(unset)";
    if (value < 0 || value >= choice_count(k->choices))
        beit_fatal(BEIT_EXIT_FAILURE, "config_enum_name: %d is not a value of %s", value, key);
    return k->choices[value];
}
