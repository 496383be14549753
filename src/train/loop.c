/* The training loop (see include/beit/train.h).
 *
 * Gradient reduction: a dist_reducer (comm.h) sums the flat gradient buffer in a fixed
 * order, bucket by bucket. With dist.overlap (and more than one rank) the buckets are posted
 * from inside the LAST backward pass of the step, as the model reports its gradients final
 * (params_grad_ready, params.h), and progressed between layers; otherwise all at once after
 * forward_backward. Both give the same bits. dist.zero = 1 (ZeRO stage 1): the gradients are
 * only reduce-scattered, each rank keeps the AdamW state of the chunks it owns and updates
 * those parameters, and the parameters are then all-gathered: again the same bits as the
 * replicated optimizer.
 *
 * Preemption: SIGUSR1 and SIGTERM only set a flag (beit_stop_signals_install, fsutil.h) while
 * train_run runs. Once per step, after the optimizer, the ranks OR their flags with one
 * all-reduce, so a signal that reached only some ranks stops all of them after the same step;
 * they log that step, write a checkpoint and end with BEIT_EXIT_PREEMPTED. More signals during
 * that write only set the flag again (the checkpoint write is atomic anyway). */
#include "beit/train.h"

#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/log.h"
#include "beit/fsutil.h"
#include "beit/prof.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

int64_t train_total_steps(const beit_config *c, int64_t steps_per_epoch) {
    int64_t n = (int64_t)llround(c->train.epochs * (double)steps_per_epoch);
    return n < 1 ? 1 : n;
}

static int64_t warmup_steps(const beit_config *c, int64_t steps_per_epoch) {
    if (c->optim.warmup_steps > 0) return c->optim.warmup_steps;
    return (int64_t)llround(c->optim.warmup_epochs * (double)steps_per_epoch);
}

/* Resuming at step `keep`: rows of later steps were logged by a run that died before its next
 * checkpoint and are about to be logged again, so they are dropped first (atomically). */
