/* config_schema.c: every job-file key, declared once.
 *
 * One row per key: dotted name, type, struct field, default (as the text a job file would hold,
 * parsed by the same code as the file), range or choices, and a one-line doc. Everything else
 * (loading, --set, defaults, help, the resolved YAML) walks this table. Adding a key = one row
 * here + one field in beit_config (include/beit/config.h). The rules a job file follows are in
 * config.h; the parts of the reader are listed in config_internal.h.
 */
#include "config_internal.h"

#include "beit/config.h"
#include "beit/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* ---- schema ------------------------------------------------------------------------------ */

const char *const cfg_type_name[] = {"int", "float", "bool", "string", "enum", "int list"};

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
static const char *const C_CODEBOOK[] = {"fan_in", "unit", NULL};
static const char *const C_FTTASK[] = {"classification", "segmentation", NULL};
static const char *const C_POOL[] = {"mean", "cls", NULL};
static const char *const C_AUG[] = {"resized_crop", "pad_crop", NULL};

const key_spec cfg_keys[] = {
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
     "token store of visual tokens (written by `beit tokenize`) for pre-training on tokens; with "
     "pretrain.target pixels, the views (crops, flips) whose pixels are regressed"},
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

    {"aug.type", T_ENUM, F(aug.type), "resized_crop", NOB, NOB, C_AUG,
     "resized_crop: torchvision RandomResizedCrop (aug.crop_*); pad_crop: RandomCrop(size, "
     "padding=aug.padding), the image shifted by up to aug.padding pixels, zeros outside"},
    {"aug.crop_scale_min", T_FLOAT, F(aug.crop_scale_min), "0.08", EXC(0), INC(1), NULL,
     "random resized crop: smallest crop area, as a fraction of the image area"},
    {"aug.crop_scale_max", T_FLOAT, F(aug.crop_scale_max), "1.0", EXC(0), INC(1), NULL,
     "random resized crop: largest crop area, as a fraction of the image area"},
    {"aug.crop_ratio_min", T_FLOAT, F(aug.crop_ratio_min), "0.75", EXC(0), NOB, NULL,
     "random resized crop: smallest aspect ratio (width / height)"},
    {"aug.crop_ratio_max", T_FLOAT, F(aug.crop_ratio_max), "1.3333333", EXC(0), NOB, NULL,
     "random resized crop: largest aspect ratio (width / height)"},
    {"aug.padding", T_INT, F(aug.padding), "2", INC(0), INC(64), NULL,
     "pad_crop: zero padding on each side before the crop, in pixels"},
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
     "initial LayerScale value, either arch (0 disables LayerScale: the paper's vanilla ViT)"},
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
     "tokens computed during training by the tokenizer at tokenize.checkpoint"},

    {"pretrain.pixel_norm_per_patch", T_BOOL, F(pretrain.pixel_norm_per_patch), "true", NOB, NOB, NULL,
     "target pixels: normalise each patch's targets by its own mean/std (MAE's norm_pix_loss); "
     "false = the patch's pixels normalised with the store's mean/std only"},
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
    {"dvae.codebook_init", T_ENUM, F(dvae.codebook_init), "fan_in", NOB, NOB, C_CODEBOOK,
     "init of decoder.stem, the 1x1 conv from the V code probabilities whose column v is code "
     "v's embedding: fan_in = PyTorch's Conv2d default U(+-1/sqrt(V)); unit = U(+-1), the scale "
     "of an embedding-table codebook, so that the decoder tells codes apart from the first step"},
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

    {"dalle.group_count", T_INT, F(dalle.group_count), "4", INC(1), INC(8), NULL,
     "DALL-E encoder (a converted tokenizer): groups; each after the first halves the resolution"},
    {"dalle.n_hid", T_INT, F(dalle.n_hid), "256", INC(4), NOB, NULL,
     "DALL-E encoder: channels of the first group (group g has n_hid * 2^g)"},
    {"dalle.n_blk_per_group", T_INT, F(dalle.n_blk_per_group), "2", INC(1), NOB, NULL,
     "DALL-E encoder: residual blocks per group"},
    {"dalle.in_chans", T_INT, F(dalle.in_chans), "3", INC(1), NOB, NULL, "DALL-E encoder: input channels"},
    {"dalle.vocab_size", T_INT, F(dalle.vocab_size), "8192", INC(2), NOB, NULL,
     "DALL-E encoder: codebook size"},
    {"dalle.image_size", T_INT, F(dalle.image_size), "112", INC(1), NOB, NULL,
     "DALL-E encoder: input side the tokenizer sees (tokens per side = this / 2^(group_count - 1))"},

    {"tokenize.views", T_INT, F(tokenize.views), "1", INC(1), NOB, NULL,
     "views tokenized per image"},
    {"tokenize.batch", T_INT, F(tokenize.batch), "256", INC(1), NOB, NULL,
     "images per tokenizer forward pass"},
    {"tokenize.checkpoint", T_STR, F(tokenize.checkpoint), "", NOB, NOB, NULL,
     "tokenizer checkpoint: beit's dVAE (kind dvae) or DALL-E's encoder converted by "
     "tools/import_dalle.py (kind dalle-encoder); also for pretrain.target tokens_online"},

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
     "gradients (0 = global_batch / ranks, no accumulation); beit probe: images per rank per forward "
     "while extracting features (0 = 64)"},
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
const int cfg_nkeys = (int)(sizeof cfg_keys / sizeof cfg_keys[0]);

