/* vit.h: the BEiT / ViT encoder with the masked-image-modeling heads, forward and backward
 * over a batch (llm.c style: every activation backward needs is kept in the model).
 *
 * Model (microsoft/unilm beit/modeling_pretrain.py + modeling_finetune.py, read at commits
 * 2312c6fb384689d4ffdbc65360bcce7148cfbeed / 006195f51b10ac44773cb62bad854fdfebb3c6c8; the
 * PyTorch twin is tools/torchref/beit.py):
 *
 *   patches  = patchify(images)                       [B,Np,K]   K = C*P*P, (c,py,px) order
 *   e        = patches @ patch_embed.proj.weight^T + b [B,Np,D]   (= the reference's Conv2d)
 *   e[b,n]   = mask_token          where mask[b,n]    (x*(1-w) + mask_token*w, exactly)
 *   x        = cat(cls_token, e) (+ pos_embed, VIT_VANILLA)       [B,T,D]    T = Np + 1
 *   block l: x += s_l[b] * gamma_1 * proj(attn(LN1(x), relbias))  (gamma = 1 if absent)
 *            x += s_l[b] * gamma_2 * fc2(gelu(fc1(LN2(x))))
 *            attn: qkv = LN1(x) @ qkv.weight^T + [q_bias | 0 | v_bias], scale hd^-0.5,
 *            logits + relbias (VIT_BEIT: one table shared by all blocks), softmax
 *   f        = LN(x)                                 [B,T,D]    "features" (eps 1e-6)
 *   MIM head on the masked rows only, in (batch, position) row-major order (= x[bool_masked_pos]):
 *     HEAD_TOKENS: logits = f[masked] @ lm_head.weight^T + b [M,V];  cross-entropy
 *     HEAD_PIXELS: pred   = f[masked] @ lm_head.weight^T + b [M,K];  squared error mean over K
 *   (all_tokens: every position instead of the masked ones -- the "predict all tokens" ablation)
 *
 * Variants (the reference's flags use_shared_rel_pos_bias / use_abs_pos_emb / init_values):
 *   VIT_BEIT    = unilm pre-training default: shared relative position bias, no pos_embed;
 *   VIT_VANILLA = the paper's ablation: learned absolute pos_embed, no relative bias.
 *   Both: LayerScale when layer_scale_init > 0 (0 = no gamma tensors at all: the paper's
 *   vanilla ViT is VIT_VANILLA with 0), q_bias / v_bias (the reference always passes
 *   qkv_bias=True to its MIM models).
 *   The pixel head keeps the reference's module name `lm_head` (only its out size changes).
 *
 * Parameter table (names and shapes = the PyTorch module's state_dict; the buffer
 * rel_pos_bias.relative_position_index is not a parameter: it is rebuilt by
 * relpos_index_build). Order = the order gradients become final in backward:
 *   lm_head.{weight,bias}, norm.{weight,bias},
 *   blocks.{L-1..0}.{gamma_2, mlp.fc2.{weight,bias}, mlp.fc1.{weight,bias}, norm2.{weight,bias},
 *                     gamma_1, attn.proj.{weight,bias}, attn.qkv.weight, attn.q_bias,
 *                     attn.v_bias, norm1.{weight,bias}},
 *   rel_pos_bias.relative_position_bias_table, pos_embed, cls_token, mask_token,
 *   patch_embed.proj.{weight,bias}.
 * decay: the reference's rule (optim_factory.get_parameter_groups with skip list
 *   no_weight_decay() = {pos_embed, cls_token}): 0 for 1-D tensors, *.bias, pos_embed,
 *   cls_token; 1 for everything else -- which includes mask_token [1,1,D] and the relative
 *   position bias table [R,NH]: unilm's pre-training decays both.
 * layer_id (get_num_layer_for_vit with L+2 layers): patch_embed, cls_token, mask_token,
 *   pos_embed 0; blocks.k.* k+1; rel_pos_bias, norm, lm_head L+1.
 *
 * Gradient flow: vit_forward zeroes the feature gradient dfeat [B,T,D]; heads ACCUMULATE
 * into it (vit_mim_backward, or a fine-tuning head through vit_features_grad); vit_backward
 * then takes it back through the final norm, the blocks and the embeddings, ACCUMULATING
 * into pt->grad (callers zero it, e.g. params_zero_grad once per step).
 */