static void rows_truncate(const char *p, int64_t keep) {
    FILE *in = fopen(p, "r");
    if (!in) return;
    char *tmp = beit_tmp_path(p);
    FILE *out = fopen(tmp, "w");
    if (!out) beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", tmp, strerror(errno));
    char line[8192];
    long long step;
    int dropped = 0;
    while (fgets(line, sizeof line, in)) {
        if (sscanf(line, "{\"step\": %lld", &step) == 1 && step > keep) {
            dropped++;
            continue;
        }
        fputs(line, out);
    }
    fclose(in);
    if (fclose(out) != 0 || beit_commit_file(tmp, p) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", p, strerror(errno));
    if (dropped) beit_log("%s: dropped %d rows after step %lld (logged after that checkpoint, redone now)", p, dropped,
                          (long long)keep);
    free(tmp);
}

/* metrics.jsonl or eval.jsonl: rows that begin with their step */
static FILE *open_rows(const char *dir, const char *name, int append, int64_t resume_step) {
    char *p = xasprintf("%s/%s", dir, name);
    if (append) rows_truncate(p, resume_step);
    FILE *f = fopen(p, append ? "a" : "w");
    if (!f) beit_fatal_user(BEIT_EXIT_IO, "cannot open %s: %s", p, strerror(errno));
    free(p);
    return f;
}

static void write_text(const char *path, const char *text) {
    char *tmp = beit_tmp_path(path);
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0 || beit_commit_file(tmp, path) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", path, strerror(errno));
    free(tmp);
}

/* Backward passes a task runs per step on this rank: one per micro-batch of its slice of the
 * global batch (the rule every task follows: rank r of R takes G(r+1)/R - Gr/R samples in
 * micro-batches of train.micro_batch, or all at once). */
static int backward_passes(const beit_config *c, int global_batch, const beit_dist *d) {
    int64_t G = global_batch, n = G * (d->rank + 1) / d->size - G * d->rank / d->size;
    if (n <= 0) return 0;
    int mb = c->train.micro_batch;
    return mb > 0 ? (int)((n + mb - 1) / mb) : 1;
}

/* The overlap hook: counts the backward passes of the step (a pass ends with a report of the
 * table's end) and hands the reports of the last one to the reducer. */
typedef struct {
    dist_reducer *red;
    size_t total;
    int expected, passes;
} overlap_ctx;

static void overlap_hook(void *ctx, size_t upto) {
    overlap_ctx *o = ctx;
    if (o->passes >= o->expected)
        beit_fatal(BEIT_EXIT_FAILURE,
                   "overlapped gradient reduction: this step ran more than the %d backward pass%s the loop expects "
                   "(train.micro_batch rule); its buckets were sent too early. Run with --set dist.overlap=false and "
                   "report this", o->expected, o->expected == 1 ? "" : "es");
    if (o->passes == o->expected - 1) {
        PROF_BEGIN(PROF_COMM);
        dist_reduce_ready(o->red, upto);
        PROF_END(PROF_COMM);
    }
    if (upto >= o->total) o->passes++;
}

static const char *stop_signal_name(int sig) {
    return sig == SIGUSR1 ? "SIGUSR1" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

/* The loop's state: the reduction, the optimizer state, the run directory's files and the
 * logging window. */
typedef struct {
    train_task *t;
    const beit_config *c;
    const train_opts *o;
    const beit_dist *d;
    int64_t total, warm;  /* optimizer steps of the whole run; warmup steps */
    adamw_config acfg;
    char *yaml;           /* the resolved job, as config.yaml and in every checkpoint */
    dist_reducer red;
    int zero, overlap;    /* dist.zero == 1; dist.overlap with more than one rank */
    size_t nstate;        /* AdamW state floats on this rank */
    float *m, *v;         /* [nstate] AdamW moments */
    dist_range *parts;    /* [red.nown] the state's chunks (ckpt_optim_part) */
    ckpt_optim_part opt;
    int64_t step;         /* optimizer steps done */
    char *resume_path;    /* the checkpoint resumed from, or NULL */
    FILE *mf;             /* metrics.jsonl (rank 0) */
    FILE *ef;             /* eval.jsonl (rank 0, train.eval_every > 0) */
    double *sums;         /* [2*nmetrics + 1] the step's metric sums/counts + gradient sum of squares */
    double *acc;          /* [2*nmetrics] metric sums/counts over the logging window */
    double t_start, t_window;
    int64_t window_steps, first_step;
    uint64_t bytes_window, early_window, posted_window;
    double wait_window;
    int warned_passes;
} loop_state;

/* The reduction layout; ZeRO-1 keeps the AdamW state of the owned chunks only. */
static void loop_state_init(loop_state *L) {
    const beit_config *c = L->c;
    param_table *pt = L->t->pt;
    dist_reducer_init(&L->red, L->d, pt->total, c->dist.bucket_mb);
    L->zero = c->dist.zero == 1;
    L->overlap = c->dist.overlap && L->d->size > 1;
    L->nstate = L->zero ? L->red.own_floats : pt->total;
    L->m = xalloc_floats(L->nstate ? L->nstate : 1);
    L->v = xalloc_floats(L->nstate ? L->nstate : 1);
    L->parts = xcalloc((size_t)L->red.nown + 1, sizeof *L->parts);
    for (int i = 0; i < L->red.nown; i++) {
        L->parts[i] = L->red.own[i];
        if (!L->zero) L->parts[i].off = L->parts[i].lo; /* replicated state: indexed like the table */
    }
    L->opt = (ckpt_optim_part){L->m, L->v, L->red.nown, L->parts};
}

/* Resume: rank 0 picks the checkpoint (the newest complete one), every rank reads it. A
 * fresh run must not clobber another run's checkpoints and metrics. */
static void loop_resume(loop_state *L) {
    const train_opts *o = L->o;
    const beit_dist *d = L->d;
    param_table *pt = L->t->pt;
    if (o->resume) {
        if (strcmp(o->resume, "auto") != 0) L->resume_path = xstrdup(o->resume);
        else {
            char *p = d->rank == 0 ? ckpt_find_latest(o->out_dir) : NULL;
            int len = p ? (int)strlen(p) + 1 : 0;
            MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, d->comm));
            if (len > 0) {
                if (!p) p = xmalloc((size_t)len);
                MPI_CHECK(MPI_Bcast(p, len, MPI_CHAR, 0, d->comm));
            }
            L->resume_path = p;
        }
        if (!L->resume_path && strcmp(o->resume, "auto") != 0)
            beit_fatal_user(BEIT_EXIT_CHECKPOINT, "--resume: no checkpoint given");
    }
    if (!o->resume) {
        char *prev = ckpt_find_latest(o->out_dir);
        if (prev)
            beit_fatal_user(BEIT_EXIT_USAGE,
                            "%s already holds checkpoints (%s): continue that run with --resume auto, or give "
                            "another --out", o->out_dir, prev);
    }
    if (L->resume_path) {
        const char *path = L->resume_path;
        ckpt_reader r;
        ckpt_open(&r, path);
        if (strcmp(r.kind, L->t->kind) != 0)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: a '%s' checkpoint, this run trains '%s'", path, r.kind, L->t->kind);
        /* what every rank needs whole is read (and verified) once, by rank 0, and broadcast:
         * R ranks each reading the whole file is R times its size from the file system at
         * once (at 1024 ranks, ~1 TB for a ViT-B checkpoint with replicated AdamW state) */
        if (d->rank == 0) ckpt_load_params(&r, pt);
        dist_bcast(d, pt->data, pt->total * sizeof(float), 0);
        if (L->zero) {
            ckpt_load_optim_part(&r, pt, &L->opt, d->comm); /* this rank's shard */
        } else {
            if (d->rank == 0) ckpt_load_optim(&r, pt, L->m, L->v); /* the whole state, broadcast */
            dist_bcast(d, L->m, pt->total * sizeof(float), 0);
            dist_bcast(d, L->v, pt->total * sizeof(float), 0);
        }
        L->step = r.step;
        if (r.nranks != d->size)
            beit_log("resuming a checkpoint of %d rank%s on %d: the optimizer state is re-sharded; the global batch "
                     "and the data order are unchanged", r.nranks, r.nranks == 1 ? "" : "s", d->size);
        ckpt_close(&r);
        beit_log("resumed from %s at step %lld", path, (long long)L->step);
    } else if (o->resume) {
        beit_log("--resume auto: no checkpoint in %s, starting from step 0", o->out_dir);
    }
}

