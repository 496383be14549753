/* The fine-tuning model: the ViT encoder (unilm modeling_finetune) with a classifier or a
 * segmentation decoder, built from a job, initialised from a pre-training checkpoint, forward
 * and backward (include/beit/ftmodel.h). */
#include "beit/ftmodel.h"

#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/log.h"
#include "beit/modelcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ft_vit_dims(vit_dims *d, const beit_config *c, int seg) {
    vit_dims_from_config(d, c, HEAD_TOKENS);
    d->mim = 0;
    d->rel_per_block = d->variant == VIT_BEIT;
    d->final_norm = !seg && c->finetune.pool == BEIT_POOL_CLS;
    d->init_trunc = 2.0f / d->init_std; /* timm's trunc_normal_(std=.02): a=-2, b=2 absolute */
}

void ft_model_build(ft_model *f, const beit_config *c, int seg, int ncls, int max_batch) {
    memset(f, 0, sizeof *f);
    f->seg = seg;
    f->ncls = ncls;
    f->max_batch = max_batch;
    vit_dims vd;
    ft_vit_dims(&vd, c, seg);
    const int L = vd.depth, T = (vd.img_size / vd.patch_size) * (vd.img_size / vd.patch_size) + 1;
    params_init(&f->pt);
    /* the head's gradients are final first: it goes first in the table */
    if (!seg) {
        clshead_build(&f->h, &f->pt, vd.embed_dim, T, ncls, c->finetune.pool == BEIT_POOL_CLS ? CLSHEAD_POOL_CLS
                                                                                               : CLSHEAD_POOL_MEAN, L + 1);
    } else {
        f->ntaps = c->finetune.seg_blocks.n;
        for (int i = 0; i < f->ntaps; i++) f->tap_block[i] = c->finetune.seg_blocks.v[i] - 1;
        segdec_dims sdd = {f->ntaps, vd.embed_dim, vd.img_size / vd.patch_size, vd.img_size / vd.patch_size,
                           vd.patch_size, c->finetune.decoder_dim, ncls, 1e-6f};
        segdec_build(&f->sd, &f->pt, &sdd, L + 1);
    }
    vit_build(&f->m, &f->pt, &vd);
    params_alloc(&f->pt);
    vit_init(&f->m, &f->pt, (uint64_t)c->seed);
    if (!seg) clshead_init(&f->h, &f->pt, (uint64_t)c->seed, (float)c->finetune.head_init_scale);
    else segdec_init(&f->sd, &f->pt, (uint64_t)c->seed);
    params_set_layer_decay(&f->pt, c->finetune.layer_decay, L);
    vit_alloc(&f->m, max_batch);
    if (!seg) {
        clshead_alloc(&f->h, max_batch);
    } else {
        segdec_alloc(&f->sd, max_batch);
        f->dtaps = xalloc_floats((size_t)f->ntaps * max_batch * f->m.T * vd.embed_dim);
        f->seg_dlogits = xalloc_floats((size_t)max_batch * ncls * vd.img_size * vd.img_size);
    }
}

void ft_model_free(ft_model *f) {
    if (!f->seg) clshead_free(&f->h);
    else segdec_free(&f->sd);
    vit_free(&f->m);
    params_free(&f->pt);
    free(f->dtaps);
    free(f->seg_dlogits);
    memset(f, 0, sizeof *f);
}

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

void ft_model_load_init(ft_model *f, const char *path) {
    ckpt_reader r;
    ckpt_open(&r, path);
    const char *want = f->seg ? FT_KIND_SEG : FT_KIND_CLS;
    const int pretrained = strcmp(r.kind, "beit-pretrain") == 0;
    if (!pretrained && strcmp(r.kind, want) != 0)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: a '%s' checkpoint cannot initialise this %s job (it takes a pre-training checkpoint "
                        "from beit pretrain, or a '%s' checkpoint)",
                        path, r.kind, f->seg ? "segmentation" : "classification", want);
    int loaded = 0, copied = 0, fresh = 0, blk;
    char rest[PARAM_NAME_MAX];
    for (int i = 0; i < f->pt.n; i++) {
        const param_info *p = &f->pt.t[i];
        float *dst = params_data(&f->pt, i);
        const int head = starts_with(p->name, "head.") || starts_with(p->name, "fc_norm.") ||
                         starts_with(p->name, "decoder.");
        if (pretrained && head) {
            fresh++;
            continue;
        }
        if (ckpt_read_param(&r, p->name, p, dst)) {
            loaded++;
            continue;
        }
        if (pretrained && sscanf(p->name, "blocks.%d.%63s", &blk, rest) == 2 &&
            strcmp(rest, "attn.relative_position_bias_table") == 0 &&
            ckpt_read_param(&r, "rel_pos_bias.relative_position_bias_table", p, dst)) {
            copied++;
            continue;
        }
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: no tensor %s (the fine-tuning model needs it; the checkpoint is a '%s' of another "
                        "architecture: compare model.* of the two jobs)",
                        path, p->name, r.kind);
    }
    f->norm = r.norm;
    f->norm_src = path;
    beit_log("init from %s ('%s', step %lld): %d tensors loaded, %d per-block relative position tables copied from "
             "the shared one, %d new head tensors",
             path, r.kind, (long long)r.step, loaded, copied, fresh);
    ckpt_close(&r);
}

void ft_model_forward(ft_model *f, const float *x, const float *dp, int B) {
    vit_forward(&f->m, &f->pt, x, NULL, dp, B);
    if (!f->seg) {
        clshead_forward(&f->h, &f->pt, vit_features(&f->m), B);
    } else {
        const float *taps[FT_MAX_TAPS];
        for (int i = 0; i < f->ntaps; i++) taps[i] = vit_block_output(&f->m, f->tap_block[i]);
        segdec_forward(&f->sd, &f->pt, taps, B);
    }
}

/* gradient of scale * (summed loss of the last forward) into pt->grad */
void ft_model_backward(ft_model *f, float scale, int B) {
    vit_model *m = &f->m;
    if (!f->seg) {
        clshead_backward(&f->h, &f->pt, vit_features_grad(m), scale);
        vit_backward(m, &f->pt, B);
        return;
    }
    const size_t per = (size_t)B * m->T * m->d.embed_dim, stride = (size_t)f->max_batch * m->T * m->d.embed_dim;
    float *dt[FT_MAX_TAPS];
    for (int i = 0; i < f->ntaps; i++) {
        dt[i] = f->dtaps + i * stride;
        memset(dt[i], 0, per * sizeof(float));
    }
    segdec_backward(&f->sd, &f->pt, f->seg_dlogits, dt, B);
    /* per block, the sum of its taps' gradients (a block may be tapped twice) */
    const float *dblock[64] = {0};
    if (m->d.depth > 64) beit_fatal(BEIT_EXIT_FAILURE, "segmentation: depth %d > 64", m->d.depth);
    for (int i = 0; i < f->ntaps; i++) {
        int k = f->tap_block[i];
        if (!dblock[k]) {
            dblock[k] = dt[i];
        } else {
            float *acc = (float *)dblock[k];
            for (size_t j = 0; j < per; j++) acc[j] += dt[i][j];
        }
    }
    vit_backward_ex(m, &f->pt, B, dblock);
}
