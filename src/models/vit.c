/* vit.c: BEiT / ViT encoder + masked-image-modeling heads, forward and backward over a batch.
 * The model, the parameter table layout and the conventions are documented in
 * include/beit/vit.h; the PyTorch twin is tools/torchref/beit.py.
 *
 * Shapes: B images, Np = gh*gw patches, T = Np + 1 tokens, D channels, H = mlp_hidden,
 * NH heads of hd = D/NH, K = C*P*P values per patch, N = B*T rows. Per-block activations
 * live in [L][max_batch, ...] slabs, so block l's slice starts at l * (max_batch * size). */
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/vit.h"

#include "beit/nn.h"
#include "beit/prof.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

vit_dims vit_dims_defaults(void) {
    vit_dims d;
    memset(&d, 0, sizeof d);
    d.variant = VIT_BEIT;
    d.head = HEAD_TOKENS;
    d.layer_scale_init = 0.1f;
    d.ln_eps = 1e-6f;
    d.init_std = 0.02f;
    d.init_trunc = 1.0f;
    d.all_tokens = 0;
    d.mim = 1;
    d.rel_per_block = 0;
    d.final_norm = 1;
    return d;
}

/* ---------------------------------------------------------------------------------------- */
/* building the table                                                                         */

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* The reference's decay rule (optim_factory.get_parameter_groups, skip = no_weight_decay()):
 * no decay for 1-D tensors, *.bias, pos_embed, cls_token. */
static int add(param_table *pt, const char *name, int ndim, const int64_t *shape, int layer_id) {
    int decay = !(ndim == 1 || ends_with(name, ".bias") || strcmp(name, "pos_embed") == 0 ||
                  strcmp(name, "cls_token") == 0);
    return params_add(pt, name, ndim, shape, decay, layer_id);
}
static int add1(param_table *pt, const char *name, int64_t a, int layer_id) {
    int64_t s[1] = {a};
    return add(pt, name, 1, s, layer_id);
}
static int add2(param_table *pt, const char *name, int64_t a, int64_t b, int layer_id) {
    int64_t s[2] = {a, b};
    return add(pt, name, 2, s, layer_id);
}
static int add3(param_table *pt, const char *name, int64_t a, int64_t b, int64_t c, int layer_id) {
    int64_t s[3] = {a, b, c};
    return add(pt, name, 3, s, layer_id);
}

static void check_dims(const vit_dims *d) {
#define REQUIRE(cond, ...) \
    do { \
        if (!(cond)) beit_fatal_user(BEIT_EXIT_USAGE, "model config: " __VA_ARGS__); \
    } while (0)
    REQUIRE(d->img_size > 0 && d->patch_size > 0, "img_size = %d and patch_size = %d must be positive",
            d->img_size, d->patch_size);
    REQUIRE(d->img_size % d->patch_size == 0, "img_size = %d is not a multiple of patch_size = %d",
            d->img_size, d->patch_size);
    REQUIRE(d->in_chans > 0, "in_chans = %d must be positive", d->in_chans);
    REQUIRE(d->embed_dim > 0 && d->num_heads > 0, "embed_dim = %d and num_heads = %d must be positive",
            d->embed_dim, d->num_heads);
    REQUIRE(d->embed_dim % d->num_heads == 0, "embed_dim = %d is not a multiple of num_heads = %d",
            d->embed_dim, d->num_heads);
    REQUIRE(d->depth > 0, "depth = %d must be positive", d->depth);
    REQUIRE(d->mlp_hidden > 0, "mlp_hidden = %d must be positive", d->mlp_hidden);
    REQUIRE(d->variant == VIT_BEIT || d->variant == VIT_VANILLA, "unknown variant %d", (int)d->variant);
    REQUIRE(!d->mim || d->head == HEAD_TOKENS || d->head == HEAD_PIXELS, "unknown head type %d", (int)d->head);
    REQUIRE(!d->mim || d->head != HEAD_TOKENS || d->vocab > 0, "vocab = %d must be positive for the token head",
            d->vocab);
    REQUIRE(!d->rel_per_block || d->variant == VIT_BEIT, "per-block relative position tables need the beit variant");
    REQUIRE(d->layer_scale_init >= 0.0f && isfinite(d->layer_scale_init),
            "layer_scale_init = %g must be >= 0 (0 disables LayerScale)", (double)d->layer_scale_init);
    REQUIRE(d->ln_eps > 0.0f, "ln_eps = %g must be positive", (double)d->ln_eps);
    REQUIRE(d->init_std > 0.0f && isfinite(d->init_std), "init_std = %g must be positive", (double)d->init_std);
    REQUIRE(d->init_trunc >= 0.1f && isfinite(d->init_trunc),
            "init_trunc = %g (in units of init_std) must be >= 0.1", (double)d->init_trunc);
#undef REQUIRE
}

