/* config.h: the job file (YAML, libyaml) as a typed struct.
 *
 * Every key is declared once, in the schema table of src/io/config_schema.c (dotted name, type,
 * struct field, default, range or choices, one-line doc). Adding a key = one field below +
 * one row there. `beit config --help` (config_print_help) lists them all.
 *
 * Job file rules (strict; every error names file:line:col, the dotted key and what was
 * expected, and exits with BEIT_EXIT_USAGE):
 *   - one YAML document whose top level is a mapping; sections are nested mappings
 *     (`optim: {lr: 1e-3}`) and a dotted key at any level means the same (`optim.lr: 1e-3`)
 *   - unknown keys are errors (with a "did you mean" suggestion); duplicate keys are errors
 *     (naming the line of the first occurrence), also across the two spellings above
 *   - int: a plain decimal integer; float: a plain number (an integer is fine; nan/inf and
 *     hex are not); bool: exactly true or false; string: any scalar (write "" for empty);
 *     enum: one of the listed words; int list: [4, 6, 8] or a block sequence, 1..16 entries
 *   - quoted scalars are strings: `lr: "1e-3"` is rejected for a number
 *   - an empty value (`lr:`), `~` and `null` are rejected: every key has a default, so
 *     leave it out instead
 *   - anchors (&a), aliases (*a) and explicit tags (!!int) are rejected
 *   - a section may be given as a scalar that sets its "scalar key": `data: synthetic`
 *     means `data: {source: synthetic}`
 */
#ifndef BEIT_CONFIG_H
#define BEIT_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#define BEIT_CONFIG_STR 1024     /* capacity of every string key, NUL included */
#define BEIT_CONFIG_LIST_MAX 16  /* entries of an int list */
#define BEIT_CONFIG_MAX_KEYS 192 /* schema rows (config_key_given's record) */

typedef struct {
    int n;                       /* entries used, 1..BEIT_CONFIG_LIST_MAX */
    int v[BEIT_CONFIG_LIST_MAX]; /* unused entries are 0 */
} beit_int_list;

/* Enum keys are stored as int; the values below are the index of the word in the key's
 * choice list (the schema table lists the words in this order). */
enum beit_task {
    BEIT_TASK_UNSET = -1, /* `task` has no default: config_validate requires it */
    BEIT_TASK_DVAE,
    BEIT_TASK_TOKENIZE,
    BEIT_TASK_PRETRAIN,
    BEIT_TASK_FINETUNE,
    BEIT_TASK_PROBE,
    BEIT_TASK_EVAL,
};
enum beit_data_source { BEIT_DATA_STORE, BEIT_DATA_SYNTHETIC };
enum beit_arch { BEIT_ARCH_BEIT, BEIT_ARCH_VIT };
enum beit_mask_type { BEIT_MASK_BLOCK, BEIT_MASK_RANDOM };
enum beit_target { BEIT_TARGET_TOKENS, BEIT_TARGET_PIXELS, BEIT_TARGET_TOKENS_ONLINE };
enum beit_recon { BEIT_RECON_MSE, BEIT_RECON_LOGIT_LAPLACE };
enum beit_codebook_init { BEIT_CODEBOOK_FAN_IN, BEIT_CODEBOOK_UNIT };
enum beit_ft_task { BEIT_FT_CLASSIFICATION, BEIT_FT_SEGMENTATION };
enum beit_pool { BEIT_POOL_MEAN, BEIT_POOL_CLS };
enum beit_aug { BEIT_AUG_RESIZED_CROP, BEIT_AUG_PAD_CROP };

/* The meaning, default and range of each field is in the schema table (config_schema.c) and in
 * `beit config --help`; the comments here are reminders only. */