/* A section given as a scalar sets one of its keys: `data: synthetic`. */
static const struct {
    const char *section, *key;
} SCALAR_KEYS[] = {
    {"data", "data.source"},
};
#define NSCALAR_KEYS ((int)(sizeof SCALAR_KEYS / sizeof SCALAR_KEYS[0]))

/* Keys an earlier version wrote into the configs it stored. A job file naming one is told the
 * replacement; a stored config (config_load_string) skips it, so old checkpoints still load. */
const retired_key cfg_retired[] = {
    {"finetune.probe_block", "finetune.probe_blocks (a list of 1-based blocks, e.g. [-1])"},
};
const int cfg_nretired = (int)(sizeof cfg_retired / sizeof cfg_retired[0]);

/* ---- schema lookups -------------------------------------------------------------------------- */

const key_spec *cfg_find_key(const char *name) {
    for (int i = 0; i < cfg_nkeys; i++)
        if (strcmp(cfg_keys[i].name, name) == 0) return &cfg_keys[i];
    return NULL;
}

/* "optim" is a section iff some key starts with "optim." */
int cfg_is_section(const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < cfg_nkeys; i++)
        if (strncmp(cfg_keys[i].name, name, n) == 0 && cfg_keys[i].name[n] == '.') return 1;
    return 0;
}

const char *cfg_section_scalar_key(const char *section) {
    for (int i = 0; i < NSCALAR_KEYS; i++)
        if (strcmp(SCALAR_KEYS[i].section, section) == 0) return SCALAR_KEYS[i].key;
    return NULL;
}

/* length of the section part of a key name ("optim.lr" -> 5), 0 for a top-level key */
size_t cfg_section_len(const char *name) {
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : 0;
}


/* ---- schema self-check and defaults ------------------------------------------------------------ */

static void schema_check(void) {
    if (cfg_nkeys > BEIT_CONFIG_MAX_KEYS)
        beit_fatal(BEIT_EXIT_FAILURE, "config schema: %d keys, BEIT_CONFIG_MAX_KEYS is %d", cfg_nkeys, BEIT_CONFIG_MAX_KEYS);
    for (int i = 0; i < cfg_nkeys; i++) {
        const key_spec *k = &cfg_keys[i];
        size_t want = k->type == T_INT || k->type == T_ENUM ? sizeof(int)
                    : k->type == T_FLOAT ? sizeof(double)
                    : k->type == T_BOOL ? sizeof(bool)
                    : k->type == T_INTLIST ? sizeof(beit_int_list) : k->size;
        if (k->size != want || (k->type == T_STR && k->size < 2))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s is a %s but its field has %zu bytes",
                       k->name, cfg_type_name[k->type], k->size);
        if ((k->type == T_ENUM) != (k->choices != NULL))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: choices are for enums only", k->name);
        if (!k->def && k->type != T_ENUM && k->type != T_STR)
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: only string and enum keys may be required", k->name);
        const char *dot = strchr(k->name, '.');
        if (dot && strchr(dot + 1, '.'))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s: at most one level of sections", k->name);
        if (cfg_is_section(k->name))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s is both a key and a section", k->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(cfg_keys[j].name, k->name))
                beit_fatal(BEIT_EXIT_FAILURE, "config schema: %s declared twice", k->name);
    }
    for (int i = 0; i < NSCALAR_KEYS; i++) {
        const key_spec *k = cfg_find_key(SCALAR_KEYS[i].key);
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
    for (int i = 0; i < cfg_nkeys; i++) {
        const key_spec *k = &cfg_keys[i];
        if (!k->def) {
            if (k->type == T_ENUM) *(int *)cfg_field(c, k) = -1; /* strings stay "" */
            continue;
        }
        if (cfg_set_scalar(c, k, k->def, strlen(k->def), 1, 1, err))
            beit_fatal(BEIT_EXIT_FAILURE, "config schema: the default of %s is invalid: %s", k->name, err);
    }
}

int config_key_given(const beit_config *c, const char *key) {
    const key_spec *k = cfg_find_key(key);
    if (!k) beit_fatal(BEIT_EXIT_FAILURE, "config_key_given: '%s' is not a key of the schema", key);
    return c->given[k - cfg_keys] != 0;
}

const char *config_enum_name(const char *key, int value) {
    const key_spec *k = cfg_find_key(key);
    if (!k || k->type != T_ENUM) beit_fatal(BEIT_EXIT_FAILURE, "config_enum_name: '%s' is not an enum key", key);
    if (value == -1) return "(unset)";
    if (value < 0 || value >= cfg_choice_count(k->choices))
        beit_fatal(BEIT_EXIT_FAILURE, "config_enum_name: %d is not a value of %s", value, key);
    return k->choices[value];
}
