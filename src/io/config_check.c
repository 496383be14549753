/* config_check.c: required keys and the rules between keys, checked once a job's config is
 * complete (file + --set), before anything runs.
 */
#include "config_internal.h"

#include "beit/config.h"
#include "beit/error.h"
#include "beit/masking.h"

#include <string.h>

/* ---- checks ------------------------------------------------------------------------------ */

void config_require(const beit_config *c, const char *key, const char *source) {
    const key_spec *k = cfg_find_key(key);
    if (!k) beit_fatal(BEIT_EXIT_FAILURE, "config_require: no key '%s' in the schema", key);
    int missing = (k->type == T_STR && !*(const char *)cfg_cfield(c, k)) ||
                  (k->type == T_ENUM && *(const int *)cfg_cfield(c, k) == -1);
    if (!missing) return;
    sbuf b = {0};
    if (k->type == T_ENUM) {
        cfg_sb_add(&b, "; one of: ");
        cfg_fmt_choices(&b, k->choices);
    }
    beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing required key '%s' (%s%s); set it in the job file "
                    "or with --set %s=...", source, k->name, k->doc, cfg_sb_str(&b), k->name);
}

/* The mask keys as the masking module's parameters, on the model's patch grid (grid x grid).
 * The rules and the "0 = ..." defaults are masking.h's: one implementation for both sides. */
static mask_params mask_params_of(const beit_config *c, int grid) {
    mask_params p;
    memset(&p, 0, sizeof p);
    p.H = p.W = grid;
    p.num_patches = c->mask.num_patches;
    p.min_patches = c->mask.min_patches;
    p.max_patches = c->mask.max_patches;
    p.min_aspect = c->mask.min_aspect;
    p.max_aspect = c->mask.max_aspect;
    return p;
}

int config_mask_max_patches(const beit_config *c) {
    mask_params p = mask_params_of(c, 0);
    return mask_max_patches(&p);
}

double config_mask_max_aspect(const beit_config *c) {
    mask_params p = mask_params_of(c, 0);
    return mask_max_aspect(&p);
}

#define BAD(...) beit_fatal_user(BEIT_EXIT_USAGE, __VA_ARGS__)

/* masking.h's rules for the mask keys, worded in terms of the keys. The schema's ranges
 * already keep the grid, the counts and the aspects positive, so only the faults below can
 * occur. min_aspect <= max_aspect is a job-file rule only: unilm's generator accepts the
 * range reversed. */
static void validate_mask(const beit_config *c, const char *s, long grid) {
    mask_params p = mask_params_of(c, (int)grid);
    switch (mask_params_fault(&p, 0)) {
    case MASK_BAD_NUM:
        BAD("%s: mask.num_patches (%d) must be <= the %ld patches of the %ldx%ld grid (model.img_size "
            "%d / model.patch_size %d)", s, c->mask.num_patches, grid * grid, grid, grid, c->model.img_size,
            c->model.patch_size);
    case MASK_BAD_MIN:
        BAD("%s: mask.min_patches (%d) must be <= mask.num_patches (%d)", s, c->mask.min_patches,
            c->mask.num_patches);
    case MASK_BAD_MAX:
        BAD("%s: mask.min_patches (%d) must be <= mask.max_patches (%d) (or set mask.max_patches: 0 "
            "for mask.num_patches)", s, c->mask.min_patches, c->mask.max_patches);
    default: break;
    }
    double max_aspect = mask_max_aspect(&p);
    if (c->mask.min_aspect > max_aspect) {
        if (c->mask.max_aspect > 0)
            BAD("%s: mask.min_aspect (%g) must be <= mask.max_aspect (%g)", s, c->mask.min_aspect,
                c->mask.max_aspect);
        BAD("%s: mask.min_aspect (%g) must be <= mask.max_aspect, which is 0, meaning 1/mask.min_aspect "
            "= %g (so mask.min_aspect must be <= 1)", s, c->mask.min_aspect, max_aspect);
    }
}

void config_validate(const beit_config *c, const char *s) {
    for (int i = 0; i < cfg_nkeys; i++)
        if (!cfg_keys[i].def) config_require(c, cfg_keys[i].name, s);

    if (c->model.embed_dim % c->model.num_heads)
        BAD("%s: model.embed_dim (%d) must be divisible by model.num_heads (%d)", s, c->model.embed_dim,
            c->model.num_heads);
    if (c->model.img_size % c->model.patch_size)
        BAD("%s: model.img_size (%d) must be divisible by model.patch_size (%d)", s, c->model.img_size,
            c->model.patch_size);
    long grid = c->model.img_size / c->model.patch_size;
    /* the mask keys only matter to pre-training (fine-tuning jobs leave them at the defaults) */
    if (c->task == BEIT_TASK_PRETRAIN) validate_mask(c, s, grid);
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
