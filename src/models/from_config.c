/* Models from a job: dims from the config, and the model a checkpoint holds rebuilt from the
 * job stored in it (include/beit/modelcfg.h). */
#include "beit/modelcfg.h"

#include "beit/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void vit_dims_from_config(vit_dims *d, const beit_config *c, int head) {
    *d = vit_dims_defaults();
    d->img_size = c->model.img_size;
    d->patch_size = c->model.patch_size;
    d->in_chans = c->model.in_chans;
    d->embed_dim = c->model.embed_dim;
    d->depth = c->model.depth;
    d->num_heads = c->model.num_heads;
    d->mlp_hidden = (int)lround(c->model.mlp_ratio * c->model.embed_dim);
    d->vocab = c->model.vocab_size;
    d->variant = c->model.arch == BEIT_ARCH_VIT ? VIT_VANILLA : VIT_BEIT;
    d->head = head;
    d->layer_scale_init = (float)c->model.layer_scale_init;
    d->init_std = (float)c->model.init_std;
}

void dvae_dims_from_config(dvae_dims *d, const beit_config *c) {
    memset(d, 0, sizeof *d);
    d->in_chans = c->dvae.in_chans;
    d->image_size = c->dvae.image_size;
    d->vocab = c->dvae.vocab_size;
    d->ngroups = c->dvae.widths.n;
    for (int i = 0; i < d->ngroups && i < DVAE_MAX_GROUPS; i++) d->widths[i] = c->dvae.widths.v[i];
    d->blocks = c->dvae.blocks_per_group;
    d->recon = c->dvae.recon == BEIT_RECON_LOGIT_LAPLACE ? DVAE_LOGIT_LAPLACE : DVAE_MSE;
    d->codebook_unit = c->dvae.codebook_init == BEIT_CODEBOOK_UNIT;
}

void dalle_dims_from_config(dalle_dims *d, const beit_config *c) {
    memset(d, 0, sizeof *d);
    d->group_count = c->dalle.group_count;
    d->n_hid = c->dalle.n_hid;
    d->n_blk_per_group = c->dalle.n_blk_per_group;
    d->in_chans = c->dalle.in_chans;
    d->vocab = c->dalle.vocab_size;
    d->image_size = c->dalle.image_size;
}

model_kind model_kind_of(const char *k) {
    if (strcmp(k, "dvae") == 0) return MODEL_DVAE;
    if (strcmp(k, "beit-pretrain") == 0) return MODEL_PRETRAIN;
    if (strcmp(k, FT_KIND_CLS) == 0) return MODEL_FT_CLS;
    if (strcmp(k, FT_KIND_SEG) == 0) return MODEL_FT_SEG;
    if (strcmp(k, DALLE_KIND) == 0) return MODEL_DALLE;
    return MODEL_NONE;
}

void model_from_checkpoint(ckpt_model *cm, ckpt_reader *r, model_kind kind, const char *config_name, int max_batch) {
    memset(cm, 0, sizeof *cm);
    cm->kind = kind;
    cm->norm = r->norm;
    config_load_string(&cm->c, r->config_yaml, config_name);
    const beit_config *c = &cm->c;
    switch (cm->kind) {
    case MODEL_DVAE: {
        dvae_dims dd;
        dvae_dims_from_config(&dd, c);
        params_init(&cm->own_pt);
        dvae_build(&cm->dvae, &cm->own_pt, &dd);
        params_alloc(&cm->own_pt);
        cm->pt = &cm->own_pt;
        ckpt_load_params(r, cm->pt);
        if (max_batch > 0) dvae_alloc(&cm->dvae, max_batch);
        break;
    }
    case MODEL_DALLE: {
        dalle_dims dd;
        dalle_dims_from_config(&dd, c);
        params_init(&cm->own_pt);
        dalle_build(&cm->dalle, &cm->own_pt, &dd);
        params_alloc(&cm->own_pt);
        cm->pt = &cm->own_pt;
        ckpt_load_params(r, cm->pt);
        free(cm->own_pt.grad); /* forward only: no gradients (200+ MB at the released size) */
        cm->own_pt.grad = NULL;
        if (max_batch > 0) dalle_alloc(&cm->dalle, max_batch);
        break;
    }
    case MODEL_PRETRAIN: {
        vit_dims vd;
        vit_dims_from_config(&vd, c, c->pretrain.target == BEIT_TARGET_PIXELS ? HEAD_PIXELS : HEAD_TOKENS);
        params_init(&cm->own_pt);
        vit_build(&cm->vit, &cm->own_pt, &vd);
        params_alloc(&cm->own_pt);
        if (max_batch > 0) vit_alloc(&cm->vit, max_batch);
        cm->pt = &cm->own_pt;
        ckpt_load_params(r, cm->pt);
        break;
    }
    case MODEL_FT_CLS:
    case MODEL_FT_SEG: {
        const int seg = cm->kind == MODEL_FT_SEG;
        const char *head = seg ? "decoder.cls.bias" : "head.bias";
        int64_t ncls = ckpt_param_dim(r, head, 0);
        if (ncls < 2) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no %s tensor (damaged checkpoint?)", r->path, head);
        ft_model_build(&cm->ft, c, seg, (int)ncls, max_batch);
        cm->pt = &cm->ft.pt;
        cm->ft.norm = r->norm;
        cm->ft.norm_src = r->path;
        ckpt_load_params(r, cm->pt);
        break;
    }
    default:
        beit_fatal(BEIT_EXIT_FAILURE, "model_from_checkpoint %s: no model kind given", r->path);
    }
}

void ckpt_model_free(ckpt_model *cm) {
    switch (cm->kind) {
    case MODEL_DVAE: dvae_free(&cm->dvae); break;
    case MODEL_DALLE: dalle_free(&cm->dalle); break;
    case MODEL_PRETRAIN: vit_free(&cm->vit); break;
    case MODEL_FT_CLS:
    case MODEL_FT_SEG: ft_model_free(&cm->ft); break;
    default: break;
    }
    if (cm->pt == &cm->own_pt) params_free(&cm->own_pt);
    memset(cm, 0, sizeof *cm);
}