#ifndef BEIT_VIT_H
#define BEIT_VIT_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { VIT_BEIT = 0, VIT_VANILLA = 1 } vit_variant;
typedef enum { HEAD_TOKENS = 0, HEAD_PIXELS = 1 } vit_head_type;

typedef struct {
    int img_size;   /* square images, img_size x img_size */
    int patch_size; /* P; img_size % P == 0 */
    int in_chans;   /* C */
    int embed_dim;  /* D */
    int depth;      /* L blocks */
    int num_heads;  /* NH; D % NH == 0 */
    int mlp_hidden; /* fc1 width (4 D in BEiT) */
    int vocab;      /* V (HEAD_TOKENS) */
    vit_variant variant;
    vit_head_type head;
    float layer_scale_init; /* gamma init (0.1 base, 1e-5 large), either variant; 0 = no LayerScale */
    float ln_eps;           /* 1e-6 */
    float init_std;         /* 0.02 */
    float init_trunc;       /* truncation of the init normal in units of init_std: unilm's
                               pre-training code cuts at +-1 std (a=-std, b=std) -> 1 */
    int all_tokens;         /* 1: the head runs on every patch position (ablation) */
    /* Pre-training model vs the fine-tuning encoder (unilm modeling_finetune):
     *   mim = 1: mask_token and lm_head exist (pre-training). mim = 0: neither (no mask may
     *            be passed to vit_forward; vit_mim_* must not be called): heads live in the task.
     *   rel_per_block = 1 (VIT_BEIT): every block has its own table
     *            blocks.k.attn.relative_position_bias_table (layer id k+1), initialised from
     *            the shared pre-training table when a pre-trained model is loaded;
     *            0: one shared rel_pos_bias.relative_position_bias_table (layer id L+1).
     *   final_norm = 0: no `norm` after the blocks; a.feat is the last block's output as is
     *            (mean pooling: the classifier has its own fc_norm, as the reference). */
    int mim, rel_per_block, final_norm;
} vit_dims;

/* BEiT-base-like defaults for the fields that are not sizes: VIT_BEIT, HEAD_TOKENS,
 * layer_scale_init 0.1, ln_eps 1e-6, init_std 0.02, init_trunc 1, all_tokens 0, mim 1,
 * rel_per_block 0, final_norm 1 (the pre-training model). Sizes 0. */
vit_dims vit_dims_defaults(void);

/* Parameter indices of one block in the table (-1 = absent). */
typedef struct {
    int norm1_w, norm1_b, qkv_w, q_bias, v_bias, proj_w, proj_b, gamma_1;
    int norm2_w, norm2_b, fc1_w, fc1_b, fc2_w, fc2_b, gamma_2;
    int rel; /* blocks.k.attn.relative_position_bias_table (rel_per_block) */
} vit_block_params;