/* config.yaml and metrics.jsonl (rank 0), and the run's opening lines. */
static void loop_open_run(loop_state *L) {
    const train_task *t = L->t;
    const beit_dist *d = L->d;
    const dist_reducer *red = &L->red;
    if (d->rank == 0) {
        char *p = xasprintf("%s/config.yaml", L->o->out_dir);
        write_text(p, L->yaml);
        free(p);
    }
    L->mf = d->rank == 0 ? open_rows(L->o->out_dir, "metrics.jsonl", L->resume_path != NULL, L->step) : NULL;
    if (d->rank == 0 && L->c->train.eval_every > 0 && t->evaluate)
        L->ef = open_rows(L->o->out_dir, "eval.jsonl", L->resume_path != NULL, L->step);

    beit_log("%s: %lld steps (%lld per epoch, %.3g epochs), global batch %d on %d rank%s, %zu parameters",
             t->kind, (long long)L->total, (long long)t->steps_per_epoch, L->c->train.epochs, t->images_per_step,
             d->size, d->size > 1 ? "s" : "", t->pt->total);
    if (d->size > 1)
        beit_log("gradient reduction: %d bucket%s (first %zu floats, then %zu), fixed rank-order sums, %s; optimizer "
                 "state %s (rank 0 holds %zu of %zu floats)",
                 red->nb, red->nb == 1 ? "" : "s", red->first_floats, red->bucket_floats,
                 L->overlap ? "overlapped with the last backward pass" : "after the backward pass",
                 L->zero ? "sharded over the ranks (ZeRO-1)" : "replicated", L->nstate, t->pt->total);
}

/* Forward and backward of the step, the gradient reduction, the step's metrics and gradient
 * norm over all ranks (into L->sums), the non-finite check. Returns the objective; *gnorm_out
 * the global gradient norm. */