typedef struct {
    int task; /* enum beit_task */
    int seed;

    struct {
        int source; /* enum beit_data_source */
        char path[BEIT_CONFIG_STR];   /* HDF5 dataset store; "" = not given */
        char split[BEIT_CONFIG_STR];
        char eval_split[BEIT_CONFIG_STR];
        char tokens[BEIT_CONFIG_STR]; /* token store; "" = not given */
        int subset;                   /* 0 = all */
        int image_size;               /* 0 = as stored */
        int channels;                 /* 0 = as stored */
        int num_classes;              /* 0 = from the store */
        int synthetic_size;
    } data;

    struct {
        int type; /* enum beit_aug */
        double crop_scale_min, crop_scale_max;
        double crop_ratio_min, crop_ratio_max;
        int padding;
        bool flip;
        bool enable;
    } aug;

    struct {
        int arch; /* enum beit_arch */
        int img_size, patch_size, in_chans;
        int embed_dim, depth, num_heads;
        double mlp_ratio;
        double layer_scale_init; /* 0 = no LayerScale */
        double drop_path;
        int vocab_size;
        double init_std;
    } model;

    struct {
        int type; /* enum beit_mask_type */
        int num_patches, min_patches;
        int max_patches;   /* 0 = num_patches (use config_mask_max_patches) */
        double min_aspect;
        double max_aspect; /* 0 = 1/min_aspect (use config_mask_max_aspect) */
    } mask;

    struct {
        int target; /* enum beit_target */
        bool pixel_norm_per_patch;
    } pretrain;

    struct {
        int image_size, in_chans, vocab_size;
        beit_int_list widths; /* one per group; downsampling 2^(n-1) */
        int blocks_per_group;
        int recon; /* enum beit_recon */
        int codebook_init; /* enum beit_codebook_init */
        double kl_weight;
        int kl_warmup_steps;
        double temp_start, temp_end;
        int temp_anneal_steps; /* 0 = the whole run */
    } dvae;

    struct { /* DALL-E's encoder (dalle.h): what tools/import_dalle.py records in its checkpoint */
        int group_count, n_hid, n_blk_per_group, in_chans, vocab_size, image_size;
    } dalle;

    struct {
        int views, batch;
        char checkpoint[BEIT_CONFIG_STR];
    } tokenize;

    struct {
        int task; /* enum beit_ft_task */
        int pool; /* enum beit_pool */
        double label_smoothing, layer_decay, head_init_scale;
        beit_int_list seg_blocks;   /* 1-based block numbers */
        int decoder_dim;            /* segmentation decoder channels */
        beit_int_list probe_blocks; /* 1-based; -1 = the last block */
    } finetune;

    struct {
        double epochs;
        int global_batch;
        int micro_batch; /* 0 = global_batch / ranks */
        int log_every, ckpt_every, keep_last, eval_every;
    } train;

    struct {
        double lr, min_lr, warmup_epochs;
        int warmup_steps; /* > 0 wins over warmup_epochs */
        double weight_decay, beta1, beta2, eps, clip_grad;
    } optim;

    struct {
        double bucket_mb;
        int zero; /* 0 or 1 */
        bool overlap;
    } dist;

    /* given[i] != 0: key i of the schema was set by the job text or a --set, not left at its
     * default (config_key_given). */
    unsigned char given[BEIT_CONFIG_MAX_KEYS];
} beit_config;

/* Zero the whole struct (padding included, so two configs compare with memcmp), then set
 * every key to its default. Required keys without a default are left unset (enum -1). */
void config_defaults(beit_config *c);

/* config_defaults(c), then apply the job file at `path`. Any error (unreadable file,
 * malformed YAML, unknown/duplicate key, wrong type, out of range, unknown enum word) is
 * reported as "path:line:col: ..." and exits with BEIT_EXIT_USAGE. Does not run the
 * cross-field checks: call config_validate after the --set overrides. */
void config_load(beit_config *c, const char *path);
/* The same from text in memory (e.g. the config stored in a checkpoint); `name` stands for
 * the file name in messages. */
void config_load_string(beit_config *c, const char *text, const char *name);
/* (config_load_string skips keys that earlier versions wrote and later retired, e.g.
 * finetune.probe_block, so old checkpoints load; a job file naming one is an error that names
 * the replacement.) */
/* The same from n bytes in memory (need not be NUL-terminated), returning the error instead of
 * exiting: 0, or -1 with the message config_load would print ("name:line:col: ...") in err.
 * stored: 1 reads as config_load_string (retired keys skipped), 0 as a job file. Everything
 * the parse allocated is freed either way; after -1, c holds defaults and part of the text. */
