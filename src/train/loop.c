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
static void metrics_truncate(const char *p, int64_t keep) {
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

static FILE *open_metrics(const char *dir, int append, int64_t resume_step) {
    char *p = xasprintf("%s/metrics.jsonl", dir);
    if (append) metrics_truncate(p, resume_step);
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

train_result train_run(train_task *t, const beit_config *c, const train_opts *o, const beit_dist *d) {
    param_table *pt = t->pt;
    beit_stop_signals_install(); /* until the loop ends: a stop request ends it after a step */
    const int64_t total = train_total_steps(c, t->steps_per_epoch);
    const int64_t warm = warmup_steps(c, t->steps_per_epoch);
    adamw_config acfg = {c->optim.beta1, c->optim.beta2, c->optim.eps, c->optim.weight_decay};
    char *yaml = config_to_yaml(c);

    /* the reduction layout; ZeRO-1 keeps the AdamW state of the owned chunks only */
    dist_reducer red;
    dist_reducer_init(&red, d, pt->total, c->dist.bucket_mb);
    const int zero = c->dist.zero == 1;
    const int overlap = c->dist.overlap && d->size > 1;
    const size_t nstate = zero ? red.own_floats : pt->total;
    float *m = xalloc_floats(nstate ? nstate : 1), *v = xalloc_floats(nstate ? nstate : 1);
    dist_range *parts = xcalloc((size_t)red.nown + 1, sizeof *parts);
    for (int i = 0; i < red.nown; i++) {
        parts[i] = red.own[i];
        if (!zero) parts[i].off = parts[i].lo; /* replicated state: indexed like the table */
    }
    ckpt_optim_part opt = {m, v, red.nown, parts};

    if (d->rank == 0 && beit_mkdir_p(o->out_dir) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot create run directory %s: %s", o->out_dir, strerror(errno));
    dist_barrier(d);

    /* resume: rank 0 picks the checkpoint (the newest complete one), every rank reads it */
    int64_t step = 0;
    char *resume_path = NULL;
    if (o->resume) {
        if (strcmp(o->resume, "auto") != 0) resume_path = xstrdup(o->resume);
        else {
            char *p = d->rank == 0 ? ckpt_find_latest(o->out_dir) : NULL;
            int len = p ? (int)strlen(p) + 1 : 0;
            MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, d->comm));
            if (len > 0) {
                if (!p) p = xmalloc((size_t)len);
                MPI_CHECK(MPI_Bcast(p, len, MPI_CHAR, 0, d->comm));
            }
            resume_path = p;
        }
        if (!resume_path && strcmp(o->resume, "auto") != 0)
            beit_fatal_user(BEIT_EXIT_CHECKPOINT, "--resume: no checkpoint given");
    }
    if (!o->resume) { /* a fresh run must not clobber another run's checkpoints and metrics */
        char *prev = ckpt_find_latest(o->out_dir);
        if (prev)
            beit_fatal_user(BEIT_EXIT_USAGE,
                            "%s already holds checkpoints (%s): continue that run with --resume auto, or give "
                            "another --out", o->out_dir, prev);
    }
    if (resume_path) {
        ckpt_reader r;
        ckpt_open(&r, resume_path);
        if (strcmp(r.kind, t->kind) != 0)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: a '%s' checkpoint, this run trains '%s'", resume_path, r.kind, t->kind);
        ckpt_load_params(&r, pt);
        if (zero) ckpt_load_optim_part(&r, pt, &opt); /* this rank's shard */
        else ckpt_load_optim(&r, pt, m, v);            /* the whole state, on every rank */
        step = r.step;
        if (r.nranks != d->size)
            beit_log("resuming a checkpoint of %d rank%s on %d: the optimizer state is re-sharded; the global batch "
                     "and the data order are unchanged", r.nranks, r.nranks == 1 ? "" : "s", d->size);
        ckpt_close(&r);
        beit_log("resumed from %s at step %lld", resume_path, (long long)step);
    } else if (o->resume) {
        beit_log("--resume auto: no checkpoint in %s, starting from step 0", o->out_dir);
    }

    if (d->rank == 0) {
        char *p = xasprintf("%s/config.yaml", o->out_dir);
        write_text(p, yaml);
        free(p);
    }
    FILE *mf = d->rank == 0 ? open_metrics(o->out_dir, resume_path != NULL, step) : NULL;

    beit_log("%s: %lld steps (%lld per epoch, %.3g epochs), global batch %d on %d rank%s, %zu parameters",
             t->kind, (long long)total, (long long)t->steps_per_epoch, c->train.epochs, t->images_per_step,
             d->size, d->size > 1 ? "s" : "", pt->total);
    if (d->size > 1)
        beit_log("gradient reduction: %d bucket%s (first %zu floats, then %zu), fixed rank-order sums, %s; optimizer "
                 "state %s (rank 0 holds %zu of %zu floats)",
                 red.nb, red.nb == 1 ? "" : "s", red.first_floats, red.bucket_floats,
                 overlap ? "overlapped with the last backward pass" : "after the backward pass",
                 zero ? "sharded over the ranks (ZeRO-1)" : "replicated", nstate, pt->total);

    int64_t stop = total;
    if (o->max_steps >= 0 && step + o->max_steps < stop) stop = step + o->max_steps;
    const int nm = t->nmetrics;
    double *sums = xcalloc((size_t)(2 * nm + 1), sizeof(double)); /* + this rank's gradient sum of squares */
    double *acc = xcalloc((size_t)(2 * nm), sizeof(double));      /* over the logging window */
    double t_start = beit_now(), t_window = t_start;
    int64_t window_steps = 0, first_step = step;
    double last_loss = NAN;
    uint64_t bytes_window = red.bytes_sent;
    double wait_window = red.wait_s;
    uint64_t early_window = red.buckets_early, posted_window = red.buckets_total;
    int warned_passes = 0;

    prof_loop_start(); /* step records and timers (prof.h): off unless `beit bench` turned them on */
    for (; step < stop; step++) {
        prof_step_begin();
        double lr = schedule_cosine(step, total, warm, c->optim.lr, c->optim.min_lr, 0.0);
        params_zero_grad(pt);
        PROF_BEGIN(PROF_DATA);
        double count = t->prepare(t->ctx, step);
        PROF_END(PROF_DATA);
        PROF_BEGIN(PROF_COMM);
        dist_sum_f64_ordered(d, &count, 1);
        PROF_END(PROF_COMM);
        memset(sums, 0, (size_t)(2 * nm + 1) * sizeof(double));
        dist_reduce_begin(&red, pt->grad, !zero);
        overlap_ctx oc = {&red, pt->total, backward_passes(c, t->images_per_step, d), 0};
        if (overlap) {
            pt->grad_ready = overlap_hook;
            pt->grad_ready_ctx = &oc;
        }
        t->forward_backward(t->ctx, step, count, sums);
        pt->grad_ready = NULL;
        pt->grad_ready_ctx = NULL;
        if (overlap && oc.passes != oc.expected && !warned_passes) {
            beit_log_all("step %lld: %d backward pass%s, the loop expected %d: the gradient reduction ran after the "
                         "backward pass (correct, not overlapped)", (long long)step + 1, oc.passes,
                         oc.passes == 1 ? "" : "es", oc.expected);
            warned_passes = 1;
        }
        PROF_BEGIN(PROF_COMM);
        dist_reduce_end(&red);
        PROF_END(PROF_COMM);
        /* the global gradient norm: each rank's sum of squares over the chunks it owns (final
         * there in both modes), summed in rank order with the metrics */
        double ss = 0;
        PROF_BEGIN(PROF_OPTIM);
        for (int i = 0; i < red.nown; i++)
            for (size_t k = red.own[i].lo; k < red.own[i].hi; k++) ss += (double)pt->grad[k] * pt->grad[k];
        PROF_END(PROF_OPTIM);
        sums[2 * nm] = ss;
        PROF_BEGIN(PROF_COMM);
        dist_sum_f64_ordered(d, sums, (size_t)(2 * nm + 1));
        PROF_END(PROF_COMM);
        double loss = sums[0] / (sums[1] > 0 ? sums[1] : 1);
        double gnorm = sqrt(sums[2 * nm]);
        if (!isfinite(loss) || !isfinite(gnorm))
            beit_fatal_user(BEIT_EXIT_NONFINITE,
                            "step %lld: %s is %s (loss %g, gradient norm %g); stopping. The last checkpoint in %s "
                            "is intact: lower optim.lr or raise optim.warmup_*, then --resume auto",
                            (long long)step + 1, !isfinite(loss) ? "the loss" : "the gradient norm",
                            isnan(!isfinite(loss) ? loss : gnorm) ? "NaN" : "Inf", loss, gnorm, o->out_dir);
        PROF_BEGIN(PROF_OPTIM);
        if (zero) {
            for (int i = 0; i < red.nown; i++) {
                const dist_range *q = &red.own[i];
                grad_clip_scale(pt->grad + q->lo, q->hi - q->lo, gnorm, c->optim.clip_grad);
                adamw_step_range(pt, q->lo, q->hi, m + q->off, v + q->off, lr, &acfg, step + 1);
            }
            PROF_BEGIN(PROF_COMM);
            dist_allgather_owned(&red, pt->data);
            PROF_END(PROF_COMM);
        } else {
            grad_clip_scale(pt->grad, pt->total, gnorm, c->optim.clip_grad);
            adamw_step_range(pt, 0, pt->total, m, v, lr, &acfg, step + 1);
        }
        PROF_END(PROF_OPTIM);
        last_loss = loss;
        for (int i = 0; i < 2 * nm; i++) acc[i] += sums[i];
        window_steps++;
        prof_step_end();

        int64_t done = step + 1;
        /* a stop request on any rank stops every rank after this step (one small all-reduce) */
        int stop_sig = beit_stop_signal();
        if (d->size > 1) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &stop_sig, 1, MPI_INT, MPI_MAX, d->comm));
        const int preempt = stop_sig != 0 && done < stop;
        if (stop_sig != 0 && done == stop)
            beit_log("%s received during step %lld, the last of this run: it ends normally with its checkpoint",
                     stop_signal_name(stop_sig), (long long)done);
        if (preempt)
            beit_log("%s received: stopping after step %lld of %lld, writing a checkpoint", stop_signal_name(stop_sig),
                     (long long)done, (long long)total);
        int log_now = done % c->train.log_every == 0 || done == stop || done == first_step + 1 || preempt;
        if (log_now) {
            double now = beit_now();
            double dt = now - t_window;
            double ips = dt > 0 ? (double)window_steps * t->images_per_step / dt : 0;
            double per_step = (now - t_start) / (double)(done - first_step);
            double eta = per_step * (double)(stop - done);
            double comm_bytes = (double)(red.bytes_sent - bytes_window) / (double)window_steps;
            double comm_wait = (red.wait_s - wait_window) / (double)window_steps;
            uint64_t posted = red.buckets_total - posted_window;
            double early = posted ? (double)(red.buckets_early - early_window) / (double)posted : 0;
            const char *xn[8];
            double xv[8];
            int nx = t->extra_log ? t->extra_log(t->ctx, step, xn, xv, 8) : 0;
            if (d->rank == 0) {
                char line[2048], eta_s[32], el_s[32];
                int k = snprintf(line, sizeof line, "step %lld/%lld (ep %.2f)", (long long)done, (long long)total,
                                 (double)done / (double)t->steps_per_epoch);
                for (int i = 0; i < nm && k < (int)sizeof line; i++)
                    k += snprintf(line + k, sizeof line - (size_t)k, " %s %.5g", t->metric_names[i],
                                  acc[2 * i] / (acc[2 * i + 1] > 0 ? acc[2 * i + 1] : 1));
                for (int i = 0; i < nx && k < (int)sizeof line; i++)
                    k += snprintf(line + k, sizeof line - (size_t)k, " %s %.4g", xn[i], xv[i]);
                snprintf(line + k, sizeof line - (size_t)k, " lr %.3e gnorm %.3g %.1f img/s elapsed %s eta %s", lr,
                         gnorm, ips, beit_fmt_duration(now - t_start, el_s, sizeof el_s),
                         beit_fmt_duration(eta, eta_s, sizeof eta_s));
                beit_log("%s", line);
                fprintf(mf, "{\"step\": %lld, \"epoch\": %.4f", (long long)done, (double)done / (double)t->steps_per_epoch);
                for (int i = 0; i < nm; i++)
                    fprintf(mf, ", \"%s\": %.8g", t->metric_names[i], acc[2 * i] / (acc[2 * i + 1] > 0 ? acc[2 * i + 1] : 1));
                for (int i = 0; i < nx; i++) fprintf(mf, ", \"%s\": %.8g", xn[i], xv[i]);
                fprintf(mf, ", \"lr\": %.8g, \"grad_norm\": %.8g, \"images_per_s\": %.4g, \"elapsed_s\": %.3f, \"eta_s\": %.1f"
                            ", \"comm_bytes\": %.0f, \"comm_wait_s\": %.6f, \"comm_overlap\": %.4f}\n",
                        lr, gnorm, ips, now - t_start, eta, comm_bytes, comm_wait, early);
                fflush(mf);
            }
            memset(acc, 0, (size_t)(2 * nm) * sizeof(double));
            window_steps = 0;
            t_window = now;
            bytes_window = red.bytes_sent;
            wait_window = red.wait_s;
            early_window = red.buckets_early;
            posted_window = red.buckets_total;
        }
        int ckpt_now = done == stop || preempt || (c->train.ckpt_every > 0 && done % c->train.ckpt_every == 0);
        if (ckpt_now) {
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
            ckpt_meta meta = {t->kind, done, (uint64_t)c->seed, yaml};
            ckpt_write_part(p, pt, &opt, &meta, d);
            if (d->rank == 0) ckpt_rotate(o->out_dir, c->train.keep_last);
            beit_log("checkpoint %s (params checksum %016llx, identical on all %d ranks)", p, (unsigned long long)cs,
                     d->size);
            if (preempt) {
                /* every rank is here (the stop was agreed): end cleanly with the documented code;
                 * the handlers stay installed, so a further signal cannot kill a rank now */
                beit_log("preempted at step %lld: checkpoint %s written; resume with --resume auto", (long long)done, p);
                if (mf) fclose(mf);
                beit_exit_all(BEIT_EXIT_PREEMPTED);
            }
            free(p);
        }
    }
    beit_stop_signals_restore();
    if (mf) fclose(mf);
    train_result res = {step, last_loss, beit_now() - t_start};
    free(sums);
    free(acc);
    free(m);
    free(v);
    free(parts);
    dist_reducer_free(&red);
    free(yaml);
    free(resume_path);
    return res;
}
