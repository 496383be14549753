/* segdec.h: a light semantic-segmentation decoder on ViT block outputs, forward and backward
 * over a batch (llm.c style: every activation backward needs is kept in the struct), plus the
 * per-pixel cross-entropy and the segmentation metric (confusion matrix, mIoU, pixel accuracy).
 * The PyTorch twin is tools/torchref/segdec.py (SegDecoder).
 *
 * Model (B images, ntaps taps, T = gh*gw + 1 tokens of D channels, Np = gh*gw, S = gh*P):
 *   taps[i]  [B,T,D]  ViT block outputs (residual stream, before any norm); row 0 = CLS is
 *                     ignored (its gradient is left untouched)
 *   u_i      = LayerNorm_i(taps[i][:,1:,:])        [B,Np,D]   eps ln_eps (1e-6)
 *   z_i      = u_i @ proj_i.weight^T + proj_i.bias  [B,Np,E]
 *   s        = sum_i z_i, seen as an image          [B,E,gh,gw]   (patch n = y*gw + x)
 *   h1       = ReLU(ConvTranspose2d(E,E,k=P,stride=P)(s))          [B,E,S,S]
 *   h2       = ReLU(Conv2d(E,E,3,padding=1)(h1))                   [B,E,S,S]
 *   logits   = Conv2d(E,NC,1)(h2)                                  [B,NC,S,S]
 *
 * Parameter table (names = the twin's state_dict under the prefix `decoder.`), in the order
 * the gradients become final in backward:
 *   decoder.cls.{weight [NC,E,1,1], bias [NC]},
 *   decoder.conv.{weight [E,E,3,3], bias [E]},
 *   decoder.up.{weight [E,E,P,P] (ConvTranspose2d layout [Cin,Cout,k,k]), bias [E]},
 *   for i = ntaps-1 .. 0: decoder.taps.{i}.proj.{weight [E,D], bias [E]},
 *                         decoder.taps.{i}.norm.{weight [D], bias [D]}.
 * decay: 0 for 1-D tensors and *.bias, 1 otherwise. layer_id: the caller's (BEiT fine-tuning
 * passes L+1, the head's layer-decay id).
 *
 * Init (segdec_init): tensor `name` draws from rng_stream(seed, RNG_INIT, fnv1a64(name), 0),
 * so its values depend only on (seed, name), not on ntaps or the table order:
 *   proj weights: normal(0, 0.02) truncated at +-2 std (rng_trunc_normal);
 *   up / conv / cls weights: normal(0, sqrt(2 / fan_in)) (He / kaiming_normal_, fan_in mode,
 *     ReLU gain), fan_in = the number of inputs summed into one output value: E*9 for conv,
 *     E for cls, and E for up (stride == kernel, so each output pixel sees one input pixel
 *     of every input channel);
 *   LayerNorm weight 1, every bias 0.
 *
 * Gradients ACCUMULATE (+=) into pt->grad and into the tap gradients (callers zero them).
 * Memory (floats, mb = max_batch): ntaps*mb*Np*(2D + 2) (tap rows copied + LN outputs and
 * statistics) + mb*Np*(3E + D) + 4*mb*E*S*Sw (h1, h2 and two backward buffers) + mb*NC*S*Sw +
 * the conv scratch (images per sgemm capped so that it stays <= SEGDEC_SCRATCH_FLOATS unless
 * one image alone needs more).
 */
#ifndef BEIT_SEGDEC_H
#define BEIT_SEGDEC_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

#define SEGDEC_MAX_TAPS 16                          /* = BEIT_CONFIG_LIST_MAX (finetune.seg_blocks) */
#define SEGDEC_SCRATCH_FLOATS ((size_t)16 << 20)    /* 64 MB of conv scratch at most (see above) */

typedef struct {
    int ntaps;    /* 1..SEGDEC_MAX_TAPS */
    int D;        /* channels of the taps (ViT embed_dim) */
    int gh, gw;   /* patch grid; T = gh*gw + 1 */
    int patch;    /* P: the up-convolution's kernel and stride; S = gh*P, Sw = gw*P */
    int E;        /* decoder width */
    int ncls;     /* NC classes, 1..256 (labels are uint8) */
    float ln_eps; /* 1e-6 */
} segdec_dims;