int config_parse_buffer(beit_config *c, const char *text, size_t n, const char *name, int stored, char *err,
                        size_t errlen);

/* Apply one override "key=value" (from `--set key=value`), with the same type and range
 * checks as the file. The value is taken literally (no YAML quoting): strings are the text
 * after '=' as is (may be empty); int lists are "[4, 6, 8]" or "4,6,8". A section with a
 * scalar key takes a scalar: "data=synthetic". Errors name "--set 'key=value'" as the
 * source and exit with BEIT_EXIT_USAGE. */
void config_set(beit_config *c, const char *assignment);
/* The same, returning the error instead of exiting: 0, or -1 with config_set's message in err
 * (c unchanged for a scalar key; perhaps partly changed for an int list). */
int config_try_set(beit_config *c, const char *assignment, char *err, size_t errlen);
/* 1 when the dotted key was set by the job text (file or stored config) or a config_set, 0
 * when it holds its default. Lets a command tell "left out" from "set to the default". */
int config_key_given(const beit_config *c, const char *key);

/* Cross-field checks; `source` names where the config came from (e.g. the job file path)
 * and starts each message. Exits with BEIT_EXIT_USAGE on the first failure. Checks: task is
 * given; embed_dim % num_heads; img_size % patch_size; mask.num_patches <= grid patches;
 * mask.min_patches <= mask.num_patches (and <= max_patches when that is > 0);
 * mask.min_aspect <= effective max_aspect; dvae.image_size divisible by 2^(len(widths)-1);
 * aug crop scale/ratio min <= max; 0 < micro_batch <= global_batch when micro_batch > 0;
 * optim.min_lr <= optim.lr; for task finetune with finetune.task segmentation, every
 * finetune.seg_blocks entry <= model.depth; for task probe, every finetune.probe_blocks entry is
 * -1 or in 1..model.depth. */
void config_validate(const beit_config *c, const char *source);

/* A command that needs a key without a usable default (a string key still "" or an enum
 * still unset) calls this: exits with "<source>: missing required key 'data.path' (<doc>)"
 * and BEIT_EXIT_USAGE. Only string and enum keys can be unset; other keys always pass. An
 * unknown key name is an internal error (BEIT_EXIT_FAILURE). */
void config_require(const beit_config *c, const char *key, const char *source);

/* The job against the files it names, for `beit check` (run config_validate first): the store
 * (data.path, unless data.source is synthetic) opens, holds data.split (and data.eval_split for
 * the tasks that evaluate) with at least data.subset samples, and its images agree with the
 * model's (or the dVAE's) channels and are not smaller than its input; the token store
 * (pre-training on tokens) and tokenize.checkpoint (tokenize, tokens_online) are readable.
 * Logs what it found on rank 0. Exits with BEIT_EXIT_USAGE (a required key missing),
 * BEIT_EXIT_DATA (a file missing or unreadable) or BEIT_EXIT_MISMATCH (data and job disagree). */
void config_check_files(const beit_config *c, const char *source);

/* The resolved config: every key, sections in schema order, as YAML that config_load reads
 * back to a struct identical to c (doubles printed with the fewest digits that round-trip,
 * strings double-quoted). Deterministic: the same struct always gives the same bytes. An
 * unset required key is written as a comment line ("# task: (unset)"). Free with free(). */
char *config_to_yaml(const beit_config *c);

/* Every key: name, type, default, range or choices, doc. For `beit config --help`. */
void config_print_help(FILE *f);

/* The word of an enum key's value, e.g. config_enum_name("task", c->task) -> "pretrain";
 * "(unset)" for -1. For log lines. An unknown key or a non-enum key is an internal error. */
const char *config_enum_name(const char *key, int value);

/* Derived values with the "0 = ..." defaults resolved (by masking.h's mask_max_patches and
 * mask_max_aspect, which the mask generator uses too). */
int config_mask_max_patches(const beit_config *c);   /* max_patches, or num_patches if 0 */
double config_mask_max_aspect(const beit_config *c); /* max_aspect, or 1/min_aspect if 0 */

#endif