void vit_build(vit_model *m, param_table *pt, const vit_dims *d) {
    check_dims(d);
    memset(m, 0, sizeof *m);
    m->d = *d;
    const int D = d->embed_dim, L = d->depth, H = d->mlp_hidden, NH = d->num_heads;
    m->gh = m->gw = d->img_size / d->patch_size;
    m->Np = m->gh * m->gw;
    m->T = m->Np + 1;
    m->K = d->in_chans * d->patch_size * d->patch_size;
    m->hd = D / NH;
    m->head_out = !d->mim ? 0 : d->head == HEAD_TOKENS ? d->vocab : m->K;
    const int gamma = d->layer_scale_init > 0.0f; /* either arch: 0 disables LayerScale */
    const int top = L + 1; /* layer id of everything after the blocks */
    char name[PARAM_NAME_MAX];

    m->p_head_w = d->mim ? add2(pt, "lm_head.weight", m->head_out, D, top) : -1;
    m->p_head_b = d->mim ? add1(pt, "lm_head.bias", m->head_out, top) : -1;
    m->p_norm_w = d->final_norm ? add1(pt, "norm.weight", D, top) : -1;
    m->p_norm_b = d->final_norm ? add1(pt, "norm.bias", D, top) : -1;
    if (d->variant == VIT_BEIT) m->rel_rows = relpos_table_rows(m->gh, m->gw);
    m->blk = xcalloc((size_t)L, sizeof *m->blk);
    for (int l = L - 1; l >= 0; l--) {
        vit_block_params *p = &m->blk[l];
        const int id = l + 1;
#define NAME(s) (snprintf(name, sizeof name, "blocks.%d." s, l), name)
        p->gamma_2 = gamma ? add1(pt, NAME("gamma_2"), D, id) : -1;
        p->fc2_w = add2(pt, NAME("mlp.fc2.weight"), D, H, id);
        p->fc2_b = add1(pt, NAME("mlp.fc2.bias"), D, id);
        p->fc1_w = add2(pt, NAME("mlp.fc1.weight"), H, D, id);
        p->fc1_b = add1(pt, NAME("mlp.fc1.bias"), H, id);
        p->norm2_w = add1(pt, NAME("norm2.weight"), D, id);
        p->norm2_b = add1(pt, NAME("norm2.bias"), D, id);
        p->gamma_1 = gamma ? add1(pt, NAME("gamma_1"), D, id) : -1;
        p->proj_w = add2(pt, NAME("attn.proj.weight"), D, D, id);
        p->proj_b = add1(pt, NAME("attn.proj.bias"), D, id);
        p->rel = d->rel_per_block ? add2(pt, NAME("attn.relative_position_bias_table"), m->rel_rows, NH, id) : -1;
        p->qkv_w = add2(pt, NAME("attn.qkv.weight"), 3 * D, D, id);
        p->q_bias = add1(pt, NAME("attn.q_bias"), D, id);
        p->v_bias = add1(pt, NAME("attn.v_bias"), D, id);
        p->norm1_w = add1(pt, NAME("norm1.weight"), D, id);
        p->norm1_b = add1(pt, NAME("norm1.bias"), D, id);
#undef NAME
    }
    m->p_rel = m->p_pos = -1;
    if (d->variant == VIT_BEIT) {
        if (!d->rel_per_block) m->p_rel = add2(pt, "rel_pos_bias.relative_position_bias_table", m->rel_rows, NH, top);
        m->relpos_index = xmalloc((size_t)m->T * m->T * sizeof(int));
        relpos_index_build(m->relpos_index, m->gh, m->gw);
    } else {
        m->p_pos = add3(pt, "pos_embed", 1, m->T, D, 0);
    }
    m->p_cls = add3(pt, "cls_token", 1, 1, D, 0);
    m->p_mask = d->mim ? add3(pt, "mask_token", 1, 1, D, 0) : -1;
    int64_t pw[4] = {D, d->in_chans, d->patch_size, d->patch_size};
    m->p_patch_w = add(pt, "patch_embed.proj.weight", 4, pw, 0);
    m->p_patch_b = add1(pt, "patch_embed.proj.bias", D, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* init                                                                                       */

static void fill_const(const param_table *pt, int i, float v) {
    if (i < 0) return;
    float *x = params_data(pt, i);
    for (size_t k = 0; k < pt->t[i].numel; k++) x[k] = v;
}

/* normal(0, std) truncated to [-c std, c std] by rejection (c = 2 is rng_trunc_normal) */
static void fill_trunc(const param_table *pt, int i, uint64_t seed, float std, float c) {
    if (i < 0) return;
    rng_t r = rng_init_stream(seed, pt->t[i].name);
    float *x = params_data(pt, i);
    for (size_t k = 0; k < pt->t[i].numel; k++) {
        float z;
        do z = rng_normal(&r);
        while (!(z >= -c && z <= c));
        x[k] = z * std;
    }
}

void vit_init(const vit_model *m, param_table *pt, uint64_t seed) {
    if (!pt->data) beit_fatal(BEIT_EXIT_FAILURE, "vit_init: parameters not allocated");
    const float sd = m->d.init_std, c = m->d.init_trunc;
    fill_trunc(pt, m->p_head_w, seed, sd, c);
    fill_const(pt, m->p_head_b, 0.0f);
    fill_const(pt, m->p_norm_w, 1.0f);
    fill_const(pt, m->p_norm_b, 0.0f);
    for (int l = 0; l < m->d.depth; l++) {
        const vit_block_params *p = &m->blk[l];
        fill_const(pt, p->norm1_w, 1.0f);
        fill_const(pt, p->norm1_b, 0.0f);
        fill_const(pt, p->norm2_w, 1.0f);
        fill_const(pt, p->norm2_b, 0.0f);
        fill_trunc(pt, p->qkv_w, seed, sd, c);
        fill_const(pt, p->q_bias, 0.0f);
        fill_const(pt, p->v_bias, 0.0f);
        fill_trunc(pt, p->proj_w, seed, sd, c);
        fill_const(pt, p->proj_b, 0.0f);
        fill_trunc(pt, p->fc1_w, seed, sd, c);
        fill_const(pt, p->fc1_b, 0.0f);
        fill_trunc(pt, p->fc2_w, seed, sd, c);
        fill_const(pt, p->fc2_b, 0.0f);
        fill_const(pt, p->gamma_1, m->d.layer_scale_init);
        fill_const(pt, p->gamma_2, m->d.layer_scale_init);
        fill_const(pt, p->rel, 0.0f);
        /* fix_init_weight: rescale the residual-branch outputs by 1/sqrt(2 l), l 1-based */
        const float div = (float)sqrt(2.0 * (l + 1));
        float *w = params_data(pt, p->proj_w);
        for (size_t k = 0; k < pt->t[p->proj_w].numel; k++) w[k] /= div;
        w = params_data(pt, p->fc2_w);
        for (size_t k = 0; k < pt->t[p->fc2_w].numel; k++) w[k] /= div;
    }
    fill_const(pt, m->p_rel, 0.0f);
    fill_trunc(pt, m->p_pos, seed, sd, c);
    fill_trunc(pt, m->p_cls, seed, sd, c);
    fill_trunc(pt, m->p_mask, seed, sd, c);
    fill_trunc(pt, m->p_patch_w, seed, sd, c);
    fill_const(pt, m->p_patch_b, 0.0f);
}

/* ---------------------------------------------------------------------------------------- */
/* activations                                                                                */

void vit_alloc(vit_model *m, int max_batch) {
    if (max_batch < 1) beit_fatal(BEIT_EXIT_FAILURE, "vit_alloc: max_batch %d < 1", max_batch);
    vit_acts *a = &m->a;
    const size_t mb = (size_t)max_batch, L = (size_t)m->d.depth, T = (size_t)m->T, D = (size_t)m->d.embed_dim,
                 H = (size_t)m->d.mlp_hidden, NH = (size_t)m->d.num_heads, Np = (size_t)m->Np, K = (size_t)m->K;
    const size_t BTD = mb * T * D, BT = mb * T, BTH = mb * T * H;
    m->max_batch = max_batch;
    a->patches = xalloc_floats(mb * Np * K);
    a->resid = xalloc_floats((L + 1) * BTD);
    a->xmid = xalloc_floats(L * BTD);
    a->ln1 = xalloc_floats(L * BTD);
    a->ln1_mean = xalloc_floats(L * BT);
    a->ln1_rstd = xalloc_floats(L * BT);
    a->qkv = xalloc_floats(L * 3 * BTD);
    a->att = xalloc_floats(L * mb * NH * T * T);
    a->atty = xalloc_floats(L * BTD);
    a->attproj = xalloc_floats(L * BTD);
    a->ln2 = xalloc_floats(L * BTD);
    a->ln2_mean = xalloc_floats(L * BT);
    a->ln2_rstd = xalloc_floats(L * BT);
    a->fch = xalloc_floats(L * BTH);
    a->fch_gelu = xalloc_floats(L * BTH);
    a->mlpout = xalloc_floats(L * BTD);
    a->feat = xalloc_floats(BTD);
    a->feat_mean = xalloc_floats(BT);
    a->feat_rstd = xalloc_floats(BT);
    a->dfeat = xalloc_floats(BTD);
    a->relbias = m->d.variant == VIT_BEIT ? xalloc_floats((m->d.rel_per_block ? L : 1) * NH * T * T) : NULL;
    a->drelbias = m->d.variant == VIT_BEIT ? xalloc_floats(NH * T * T) : NULL;
    a->mask = xcalloc(mb * Np, 1);
    a->dp = xalloc_floats(2 * L * mb);
    a->rows = xcalloc(mb * Np, sizeof(int));
    a->dx = xalloc_floats(BTD);
    a->dln = xalloc_floats(BTD);
    a->dbr = xalloc_floats(BTD);
    a->datty = xalloc_floats(BTD);
    a->dqkv = xalloc_floats(3 * BTD);
    a->dh = xalloc_floats(BTH);
    a->dh2 = xalloc_floats(BTH);
    a->att_scratch = xalloc_floats(attention_scratch_size(max_batch, m->T, m->d.embed_dim, m->d.num_heads));
    a->dqkv_bias = xalloc_floats(3 * D);
    a->qkvb = xalloc_floats(3 * D);
    a->pix_scratch = xalloc_floats(mb * Np * K);
}

void vit_free(vit_model *m) {
    vit_acts *a = &m->a;
    void *ptrs[] = {a->patches, a->resid, a->xmid, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att,
                    a->atty, a->attproj, a->ln2, a->ln2_mean, a->ln2_rstd, a->fch, a->fch_gelu, a->mlpout,
                    a->feat, a->feat_mean, a->feat_rstd, a->dfeat, a->relbias, a->drelbias, a->mask, a->dp,
                    a->rows, a->dx, a->dln, a->dbr, a->datty, a->dqkv, a->dh, a->dh2, a->att_scratch,
                    a->dqkv_bias, a->qkvb, a->pix_scratch, a->head_in, a->head_out, a->head_aux,
                    a->head_dout, a->dhead_in, a->head_tgt, m->blk, m->relpos_index};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) free(ptrs[i]);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------------------------- */
/* forward                                                                                    */

static int select_rows(const vit_model *m, int *rows, const uint8_t *mask, int B) {
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < m->Np; p++)
            if (m->d.all_tokens || (mask && mask[(size_t)b * m->Np + p])) {
                if (rows) rows[n] = b * m->T + 1 + p;
                n++;
            }
    return n;
}

int vit_head_rows(const vit_model *m, const uint8_t *mask, int B) { return select_rows(m, NULL, mask, B); }

/* per-block slice of a [L][max_batch * per] slab */
#define SLICE(buf, l, per) ((buf) + (size_t)(l) * (size_t)m->max_batch * (per))
#define P(i) ((i) >= 0 ? params_data(pt, (i)) : NULL)
#define G(i) ((i) >= 0 ? params_grad(pt, (i)) : NULL)

void vit_forward(vit_model *m, const param_table *pt, const float *images, const uint8_t *mask,
                 const float *droppath_scales, int B) {
    if (B < 1 || B > m->max_batch)
        beit_fatal(BEIT_EXIT_FAILURE, "vit_forward: batch %d outside 1..%d (vit_alloc)", B, m->max_batch);
    vit_acts *a = &m->a;
    const int D = m->d.embed_dim, L = m->d.depth, H = m->d.mlp_hidden, NH = m->d.num_heads, T = m->T,
              Np = m->Np, K = m->K, N = B * T;
    const size_t TD = (size_t)T * D, TH = (size_t)T * H; /* per-sample slab strides */
    const float scale = (float)(1.0 / sqrt((double)m->hd));
    m->B = B;
    if (mask && !m->d.mim) beit_fatal(BEIT_EXIT_FAILURE, "vit_forward: a mask, but the model has no mask_token");

    /* remember what backward needs: the mask, the drop-path scales, the head rows */
    if (mask) memcpy(a->mask, mask, (size_t)B * Np);
    else memset(a->mask, 0, (size_t)B * Np);
    a->has_dp = droppath_scales != NULL;
    for (int lb = 0; lb < 2 * L && a->has_dp; lb++) /* (block, branch) rows */
        memcpy(a->dp + (size_t)lb * m->max_batch, droppath_scales + (size_t)lb * B, (size_t)B * sizeof(float));
    a->n_rows = select_rows(m, a->rows, mask, B);

    /* embeddings: patchify + linear (the stride-P conv), mask substitution, CLS, pos_embed */
    PROF_BEGIN(PROF_EMBED);
    patchify_forward(a->patches, images, B, m->d.in_chans, m->d.img_size, m->d.img_size, m->d.patch_size);
    float *pe = a->dx; /* [B,Np,D] scratch (backward workspace is free during forward) */
    linear_forward(pe, a->patches, P(m->p_patch_w), P(m->p_patch_b), B * Np, K, D);
    float *x0 = a->resid;
    const float *mtok = P(m->p_mask), *pos = P(m->p_pos);
    for (int b = 0; b < B; b++) {
        float *xb = x0 + (size_t)b * TD;
        memcpy(xb, params_data(pt, m->p_cls), (size_t)D * sizeof(float));
        for (int p = 0; p < Np; p++) {
            const float *src = a->mask[(size_t)b * Np + p] ? mtok : pe + ((size_t)b * Np + p) * D;
            memcpy(xb + (size_t)(1 + p) * D, src, (size_t)D * sizeof(float));
        }
        if (pos)
            for (size_t i = 0; i < TD; i++) xb[i] += pos[i];
    }
    PROF_END(PROF_EMBED);
    if (a->relbias && !m->d.rel_per_block) relpos_bias_forward(a->relbias, P(m->p_rel), m->relpos_index, NH, T);

    for (int l = 0; l < L; l++) {
        const vit_block_params *p = &m->blk[l];
        const float *x = SLICE(a->resid, l, TD);
        float *xout = SLICE(a->resid, l + 1, TD), *xmid = SLICE(a->xmid, l, TD);
        float *ln1 = SLICE(a->ln1, l, TD), *qkv = SLICE(a->qkv, l, 3 * TD), *atty = SLICE(a->atty, l, TD);
        float *att = SLICE(a->att, l, (size_t)NH * T * T), *attproj = SLICE(a->attproj, l, TD);
        float *ln2 = SLICE(a->ln2, l, TD), *fch = SLICE(a->fch, l, TH), *fchg = SLICE(a->fch_gelu, l, TH);
        float *mlpout = SLICE(a->mlpout, l, TD);
        /* drop-path scales of the attention (s_att) and MLP (s_mlp) branches */
        const float *s_att = a->has_dp ? a->dp + (size_t)(2 * l) * m->max_batch : NULL;
        const float *s_mlp = a->has_dp ? a->dp + (size_t)(2 * l + 1) * m->max_batch : NULL;

        layernorm_forward(ln1, SLICE(a->ln1_mean, l, (size_t)T), SLICE(a->ln1_rstd, l, (size_t)T), x, P(p->norm1_w),
                          P(p->norm1_b), N, D, m->d.ln_eps);
        /* qkv bias = [q_bias | 0 | v_bias] (k has no bias) */
        memcpy(a->qkvb, params_data(pt, p->q_bias), (size_t)D * sizeof(float));
        memset(a->qkvb + D, 0, (size_t)D * sizeof(float));
        memcpy(a->qkvb + 2 * D, params_data(pt, p->v_bias), (size_t)D * sizeof(float));
        linear_forward(qkv, ln1, P(p->qkv_w), a->qkvb, N, D, 3 * D);
        float *rb = a->relbias;
        if (p->rel >= 0) {
            rb = a->relbias + (size_t)l * NH * T * T;
            relpos_bias_forward(rb, P(p->rel), m->relpos_index, NH, T);
        }
        attention_forward(atty, att, qkv, rb, B, T, D, NH, scale);
        linear_forward(attproj, atty, P(p->proj_w), P(p->proj_b), N, D, D);
        residual_forward(xmid, x, attproj, P(p->gamma_1), s_att, B, T, D);

        layernorm_forward(ln2, SLICE(a->ln2_mean, l, (size_t)T), SLICE(a->ln2_rstd, l, (size_t)T), xmid, P(p->norm2_w),
                          P(p->norm2_b), N, D, m->d.ln_eps);
        linear_forward(fch, ln2, P(p->fc1_w), P(p->fc1_b), N, D, H);
        gelu_forward(fchg, fch, (size_t)N * H);
        linear_forward(mlpout, fchg, P(p->fc2_w), P(p->fc2_b), N, H, D);
        residual_forward(xout, xmid, mlpout, P(p->gamma_2), s_mlp, B, T, D);
    }
    if (m->d.final_norm)
        layernorm_forward(a->feat, a->feat_mean, a->feat_rstd, SLICE(a->resid, L, TD), P(m->p_norm_w),
                          P(m->p_norm_b), N, D, m->d.ln_eps);
    else
        memcpy(a->feat, SLICE(a->resid, L, TD), (size_t)N * D * sizeof(float));
    memset(a->dfeat, 0, (size_t)N * D * sizeof(float));
}

/* ---------------------------------------------------------------------------------------- */
/* MIM head                                                                                   */

static void head_reserve(vit_model *m, int M) {
    vit_acts *a = &m->a;
    if (M <= a->head_cap) return;
    const size_t D = (size_t)m->d.embed_dim, O = (size_t)m->head_out;
    free(a->head_in);
    free(a->head_out);
    free(a->head_aux);
    free(a->head_dout);
    free(a->dhead_in);
    free(a->head_tgt);
    a->head_in = xalloc_floats((size_t)M * D);
    a->dhead_in = xalloc_floats((size_t)M * D);
    a->head_out = xalloc_floats((size_t)M * O);
    a->head_aux = xalloc_floats((size_t)M * O);
    /* tokens: d logits overwrite the logits (not needed by backward); pixels keep pred */
    a->head_dout = m->d.head == HEAD_PIXELS ? xalloc_floats((size_t)M * O) : NULL;
    a->head_tgt = xcalloc((size_t)M, sizeof(int));
    a->head_cap = M;
}

void vit_mim_forward(vit_model *m, const param_table *pt, const int32_t *targets, const float *pixel_targets,
                     int n_masked, double *loss_sum, int *correct) {
    vit_acts *a = &m->a;
    if (n_masked != a->n_rows)
        beit_fatal(BEIT_EXIT_MISMATCH, "MIM head: %d targets for %d %s positions in the batch", n_masked,
                   a->n_rows, m->d.all_tokens ? "patch" : "masked");
    const int M = n_masked, D = m->d.embed_dim, O = m->head_out;
    double loss = 0;
    int ok = 0;
    if (M > 0) {
        head_reserve(m, M);
        gather_rows(a->head_in, a->feat, a->rows, M, D);
        linear_forward(a->head_out, a->head_in, P(m->p_head_w), P(m->p_head_b), M, D, O);
        if (m->d.head == HEAD_TOKENS) {
            for (int i = 0; i < M; i++) {
                if (targets[i] < 0 || targets[i] >= O)
                    beit_fatal(BEIT_EXIT_MISMATCH, "MIM head: token target %d of masked row %d is outside [0, V=%d)",
                               (int)targets[i], i, O);
                a->head_tgt[i] = targets[i];
            }
            ok = argmax_correct(a->head_out, a->head_tgt, M, O);
            loss = crossentropy_forward(a->head_aux, a->head_out, a->head_tgt, M, O, 0.0f);
        } else {
            memcpy(a->head_aux, pixel_targets, (size_t)M * O * sizeof(float));
            loss = mse_forward(a->head_out, a->head_aux, (size_t)M * O) / O;
        }
    }
    if (loss_sum) *loss_sum = loss;
    if (correct) *correct = ok;
}

void vit_mim_backward(vit_model *m, param_table *pt, float scale) {
    vit_acts *a = &m->a;
    const int M = a->n_rows, D = m->d.embed_dim, O = m->head_out;
    if (M == 0) return;
    float *dout;
    if (m->d.head == HEAD_TOKENS) {
        dout = a->head_out; /* the logits are dead now */
        memset(dout, 0, (size_t)M * O * sizeof(float));
        crossentropy_backward(dout, a->head_aux, a->head_tgt, M, O, 0.0f, scale);
    } else {
        dout = a->head_dout;
        memset(dout, 0, (size_t)M * O * sizeof(float));
        mse_backward(dout, a->head_out, a->head_aux, (size_t)M * O, scale / (float)O);
    }
    memset(a->dhead_in, 0, (size_t)M * D * sizeof(float));
    linear_backward(a->dhead_in, G(m->p_head_w), G(m->p_head_b), dout, a->head_in, P(m->p_head_w), M, D, O);
    gather_rows_backward(a->dfeat, a->dhead_in, a->rows, M, D);
}

int vit_pixel_targets(vit_model *m, float *out, const float *images, const uint8_t *mask, int B,
                      int norm_per_patch) {
    if (B < 1 || B > m->max_batch)
        beit_fatal(BEIT_EXIT_FAILURE, "vit_pixel_targets: batch %d outside 1..%d", B, m->max_batch);
    const int K = m->K, Np = m->Np;
    pixel_targets(m->a.pix_scratch, images, B, m->d.in_chans, m->d.img_size, m->d.img_size, m->d.patch_size,
                  norm_per_patch);
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < Np; p++)
            if (m->d.all_tokens || (mask && mask[(size_t)b * Np + p]))
                memcpy(out + (size_t)n++ * K, m->a.pix_scratch + ((size_t)b * Np + p) * K, (size_t)K * sizeof(float));
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* backward                                                                                   */

void vit_backward(vit_model *m, param_table *pt, int B) { vit_backward_ex(m, pt, B, NULL); }

void vit_backward_ex(vit_model *m, param_table *pt, int B, const float *const *dblock) {
    if (B != m->B) beit_fatal(BEIT_EXIT_FAILURE, "vit_backward: batch %d, but the forward ran %d", B, m->B);
    vit_acts *a = &m->a;
    const int D = m->d.embed_dim, L = m->d.depth, H = m->d.mlp_hidden, NH = m->d.num_heads, T = m->T,
              Np = m->Np, K = m->K, N = B * T;
    const size_t TD = (size_t)T * D, TH = (size_t)T * H; /* per-sample slab strides */
    const size_t nd = (size_t)N * D, nh = (size_t)N * H;
    const float scale = (float)(1.0 / sqrt((double)m->hd));
    float *dx = a->dx; /* running gradient of the residual stream */

    /* final norm */
    if (m->d.final_norm) {
        memset(dx, 0, nd * sizeof(float));
        layernorm_backward(dx, G(m->p_norm_w), G(m->p_norm_b), a->dfeat, SLICE(a->resid, L, TD), P(m->p_norm_w),
                           a->feat_mean, a->feat_rstd, N, D);
    } else {
        memcpy(dx, a->dfeat, nd * sizeof(float));
    }
    params_grad_ready(pt, m->p_norm_b); /* heads and the final norm are final (hook: params.h) */
    if (a->drelbias) memset(a->drelbias, 0, (size_t)NH * T * T * sizeof(float));

    for (int l = L - 1; l >= 0; l--) {
        const vit_block_params *p = &m->blk[l];
        if (dblock && dblock[l])
            for (size_t i = 0; i < nd; i++) dx[i] += dblock[l][i];
        const float *x = SLICE(a->resid, l, TD), *xmid = SLICE(a->xmid, l, TD);
        const float *ln1 = SLICE(a->ln1, l, TD), *qkv = SLICE(a->qkv, l, 3 * TD), *atty = SLICE(a->atty, l, TD);
        const float *att = SLICE(a->att, l, (size_t)NH * T * T), *attproj = SLICE(a->attproj, l, TD);
        const float *ln2 = SLICE(a->ln2, l, TD), *fch = SLICE(a->fch, l, TH), *fchg = SLICE(a->fch_gelu, l, TH);
        const float *mlpout = SLICE(a->mlpout, l, TD);
        /* drop-path scales of the attention (s_att) and MLP (s_mlp) branches */
        const float *s_att = a->has_dp ? a->dp + (size_t)(2 * l) * m->max_batch : NULL;
        const float *s_mlp = a->has_dp ? a->dp + (size_t)(2 * l + 1) * m->max_batch : NULL;

        /* MLP branch: xout = xmid + s * gamma_2 * fc2(gelu(fc1(LN2(xmid)))) */
        memset(a->dbr, 0, nd * sizeof(float));
        residual_backward(NULL, a->dbr, G(p->gamma_2), dx, mlpout, P(p->gamma_2), s_mlp, B, T, D);
        memset(a->dh2, 0, nh * sizeof(float));
        linear_backward(a->dh2, G(p->fc2_w), G(p->fc2_b), a->dbr, fchg, P(p->fc2_w), N, H, D);
        memset(a->dh, 0, nh * sizeof(float));
        gelu_backward(a->dh, a->dh2, fch, nh);
        memset(a->dln, 0, nd * sizeof(float));
        linear_backward(a->dln, G(p->fc1_w), G(p->fc1_b), a->dh, ln2, P(p->fc1_w), N, D, H);
        layernorm_backward(dx, G(p->norm2_w), G(p->norm2_b), a->dln, xmid, P(p->norm2_w), SLICE(a->ln2_mean, l, (size_t)T),
                           SLICE(a->ln2_rstd, l, (size_t)T), N, D);

        /* attention branch: xmid = x + s * gamma_1 * proj(attn(LN1(x))) */
        memset(a->dbr, 0, nd * sizeof(float));
        residual_backward(NULL, a->dbr, G(p->gamma_1), dx, attproj, P(p->gamma_1), s_att, B, T, D);
        memset(a->datty, 0, nd * sizeof(float));
        linear_backward(a->datty, G(p->proj_w), G(p->proj_b), a->dbr, atty, P(p->proj_w), N, D, D);
        memset(a->dqkv, 0, 3 * nd * sizeof(float));
        if (p->rel >= 0) memset(a->drelbias, 0, (size_t)NH * T * T * sizeof(float));
        attention_backward(a->dqkv, a->drelbias, a->datty, qkv, att, a->att_scratch, B, T, D, NH, scale);
        if (p->rel >= 0) relpos_bias_backward(G(p->rel), a->drelbias, m->relpos_index, NH, T);
        memset(a->dqkv_bias, 0, 3 * (size_t)D * sizeof(float));
        memset(a->dln, 0, nd * sizeof(float));
        linear_backward(a->dln, G(p->qkv_w), a->dqkv_bias, a->dqkv, ln1, P(p->qkv_w), N, D, 3 * D);
        float *dq = G(p->q_bias), *dv = G(p->v_bias);
        for (int c = 0; c < D; c++) {
            dq[c] += a->dqkv_bias[c];
            dv[c] += a->dqkv_bias[2 * D + c];
        }
        layernorm_backward(dx, G(p->norm1_w), G(p->norm1_b), a->dln, x, P(p->norm1_w), SLICE(a->ln1_mean, l, (size_t)T),
                           SLICE(a->ln1_rstd, l, (size_t)T), N, D);
        params_grad_ready(pt, p->norm1_b); /* block l's tensors end with norm1.bias */
    }
    if (a->drelbias && m->p_rel >= 0) relpos_bias_backward(G(m->p_rel), a->drelbias, m->relpos_index, NH, T);
    params_grad_ready(pt, m->p_rel);

    /* embeddings: dx is the gradient of resid[0] */
    PROF_BEGIN(PROF_EMBED);
    float *dpos = G(m->p_pos), *dcls = G(m->p_cls), *dmask = G(m->p_mask);
    float *dpe = a->dln; /* [B,Np,D] */
    for (int b = 0; b < B; b++) {
        const float *db = dx + (size_t)b * TD;
        if (dpos)
            for (size_t i = 0; i < TD; i++) dpos[i] += db[i];
        for (int c = 0; c < D; c++) dcls[c] += db[c];
        for (int q = 0; q < Np; q++) {
            const float *src = db + (size_t)(1 + q) * D;
            float *dst = dpe + ((size_t)b * Np + q) * D;
            if (dmask && a->mask[(size_t)b * Np + q]) {
                for (int c = 0; c < D; c++) dmask[c] += src[c];
                memset(dst, 0, (size_t)D * sizeof(float));
            } else {
                memcpy(dst, src, (size_t)D * sizeof(float));
            }
        }
    }
    linear_backward(NULL, G(m->p_patch_w), G(m->p_patch_b), dpe, a->patches, P(m->p_patch_w), B * Np, K, D);
    PROF_END(PROF_EMBED);
    params_grad_ready(pt, m->p_patch_b); /* the embeddings: the last tensors of the table */
}

/* ---------------------------------------------------------------------------------------- */
/* hooks                                                                                      */

const float *vit_block_output(const vit_model *m, int k) {
    if (k < -1 || k >= m->d.depth) beit_fatal(BEIT_EXIT_FAILURE, "vit_block_output: block %d outside -1..%d", k, m->d.depth - 1);
    return m->a.resid + (size_t)(k + 1) * m->max_batch * m->T * m->d.embed_dim;
}
const float *vit_features(const vit_model *m) { return m->a.feat; }
float *vit_features_grad(vit_model *m) { return m->a.dfeat; }
const float *vit_attention(const vit_model *m, int l) {
    if (l < 0 || l >= m->d.depth) beit_fatal(BEIT_EXIT_FAILURE, "vit_attention: block %d outside 0..%d", l, m->d.depth - 1);
    return m->a.att + (size_t)l * m->max_batch * m->d.num_heads * m->T * m->T;
}

void vit_droppath_draw(float *scales, int L, int B, double drop_path, uint64_t seed, int64_t step,
                       const int64_t *sample_ids) {
    for (int b = 0; b < B; b++) {
        rng_t r = rng_stream(seed, RNG_DROPPATH, (uint64_t)step, (uint32_t)sample_ids[b]);
        for (int l = 0; l < L; l++) {
            double p = L > 1 ? drop_path * l / (L - 1) : 0;
            for (int br = 0; br < 2; br++) {
                float u = rng_uniform(&r);
                scales[((size_t)l * 2 + br) * B + b] = u < p ? 0.0f : (float)(1.0 / (1.0 - p));
            }
        }
    }
}
