/* prof.h: where a training step's time goes -- cheap per-category timers (clock_gettime),
 * plus per-step wall time and resident-set size. Off by default; `beit bench ... --profile`
 * (src/cli/cmd_bench.c) switches it on. Used by tools/bench (the per-op profile).
 *
 * Categories are EXCLUSIVE: regions nest (attention_forward contains its per-head sgemm and
 * its softmax), and a region's time is charged to its category minus the time of the regions
 * inside it, so the shares of one step add up to at most 100%; the rest is "other" (the
 * memsets of gradient buffers, copies, ReLU, pooling, per-step bookkeeping).
 *
 *   gemm       linear layers (linear.c): the sgemm calls and the bias fill / bias-gradient sums
 *   attn_gemm  attention's per-(image, head) sgemm: q k^T, att v, and their four backward products
 *   softmax    attention's softmax, forward (softmax_forward) and backward (in attention.c)
 *   attention  the rest of attention: the relative-bias copy / gather / scatter, dbias sums
 *   layernorm  layernorm_forward / _backward
 *   gelu       gelu_forward / _backward
 *   residual   residual adds with LayerScale and drop path, forward and backward
 *   loss       cross-entropy over V (its softmax over the V logits included), argmax, MSE
 *   embed      patchify, mask-token substitution and CLS (vit.c), row gathers of the head
 *   conv       conv2d forward / backward (im2col, col2im and their sgemm; the dVAE)
 *   optimizer  gradient norm, clipping, AdamW (train_run)
 *   data       the task's prepare(): reading or generating images, masks, tokens (train_run)
 *   comm       MPI in train_run: count and metric sums, posting and waiting for the gradient
 *              buckets (also from inside backward, with dist.overlap), parameter all-gather
 *
 * The switch is process-wide (beit_prof_ops below, the only other process-wide value besides
 * the rank info of log.h): the nn ops take no context argument, and threading one through
 * every op signature and call site (and the tests) for an opt-in diagnostic is not worth it.
 * It is set once, before the work, by prof_record_steps(); with it off each instrumented op
 * pays one predictable branch on a global int and nothing else. Not thread-safe: the ops are
 * called from one thread per rank (OpenBLAS's threads live inside sgemm). Each rank profiles
 * itself.
 *
 * Step records: when prof_record_steps() was called, train_run calls prof_loop_start() once
 * after initialisation (model, activations, optimizer state allocated: the resident set then
 * is the baseline, and the kernel's high-water mark VmHWM is reset to it through
 * /proc/self/clear_refs) and prof_step_begin() / prof_step_end() around each step (prepare to
 * optimizer). Each record holds the step's seconds, VmRSS after it, and, with per-op timers,
 * the exclusive seconds, calls and GEMM flops per category. */
#ifndef BEIT_PROF_H
#define BEIT_PROF_H

#include <stdint.h>

typedef enum {
    PROF_GEMM = 0,
    PROF_ATTN_GEMM,
    PROF_SOFTMAX,
    PROF_ATTENTION,
    PROF_LAYERNORM,
    PROF_GELU,
    PROF_RESIDUAL,
    PROF_LOSS,
    PROF_EMBED,
    PROF_CONV,
    PROF_OPTIM,
    PROF_DATA,
    PROF_COMM,
    PROF_NCAT
} prof_cat;

/* 1 while per-op timers run (set by prof_record_steps; read by the macros below). */
extern int beit_prof_ops;

#define PROF_BEGIN(cat)                   \
    do {                                  \
        if (beit_prof_ops) prof_begin(cat); \
    } while (0)
#define PROF_END(cat)                   \
    do {                                \
        if (beit_prof_ops) prof_end(cat); \
    } while (0)
/* attribute `flops` floating-point operations (2 M N K per sgemm) to the category */
#define PROF_FLOPS(cat, flops)                          \
    do {                                                \
        if (beit_prof_ops) prof_add_flops(cat, (flops)); \
    } while (0)

void prof_begin(prof_cat c);
/* c must be the innermost open region (else a fatal error: a missing PROF_END) */
void prof_end(prof_cat c);
void prof_add_flops(prof_cat c, double flops);
const char *prof_cat_name(prof_cat c); /* "gemm", "attn_gemm", ... as listed above */

/* ---- step records ---- */
/* Record up to max_steps steps from the next prof_loop_start(); ops != 0 also switches the
 * per-op timers on. Call once, before train_run. */
void prof_record_steps(int max_steps, int ops);
/* train_run: after initialisation, before the first step (no-op unless recording). */
void prof_loop_start(void);
void prof_step_begin(void);
void prof_step_end(void);

typedef struct {
    double seconds;                 /* prof_step_begin -> prof_step_end */
    long rss_kb;                    /* VmRSS after the step */
    double cat_s[PROF_NCAT];        /* exclusive seconds per category (per-op timers on) */
    double cat_flops[PROF_NCAT];
    int64_t cat_calls[PROF_NCAT];
} prof_step;

typedef struct {
    int nsteps;          /* recorded steps */
    const prof_step *step;
    long rss_init_kb;    /* VmRSS at prof_loop_start */
    long hwm_kb;         /* VmHWM after the last recorded step */
    int hwm_reset;       /* 1: VmHWM was reset at prof_loop_start, so hwm_kb - rss_init_kb is the
                            peak growth during the steps; 0: the kernel refused (then hwm_kb is
                            the peak since the process started) */
    int ops;             /* per-op timers were on */
} prof_record;

/* What was recorded (valid until the next prof_record_steps). */
prof_record prof_get_record(void);

/* /proc/self/status VmRSS and VmHWM in kB (either pointer may be NULL); 0 ok, -1 unreadable. */
int prof_read_rss(long *rss_kb, long *hwm_kb);
/* Reset VmHWM to the current VmRSS (write "5" to /proc/self/clear_refs); 0 ok, -1 refused. */
int prof_reset_hwm(void);

#endif