static double loop_gradients(loop_state *L, double *gnorm_out) {
    train_task *t = L->t;
    const beit_dist *d = L->d;
    param_table *pt = t->pt;
    dist_reducer *red = &L->red;
    const int nm = t->nmetrics;
    params_zero_grad(pt);
    PROF_BEGIN(PROF_DATA);
    double count = t->prepare(t->ctx, L->step);
    PROF_END(PROF_DATA);
    PROF_BEGIN(PROF_COMM);
    dist_sum_f64_ordered(d, &count, 1);
    PROF_END(PROF_COMM);
    memset(L->sums, 0, (size_t)(2 * nm + 1) * sizeof(double));
    dist_reduce_begin(red, pt->grad, !L->zero);
    overlap_ctx oc = {red, pt->total, backward_passes(L->c, t->images_per_step, d), 0};
    if (L->overlap) {
        pt->grad_ready = overlap_hook;
        pt->grad_ready_ctx = &oc;
    }
    t->forward_backward(t->ctx, L->step, count, L->sums);
    pt->grad_ready = NULL;
    pt->grad_ready_ctx = NULL;
    if (L->overlap && oc.passes != oc.expected && !L->warned_passes) {
        beit_log_all("step %lld: %d backward pass%s, the loop expected %d: the gradient reduction ran after the "
                     "backward pass (correct, not overlapped)", (long long)L->step + 1, oc.passes,
                     oc.passes == 1 ? "" : "es", oc.expected);
        L->warned_passes = 1;
    }
    PROF_BEGIN(PROF_COMM);
    dist_reduce_end(red);
    PROF_END(PROF_COMM);
    /* the global gradient norm: each rank's sum of squares over the chunks it owns (final
     * there in both modes), summed in rank order with the metrics */
    double ss = 0;
    PROF_BEGIN(PROF_OPTIM);
    for (int i = 0; i < red->nown; i++)
        for (size_t k = red->own[i].lo; k < red->own[i].hi; k++) ss += (double)pt->grad[k] * pt->grad[k];
    PROF_END(PROF_OPTIM);
    L->sums[2 * nm] = ss;
    PROF_BEGIN(PROF_COMM);
    dist_sum_f64_ordered(d, L->sums, (size_t)(2 * nm + 1));
    PROF_END(PROF_COMM);
    double loss = L->sums[0] / (L->sums[1] > 0 ? L->sums[1] : 1);
    double gnorm = sqrt(L->sums[2 * nm]);
    if (!isfinite(loss) || !isfinite(gnorm))
        beit_fatal_user(BEIT_EXIT_NONFINITE,
                        "step %lld: %s is %s (loss %g, gradient norm %g); stopping. The last checkpoint in %s "
                        "is intact: lower optim.lr or raise optim.warmup_*, then --resume auto",
                        (long long)L->step + 1, !isfinite(loss) ? "the loss" : "the gradient norm",
                        isnan(!isfinite(loss) ? loss : gnorm) ? "NaN" : "Inf", loss, gnorm, L->o->out_dir);
    *gnorm_out = gnorm;
    return loss;
}

/* Clipping and AdamW at rate lr: on the owned chunks and an all-gather (ZeRO-1), or on the
 * whole table. */
static void loop_update(loop_state *L, double gnorm, double lr) {
    param_table *pt = L->t->pt;
    const beit_config *c = L->c;
    PROF_BEGIN(PROF_OPTIM);
    if (L->zero) {
        for (int i = 0; i < L->red.nown; i++) {
            const dist_range *q = &L->red.own[i];
            grad_clip_scale(pt->grad + q->lo, q->hi - q->lo, gnorm, c->optim.clip_grad);
            adamw_step_range(pt, q->lo, q->hi, L->m + q->off, L->v + q->off, lr, &L->acfg, L->step + 1);
        }
        PROF_BEGIN(PROF_COMM);
        dist_allgather_owned(&L->red, pt->data);
        PROF_END(PROF_COMM);
    } else {
        grad_clip_scale(pt->grad, pt->total, gnorm, c->optim.clip_grad);
        adamw_step_range(pt, 0, pt->total, L->m, L->v, lr, &L->acfg, L->step + 1);
    }
    PROF_END(PROF_OPTIM);
}

