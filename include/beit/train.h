/* train.h: the one training loop shared by the dVAE, pre-training and fine-tuning.
 *
 * A task says what one optimizer step computes; the loop does everything else the same way
 * for every training command: lr schedule, gradient all-reduce, non-finite check, clipping,
 * AdamW, logging (stdout + metrics.jsonl), ETA, checkpoint cadence, resume.
 *
 * Loss normalisation across ranks: a task first reports a local count (pixels, masked
 * tokens, images); the loop sums it over ranks and hands the global count back, so the task
 * scales its gradients by 1/global_count and the summed gradient is the gradient of the
 * global mean, whatever the number of ranks.
 *
 * Gradient reduction (comm.h): fixed rank-order sums, bucketed (dist.bucket_mb). With
 * dist.overlap the loop sets pt->grad_ready for the step (params.h) and posts each bucket
 * from inside the LAST backward pass, as the model reports its gradients final. It expects
 * ceil(n_local / train.micro_batch) backward passes per step on a rank with n_local =
 * G(r+1)/R - Gr/R samples (one pass without micro_batch), each ending with a report of the
 * table's end: the rule every task follows. A task that runs fewer passes gets the reduction
 * after its backward (correct, logged); more passes is a fatal internal error (the buckets
 * would have left too early). dist.zero = 1: ZeRO stage 1 (reduce-scatter, AdamW on the
 * rank's chunks, all-gather of the parameters); bit-identical to dist.zero = 0.
 * Per logged step metrics.jsonl also holds comm_bytes (bytes rank 0 sent in gradient and
 * parameter messages per step), comm_wait_s (seconds per step it waited for the reduction
 * after backward) and comm_overlap (share of the buckets posted during backward).
 * Checkpoints are written by all ranks (checkpoint.h); --resume auto takes the newest
 * complete one; a checkpoint of R ranks resumes on any rank count (the optimizer state is
 * re-sharded; with the same rank count the run continues bit for bit).
 *
 * Preemption: while train_run runs, SIGUSR1 and SIGTERM only set a flag (fsutil.h,
 * beit_stop_signals_install; the handlers are installed on entry and restored on return). After
 * each step's optimizer update the ranks combine their flags with one MPI_Allreduce (MAX of the
 * signal number, 4 bytes), so a signal that reached only some ranks (or only mpirun, which
 * forwards SIGUSR1) stops every rank after the same step. They log that step, write its
 * checkpoint (collective, atomic; further signals during the write only set the flag again),
 * log "preempted at step N: checkpoint <path> written; resume with --resume auto" and end the
 * process with BEIT_EXIT_PREEMPTED (8) after MPI_Finalize on every rank: train_run does not
 * return then. A stop requested during the last step ends the run normally (its checkpoint is
 * the final one). `--resume auto` continues from that checkpoint bit for bit on the same rank
 * count. */
#ifndef BEIT_TRAIN_H
#define BEIT_TRAIN_H

#include "beit/checkpoint.h"
#include "beit/config.h"
#include "beit/comm.h"
#include "beit/optim.h"
#include "beit/params.h"

#include <stdint.h>
#include <stdio.h>

#define TRAIN_MAX_METRICS 16
#define EVAL_MAX_ITEMS 24

/* Named results of an evaluation, in order, as eval.json holds them: one JSON object per line,
 * {"name": value, ...}. Strings are written between quotes as given (no escaping: the names
 * of splits, tasks and paths of a job); numbers with their own printf format. */
typedef enum { EVAL_STR, EVAL_INT, EVAL_NUM } eval_type;
typedef struct {
    const char *name;
    eval_type type;
    const char *s;    /* EVAL_STR; not copied: must outlive the results */
    long long i;      /* EVAL_INT, written with %lld */
    const char *fmt;  /* EVAL_NUM: the printf format of x, e.g. "%.8g", "%.6f" */
    double x;
} eval_item;
typedef struct {
    int n;
    eval_item v[EVAL_MAX_ITEMS];
} eval_results;
void eval_put_str(eval_results *r, const char *name, const char *s);
void eval_put_int(eval_results *r, const char *name, long long i);
void eval_put_num(eval_results *r, const char *name, const char *fmt, double x);
/* The JSON object line (no newline) into buf, as snprintf (truncated to n). A NaN or infinite
 * number is written as null (JSON has neither). */
void eval_results_json(const eval_results *r, char *buf, size_t n);

typedef struct train_result train_result;

typedef struct {
    const char *out_dir;  /* run directory (created) */
    int64_t max_steps;    /* --steps: stop at this global step, counted from 0 also on resume (-1: none) */
    const char *resume;   /* NULL, "auto" or a checkpoint path */
    const char *source;   /* the job's origin, for messages */
    const char *init;     /* finetune / probe: the pre-trained checkpoint, or "none" */
} train_opts;

typedef struct train_task train_task;
struct train_task {
    const char *kind; /* checkpoint kind, e.g. "dvae" */
    param_table *pt;
    void *ctx;
    int64_t steps_per_epoch;
    int images_per_step; /* global batch */
    /* The input normalisation the task feeds its model with, recorded in every checkpoint
     * (NULL: none, e.g. the dVAE, which maps [0, 1] pixels itself). */
    const ckpt_norm *norm;
    /* Metrics: each is reported as sum / count over the global batch (both summed over
     * ranks). metric 0 is the objective ("loss"). */
    int nmetrics;
    const char *metric_names[TRAIN_MAX_METRICS];
    /* Load the rank's part of global step `step` and return its local normalising count. */
    double (*prepare)(void *ctx, int64_t step);
    /* Forward + backward of the local part: add d(sum of local losses)/global_count to
     * pt->grad, and the local metric sums/counts to sums[2*i], sums[2*i+1]. */
    void (*forward_backward)(void *ctx, int64_t step, double global_count, double *sums);
    /* Optional: extra per-step scalars to log (e.g. temperature), written as name=value. */
    int (*extra_log)(void *ctx, int64_t step, const char **names, double *values, int max);
    /* Optional: evaluation after the run (every rank; collective as the task needs). Fill out
     * and return 1 to have the loop write out_dir/eval.json (rank 0), or return 0 (none). */
    int (*evaluate)(void *ctx, const train_result *res, const train_opts *o, const beit_dist *d, eval_results *out);
};


struct train_result {
    int64_t steps_done;  /* global step count at the end */
    double last_loss;    /* objective at the last step */
    double seconds;
    int final;           /* 1: after the run; 0: a train.eval_every evaluation during it */
};

/* Total optimizer steps of the run: round(epochs * steps_per_epoch), at least 1. */
int64_t train_total_steps(const beit_config *c, int64_t steps_per_epoch);
/* Run the loop. Writes out_dir/config.yaml, out_dir/metrics.jsonl (appends on resume),
 * checkpoints out_dir/ckpt-<step>.h5 every train.ckpt_every steps and at the end, then runs
 * the task's evaluate hook and writes out_dir/eval.json. The run ends at global step
 * min(o->max_steps, the schedule's total), counted from step 0 whether resumed or not. A run
 * resumed at or past that step trains nothing and writes no checkpoint, config.yaml or
 * metrics.jsonl (it logs so); its evaluation runs again. On SIGUSR1 or SIGTERM (see above) it
 * checkpoints and exits the process with BEIT_EXIT_PREEMPTED instead of returning. */
train_result train_run(train_task *t, const beit_config *c, const train_opts *o, const beit_dist *d);

#endif