/* Activations of the current batch ([B,...] with B <= max_batch). N = B*T rows. */
typedef struct {
    float *patches;         /* [B,Np,K] */
    float *resid;           /* [L+1][B,T,D]: resid[0] = embeddings (input of block 0),
                               resid[l+1] = output of block l (before the final norm) */
    float *xmid;            /* [L][B,T,D] after the attention residual */
    float *ln1, *ln1_mean, *ln1_rstd; /* [L][B,T,D], [L][B,T], [L][B,T] */
    float *qkv;             /* [L][B,T,3D] */
    float *att;             /* [L][B,NH,T,T] attention probabilities (kept: maps are rendered) */
    float *atty;            /* [L][B,T,D] attention output before proj */
    float *attproj;         /* [L][B,T,D] proj output (the residual branch before gamma) */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;  /* [L][B,T,H] fc1 output, GELU of it */
    float *mlpout;          /* [L][B,T,D] fc2 output */
    float *feat, *feat_mean, *feat_rstd; /* [B,T,D] final norm output, its statistics */
    float *dfeat;           /* [B,T,D] gradient w.r.t. feat (heads accumulate here) */
    float *relbias;         /* [NH,T,T] gathered relative bias (VIT_BEIT); [L][NH,T,T] with
                               rel_per_block */
    uint8_t *mask;          /* [B,Np] copy of the mask (0 if NULL was passed) */
    float *dp;              /* [L][2][max_batch] copy of the drop-path scales (attention, MLP) */
    int has_dp;
    int *rows;              /* [B*Np] head rows (indices into the [B*T] rows of feat) */
    int n_rows;
    /* backward workspace */
    float *dx, *dln, *dbr, *dqkv, *datty, *dh, *dh2, *drelbias, *att_scratch, *dqkv_bias;
    float *qkvb;            /* [3D] forward: [q_bias | 0 | v_bias] */
    /* MIM head buffers; grow to the largest row count seen (allocated on demand) */
    int head_cap;
    float *head_in;         /* [M,D] gathered feature rows */
    float *head_out;        /* [M,V] logits (overwritten by their gradient in vit_mim_backward)
                               or [M,K] predicted pixels */
    float *head_aux;        /* [M,V] probabilities or [M,K] pixel targets (copy) */
    float *head_dout;       /* [M,K] pixel head: gradient of pred (NULL for tokens) */
    float *dhead_in;        /* [M,D] */
    int *head_tgt;          /* [M] token targets (copy) */
    float *pix_scratch;     /* [B,Np,K] vit_pixel_targets */
} vit_acts;

typedef struct {
    vit_dims d;
    int gh, gw;   /* patch grid */
    int Np, T, K; /* patches, tokens (Np + 1), values per patch */
    int hd;       /* head dim */
    int head_out; /* V or K */
    /* parameter indices (-1 = absent) */
    int p_head_w, p_head_b, p_norm_w, p_norm_b, p_rel, p_pos, p_cls, p_mask, p_patch_w, p_patch_b;
    vit_block_params *blk; /* [L] */
    int *relpos_index;     /* [T*T] (VIT_BEIT) */
    int rel_rows;          /* R */
    vit_acts a;
    int max_batch, B;      /* allocated capacity, current batch */
} vit_model;

/* Check dims (beit_fatal_user(BEIT_EXIT_USAGE, ...) naming the bad field) and add every
 * tensor to pt (which must not be allocated yet) in the order above. m is overwritten. */
void vit_build(vit_model *m, param_table *pt, const vit_dims *d);
/* unilm's init, after params_alloc: truncated normal(0, init_std) cut at +-init_trunc std
 * for every Linear weight (qkv, proj, fc1, fc2, lm_head), patch_embed.proj.weight (a Conv2d
 * in the reference, same rule), cls_token, mask_token, pos_embed; biases (incl. q_bias,
 * v_bias) 0; LayerNorm 1 / 0; gamma_1/2 = layer_scale_init; the relative position table 0;
 * then blocks.{l-1}.attn.proj.weight and .mlp.fc2.weight divided by sqrt(2 l), l = 1..L.
 * Tensor `name` draws from rng_stream(seed, RNG_INIT, fnv1a64(name), 0), so a tensor's init
 * depends only on (seed, name, shape): not on the table order or the other tensors. */
void vit_init(const vit_model *m, param_table *pt, uint64_t seed);
/* Activations for batches of up to max_batch images (per-block slabs are strided by
 * max_batch; a smaller B uses the front of each slab). Memory is dominated by the kept
 * attention probabilities, L * max_batch * NH * T^2 floats. */