/* The logging window's line (stdout) and metrics.jsonl row at step `done`; opens a new
 * window. */
static void loop_log(loop_state *L, int64_t done, int64_t stop, double lr, double gnorm) {
    train_task *t = L->t;
    const dist_reducer *red = &L->red;
    const int nm = t->nmetrics;
    const double *acc = L->acc;
    double now = beit_now();
    double dt = now - L->t_window;
    double ips = dt > 0 ? (double)L->window_steps * t->images_per_step / dt : 0;
    double per_step = (now - L->t_start) / (double)(done - L->first_step);
    double eta = per_step * (double)(stop - done);
    double comm_bytes = (double)(red->bytes_sent - L->bytes_window) / (double)L->window_steps;
    double comm_wait = (red->wait_s - L->wait_window) / (double)L->window_steps;
    uint64_t posted = red->buckets_total - L->posted_window;
    double early = posted ? (double)(red->buckets_early - L->early_window) / (double)posted : 0;
    const char *xn[8];
    double xv[8];
    int nx = t->extra_log ? t->extra_log(t->ctx, L->step, xn, xv, 8) : 0;
    if (L->d->rank == 0) {
        FILE *mf = L->mf;
        char line[2048], eta_s[32], el_s[32];
        int k = snprintf(line, sizeof line, "step %lld/%lld (ep %.2f)", (long long)done, (long long)L->total,
                         (double)done / (double)t->steps_per_epoch);
        for (int i = 0; i < nm && k < (int)sizeof line; i++)
            k += snprintf(line + k, sizeof line - (size_t)k, " %s %.5g", t->metric_names[i],
                          acc[2 * i] / (acc[2 * i + 1] > 0 ? acc[2 * i + 1] : 1));
        for (int i = 0; i < nx && k < (int)sizeof line; i++)
            k += snprintf(line + k, sizeof line - (size_t)k, " %s %.4g", xn[i], xv[i]);
        snprintf(line + k, sizeof line - (size_t)k, " lr %.3e gnorm %.3g %.1f img/s elapsed %s eta %s", lr, gnorm, ips,
                 beit_fmt_duration(now - L->t_start, el_s, sizeof el_s), beit_fmt_duration(eta, eta_s, sizeof eta_s));
        beit_log("%s", line);
        fprintf(mf, "{\"step\": %lld, \"epoch\": %.4f", (long long)done, (double)done / (double)t->steps_per_epoch);
        for (int i = 0; i < nm; i++)
            fprintf(mf, ", \"%s\": %.8g", t->metric_names[i], acc[2 * i] / (acc[2 * i + 1] > 0 ? acc[2 * i + 1] : 1));
        for (int i = 0; i < nx; i++) fprintf(mf, ", \"%s\": %.8g", xn[i], xv[i]);
        fprintf(mf, ", \"lr\": %.8g, \"grad_norm\": %.8g, \"images_per_s\": %.4g, \"elapsed_s\": %.3f, \"eta_s\": %.1f"
                    ", \"comm_bytes\": %.0f, \"comm_wait_s\": %.6f, \"comm_overlap\": %.4f}\n",
                lr, gnorm, ips, now - L->t_start, eta, comm_bytes, comm_wait, early);
        fflush(mf);
    }
    memset(L->acc, 0, (size_t)(2 * nm) * sizeof(double));
    L->window_steps = 0;
    L->t_window = now;
    L->bytes_window = red->bytes_sent;
    L->wait_window = red->wait_s;
    L->early_window = red->buckets_early;
    L->posted_window = red->buckets_total;
}

/* The checkpoint of step `done` (every rank; parameters compared first). On preemption it
 * ends the process with BEIT_EXIT_PREEMPTED. */