typedef struct {
    segdec_dims d;
    int S, Sw;     /* output map gh*P x gw*P (S == Sw for a square grid) */
    int Np, T;     /* gh*gw patches, Np + 1 tokens */
    /* parameter indices */
    int p_norm_w[SEGDEC_MAX_TAPS], p_norm_b[SEGDEC_MAX_TAPS];
    int p_proj_w[SEGDEC_MAX_TAPS], p_proj_b[SEGDEC_MAX_TAPS];
    int p_up_w, p_up_b, p_conv_w, p_conv_b, p_cls_w, p_cls_b;
    /* activations (segdec_alloc); per-tap slabs are [ntaps][max_batch, ...] */
    float *x;        /* [ntaps][mb,Np,D]  copies of taps[i][:,1:,:] (LN backward input) */
    float *u;        /* [ntaps][mb,Np,D]  LN outputs */
    float *mean;     /* [ntaps][mb,Np] */
    float *rstd;     /* [ntaps][mb,Np] */
    float *tok;      /* [mb,Np,E]  forward: z_i; backward: ds (token-major) */
    float *du;       /* [mb,Np,D]  backward: d u_i */
    float *simg;     /* [mb,E,gh,gw]  s as an image */
    float *dsimg;    /* [mb,E,gh,gw]  backward: d s; forward: s token-major before the re-lay */
    float *h1, *h2;  /* [mb,E,S,Sw]  after ReLU */
    float *g1, *g2;  /* [mb,E,S,Sw]  backward buffers */
    float *logits;   /* [mb,NC,S,Sw] */
    float *scratch;  /* conv scratch */
    size_t scratch_n;
    int max_batch, B; /* B = batch of the last segdec_forward */
} segdec;

/* Add the decoder's tensors to pt (before params_alloc). Checks the dims (beit_fatal_user,
 * BEIT_EXIT_USAGE, on a bad one). Does not allocate activations. */
void segdec_build(segdec *s, param_table *pt, const segdec_dims *d, int layer_id);
/* Initialise the decoder's tensors (after params_alloc); see the header comment. */
void segdec_init(const segdec *s, param_table *pt, uint64_t seed);
/* Activations for up to max_batch images. */
void segdec_alloc(segdec *s, int max_batch);
/* Free the activations (safe on a built-but-not-allocated or already freed decoder). */
void segdec_free(segdec *s);

/* taps[i] [B,T,D], i < ntaps (row 0 of each image ignored). B <= max_batch. The tap rows are
 * copied, so the caller may reuse its buffers before segdec_backward. -> logits in s. */
void segdec_forward(segdec *s, const param_table *pt, const float *const *taps, int B);
/* [B,NC,S,Sw] logits of the last forward */
const float *segdec_logits(const segdec *s);
/* dlogits [B,NC,S,Sw]. Accumulates (+=) into pt->grad and into dtaps[i] rows 1..T-1 of every
 * image (row 0 untouched); dtaps itself or any dtaps[i] may be NULL (not needed). B must be the
 * batch of the last segdec_forward. */
void segdec_backward(segdec *s, param_table *pt, const float *dlogits, float *const *dtaps, int B);

/* ---- loss and metric (NCHW logits [B,ncls,HW], labels uint8 [B,HW]) ---- */
/* Per-pixel cross-entropy over the ncls channels: returns the SUM over the B*HW pixels of
 * -log softmax(logits)[label] in double (= F.cross_entropy(logits, labels, reduction='sum'));
 * writes (overwrites) dlogits = scale * (softmax - onehot(label)) unless dlogits is NULL.
 * A label >= ncls is a caller bug: beit_fatal(BEIT_EXIT_MISMATCH). */
double seg_ce_forward_backward(float *dlogits, const float *logits, const uint8_t *labels, int B, int ncls,
                               int HW, float scale);
/* conf[true*ncls + pred] += 1 for every pixel, pred = argmax over the channels (ties: the lowest
 * index; a NaN never wins unless channel 0 is NaN). A label >= ncls: beit_fatal(MISMATCH). */
void seg_confusion_add(int64_t *conf, const float *logits, const uint8_t *labels, int B, int ncls, int HW);

typedef struct {
    double miou;         /* mean over counted classes of TP/(TP+FP+FN); NaN if none counted */
    double pixel_acc;    /* trace / total; NaN if the matrix is empty */
    int classes_counted; /* classes with TP+FP+FN > 0 (mmseg's nanmean skips the others) */
} seg_scores;
seg_scores seg_scores_from_confusion(const int64_t *conf, int ncls);

#endif