void vit_alloc(vit_model *m, int max_batch);
/* Frees what vit_build and vit_alloc allocated (not the parameter table) and zeroes m. */
void vit_free(vit_model *m);

/* Draw the drop-path scales [L][2][B] of a batch (vit_forward's layout): block l's rate is
 * p_l = drop_path * l / (L - 1) (0 for L = 1), each (block, branch) of sample b draws its own
 * uniform from rng_stream(seed, RNG_DROPPATH, step, sample_ids[b]) in (l, branch) order:
 * 0 when u < p_l (dropped), else 1 / (1 - p_l). A sample's draws depend only on (seed, step, its
 * id), never on the rank count or the micro-batch it falls in. */
void vit_droppath_draw(float *scales, int L, int B, double drop_path, uint64_t seed, int64_t step,
                       const int64_t *sample_ids);

/* Number of head rows for this mask (masked count, or B*Np with all_tokens). */
int vit_head_rows(const vit_model *m, const uint8_t *mask, int B);

/* images [B,C,H,W] (already normalised), mask [B,Np] (1 = masked; NULL = none),
 * droppath_scales [L][2][B] (per block l, branch 0 = attention / 1 = MLP, per sample: 0 or
 * 1/(1-p); NULL = all 1): each branch has its own keep mask, as timm's DropPath module called
 * once per branch.
 * Computes the final normed sequence a.feat [B,T,D] and zeroes a.dfeat. */
void vit_forward(vit_model *m, const param_table *pt, const float *images, const uint8_t *mask,
                 const float *droppath_scales, int B);
/* MIM head on the masked rows (in (batch, position) row-major order; n_masked must equal
 * vit_head_rows()). HEAD_TOKENS: targets[n_masked] in [0, V), pixel_targets unused (NULL);
 * HEAD_PIXELS: pixel_targets[n_masked, K], targets unused (NULL). *loss_sum = SUM over the
 * rows of the per-row loss (cross-entropy, or mean_k squared error), in double; *correct =
 * rows whose argmax is the target (0 for pixels). Either output pointer may be NULL. */
void vit_mim_forward(vit_model *m, const param_table *pt, const int32_t *targets, const float *pixel_targets,
                     int n_masked, double *loss_sum, int *correct);
/* Gradient of scale * loss_sum (scale = 1 / GLOBAL masked count, so data-parallel ranks
 * normalise by the global count): accumulates into pt->grad (lm_head) and a.dfeat. */
void vit_mim_backward(vit_model *m, param_table *pt, float scale);
/* Back from a.dfeat through the final norm, blocks and embeddings into pt->grad (+=).
 * B must be the batch of the last vit_forward. */
void vit_backward(vit_model *m, param_table *pt, int B);
/* Same, also adding dblock[k] ([B,T,D], may be NULL) as an extra gradient w.r.t. the output
 * of block k (vit_block_output(m, k)); dblock itself may be NULL. For heads that read
 * intermediate blocks (segmentation, probes). */
void vit_backward_ex(vit_model *m, param_table *pt, int B, const float *const *dblock);

/* Pixel-regression targets of the head rows: pixel_targets() of the images (nn.h; per-patch
 * normalisation when norm_per_patch) gathered at the masked positions (or all with
 * all_tokens) -> out[n_rows, K]. Returns n_rows. Needs vit_alloc. */
int vit_pixel_targets(vit_model *m, float *out, const float *images, const uint8_t *mask, int B,
                      int norm_per_patch);

/* ---- hooks for heads, probes, attention maps (valid after vit_forward) ---- */
/* output of block k ([B,T,D], before the final norm); k = -1 gives the embeddings */
const float *vit_block_output(const vit_model *m, int k);
/* final normed sequence [B,T,D] and its gradient buffer (accumulate into it before vit_backward) */
const float *vit_features(const vit_model *m);
float *vit_features_grad(vit_model *m);
/* attention probabilities of block l: [B,NH,T,T] */
const float *vit_attention(const vit_model *m, int l);

#endif