static void loop_checkpoint(loop_state *L, int64_t done, int preempt) {
    const beit_dist *d = L->d;
    const train_opts *o = L->o;
    param_table *pt = L->t->pt;
    /* every rank must hold the same parameters: compare checksums before writing */
    uint64_t cs = params_checksum(pt), lo = cs, hi = cs;
    if (d->size > 1) {
        MPI_CHECK(MPI_Allreduce(&cs, &lo, 1, MPI_UINT64_T, MPI_MIN, d->comm));
        MPI_CHECK(MPI_Allreduce(&cs, &hi, 1, MPI_UINT64_T, MPI_MAX, d->comm));
    }
    if (lo != hi)
        beit_fatal(BEIT_EXIT_FAILURE, "step %lld: parameters differ between ranks (checksums %016llx .. %016llx)",
                   (long long)done, (unsigned long long)lo, (unsigned long long)hi);
    char *p = xasprintf("%s/ckpt-%08lld.h5", o->out_dir, (long long)done);
    ckpt_meta meta = {L->t->kind, done, (uint64_t)L->c->seed, L->yaml, L->t->norm};
    ckpt_write_part(p, pt, &L->opt, &meta, d);
    if (d->rank == 0) ckpt_rotate(o->out_dir, L->c->train.keep_last);
    beit_log("checkpoint %s (params checksum %016llx, identical on all %d ranks)", p, (unsigned long long)cs, d->size);
    if (preempt) {
        /* every rank is here (the stop was agreed): end cleanly with the documented code;
         * the handlers stay installed, so a further signal cannot kill a rank now */
        beit_log("preempted at step %lld: checkpoint %s written; resume with --resume auto", (long long)done, p);
        if (L->mf) fclose(L->mf);
        beit_exit_all(BEIT_EXIT_PREEMPTED);
    }
    free(p);
}

/* A stop request on any rank stops every rank after step `done` (one small all-reduce).
 * Returns 1 when the run is preempted (stopped before its last step). */
static int loop_stop_agreed(const loop_state *L, int64_t done, int64_t stop) {
    int stop_sig = beit_stop_signal();
    if (L->d->size > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &stop_sig, 1, MPI_INT, MPI_MAX, L->d->comm));
    const int preempt = stop_sig != 0 && done < stop;
    if (stop_sig != 0 && done == stop)
        beit_log("%s received during step %lld, the last of this run: it ends normally with its checkpoint",
                 stop_signal_name(stop_sig), (long long)done);
    if (preempt)
        beit_log("%s received: stopping after step %lld of %lld, writing a checkpoint", stop_signal_name(stop_sig),
                 (long long)done, (long long)L->total);
    return preempt;
}

/* A run resumed at or past its last step (`stop`: --steps or the schedule's end) trains
 * nothing: no step, no checkpoint, config.yaml and metrics.jsonl untouched. */
static void loop_already_done(const loop_state *L, int64_t stop) {
    if (L->o->max_steps >= 0 && L->o->max_steps < L->total)
        beit_log("--steps %lld: the run is already at step %lld; nothing to train", (long long)L->o->max_steps,
                 (long long)L->step);
    else
        beit_log("the run is already at step %lld, the end of its schedule (%lld steps); nothing to train",
                 (long long)L->step, (long long)stop);
}

/* Frees the loop's state and restores the signal handlers train_run installed. */
static void loop_free(loop_state *L) {
    beit_stop_signals_restore();
    free(L->sums);
    free(L->acc);
    free(L->m);
    free(L->v);
    free(L->parts);
    dist_reducer_free(&L->red);
    free(L->yaml);
    free(L->resume_path);
}

/* The task's evaluation: after the run (res->final) written as out_dir/eval.json; every
 * train.eval_every steps and after the run a row of out_dir/eval.jsonl (ef, rank 0), its step
 * first so that a resume drops the rows it will redo. */
static void loop_evaluate(train_task *t, const train_result *res, const train_opts *o, const beit_dist *d, FILE *ef) {
    eval_results er = {0};
    if (!t->evaluate || !t->evaluate(t->ctx, res, o, d, &er)) return;
    if (d->rank != 0) return;
    char line[4096];
    eval_results_json(&er, line, sizeof line - 1);
    if (ef) {
        if (fprintf(ef, "{\"step\": %lld, \"seconds\": %.1f%s%s\n", (long long)res->steps_done, res->seconds,
                    er.n ? ", " : "", line + 1) < 0 || fflush(ef) != 0)
            beit_fatal_user(BEIT_EXIT_IO, "cannot write %s/eval.jsonl: %s", o->out_dir, strerror(errno));
    }
    if (!res->final) return;
    strcat(line, "\n");
    /* temporary file + rename: a reader (tools/ablation, a rerun) sees the whole line or none */
    char *p = xasprintf("%s/eval.json", o->out_dir);
    write_text(p, line);
    free(p);
}

train_result train_run(train_task *t, const beit_config *c, const train_opts *o, const beit_dist *d) {
    loop_state L = {.t = t, .c = c, .o = o, .d = d};
    beit_stop_signals_install(); /* until the loop ends: a stop request ends it after a step */
    L.total = train_total_steps(c, t->steps_per_epoch);
    L.warm = warmup_steps(c, t->steps_per_epoch);
    L.acfg = (adamw_config){c->optim.beta1, c->optim.beta2, c->optim.eps, c->optim.weight_decay};
    L.yaml = config_to_yaml(c);
    loop_state_init(&L);

    if (d->rank == 0 && beit_mkdir_p(o->out_dir) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot create run directory %s: %s", o->out_dir, strerror(errno));
    dist_barrier(d);
    loop_resume(&L);
    /* --steps N counts from step 0, so a requeued job given N stops at step N like the
     * uninterrupted one */
    int64_t stop = L.total;
    if (o->max_steps >= 0 && o->max_steps < stop) stop = o->max_steps;
    if (L.resume_path && L.step >= stop) {
        loop_already_done(&L, stop);
        train_result done = {L.step, NAN, 0, 1};
        loop_free(&L);
        loop_evaluate(t, &done, o, d, NULL);
        return done;
    }
    loop_open_run(&L);

    const int nm = t->nmetrics;
    L.sums = xcalloc((size_t)(2 * nm + 1), sizeof(double)); /* + this rank's gradient sum of squares */
    L.acc = xcalloc((size_t)(2 * nm), sizeof(double));      /* over the logging window */
    L.t_start = beit_now();
    L.t_window = L.t_start;
    L.first_step = L.step;
    double last_loss = NAN;
    L.bytes_window = L.red.bytes_sent;
    L.wait_window = L.red.wait_s;
    L.early_window = L.red.buckets_early;
    L.posted_window = L.red.buckets_total;

    prof_loop_start(); /* step records and timers (prof.h): off unless `beit bench` turned them on */
    for (; L.step < stop; L.step++) {
        prof_step_begin();
        double lr = schedule_cosine(L.step, L.total, L.warm, c->optim.lr, c->optim.min_lr, 0.0);
        double gnorm;
        double loss = loop_gradients(&L, &gnorm);
        loop_update(&L, gnorm, lr);
        last_loss = loss;
        for (int i = 0; i < 2 * nm; i++) L.acc[i] += L.sums[i];
        L.window_steps++;
        prof_step_end();

        int64_t done = L.step + 1;
        const int preempt = loop_stop_agreed(&L, done, stop);
        int log_now = done % c->train.log_every == 0 || done == stop || done == L.first_step + 1 || preempt;
        if (log_now) loop_log(&L, done, stop, lr, gnorm);
        int ckpt_now = done == stop || preempt || (c->train.ckpt_every > 0 && done % c->train.ckpt_every == 0);
        if (ckpt_now) loop_checkpoint(&L, done, preempt);
        if (c->train.eval_every > 0 && done % c->train.eval_every == 0 && done < stop && !preempt) {
            double t0 = beit_now();
            train_result mid = {done, loss, t0 - L.t_start, 0};
            loop_evaluate(t, &mid, o, d, L.ef);
            L.t_window += beit_now() - t0; /* the logged speed counts training only */
        }
    }
    if (L.mf) fclose(L.mf);
    train_result res = {L.step, last_loss, beit_now() - L.t_start, 1};
    FILE *ef = L.ef;
    loop_free(&L);
    loop_evaluate(t, &res, o, d, ef);
    if (ef && fclose(ef) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot write %s/eval.jsonl: %s", o->out_dir, strerror(errno));
    return res;
}
