/* The training loop (see include/beit/train.h). */
#include "beit/train.h"

#include "beit/checkpoint.h"
#include "beit/core.h"

#include <errno.h>
#include <math.h>
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

static FILE *open_metrics(const char *dir, int append) {
    char *p = xasprintf("%s/metrics.jsonl", dir);
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

train_result train_run(train_task *t, const beit_config *c, const train_opts *o, const beit_dist *d) {
    param_table *pt = t->pt;
    const int64_t total = train_total_steps(c, t->steps_per_epoch);
    const int64_t warm = warmup_steps(c, t->steps_per_epoch);
    adamw_config acfg = {c->optim.beta1, c->optim.beta2, c->optim.eps, c->optim.weight_decay};
    float *m = xalloc_floats(pt->total), *v = xalloc_floats(pt->total);
    char *yaml = config_to_yaml(c);

    if (d->rank == 0 && beit_mkdir_p(o->out_dir) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "cannot create run directory %s: %s", o->out_dir, strerror(errno));
    dist_barrier(d);

    /* resume */
    int64_t step = 0;
    char *resume_path = NULL;
    if (o->resume) {
        resume_path = strcmp(o->resume, "auto") == 0 ? ckpt_find_latest(o->out_dir) : xstrdup(o->resume);
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
        ckpt_load_optim(&r, pt, m, v);
        step = r.step;
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
    FILE *mf = d->rank == 0 ? open_metrics(o->out_dir, resume_path != NULL) : NULL;

    beit_log("%s: %lld steps (%lld per epoch, %.3g epochs), global batch %d on %d rank%s, %zu parameters",
             t->kind, (long long)total, (long long)t->steps_per_epoch, c->train.epochs, t->images_per_step,
             d->size, d->size > 1 ? "s" : "", pt->total);

    int64_t stop = total;
    if (o->max_steps >= 0 && step + o->max_steps < stop) stop = step + o->max_steps;
    const int nm = t->nmetrics;
    double *sums = xcalloc((size_t)(2 * nm), sizeof(double));
    double *acc = xcalloc((size_t)(2 * nm), sizeof(double)); /* over the logging window */
    double t_start = beit_now(), t_window = t_start;
    int64_t window_steps = 0, first_step = step;
    double last_loss = NAN;

    for (; step < stop; step++) {
        double lr = schedule_cosine(step, total, warm, c->optim.lr, c->optim.min_lr, 0.0);
        params_zero_grad(pt);
        double count = t->prepare(t->ctx, step);
        dist_sum_f64(d, &count, 1);
        memset(sums, 0, (size_t)(2 * nm) * sizeof(double));
        t->forward_backward(t->ctx, step, count, sums);
        dist_sum_f32(d, pt->grad, pt->total);
        dist_sum_f64(d, sums, (size_t)(2 * nm));
        double loss = sums[0] / (sums[1] > 0 ? sums[1] : 1);
        double gnorm = sqrt(grad_sumsq(pt->grad, pt->total));
        if (!isfinite(loss) || !isfinite(gnorm))
            beit_fatal_user(BEIT_EXIT_NONFINITE,
                            "step %lld: %s is %s (loss %g, gradient norm %g); stopping. The last checkpoint in %s "
                            "is intact: lower optim.lr or raise optim.warmup_*, then --resume auto",
                            (long long)step + 1, !isfinite(loss) ? "the loss" : "the gradient norm",
                            isnan(!isfinite(loss) ? loss : gnorm) ? "NaN" : "Inf", loss, gnorm, o->out_dir);
        grad_clip_scale(pt->grad, pt->total, gnorm, c->optim.clip_grad);
        adamw_step_range(pt, 0, pt->total, m, v, lr, &acfg, step + 1);
        last_loss = loss;
        for (int i = 0; i < 2 * nm; i++) acc[i] += sums[i];
        window_steps++;

        int64_t done = step + 1;
        int log_now = done % c->train.log_every == 0 || done == stop || done == first_step + 1;
        if (log_now) {
            double now = beit_now();
            double dt = now - t_window;
            double ips = dt > 0 ? (double)window_steps * t->images_per_step / dt : 0;
            double per_step = (now - t_start) / (double)(done - first_step);
            double eta = per_step * (double)(stop - done);
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
                fprintf(mf, ", \"lr\": %.8g, \"grad_norm\": %.8g, \"images_per_s\": %.4g, \"elapsed_s\": %.3f, \"eta_s\": %.1f}\n",
                        lr, gnorm, ips, now - t_start, eta);
                fflush(mf);
            }
            memset(acc, 0, (size_t)(2 * nm) * sizeof(double));
            window_steps = 0;
            t_window = now;
        }
        int ckpt_now = done == stop || (c->train.ckpt_every > 0 && done % c->train.ckpt_every == 0);
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
            ckpt_write(p, pt, m, v, &meta, d);
            if (d->rank == 0) ckpt_rotate(o->out_dir, c->train.keep_last);
            beit_log("checkpoint %s (params checksum %016llx, identical on all %d ranks)", p, (unsigned long long)cs,
                     d->size);
            free(p);
        }
    }
    if (mf) fclose(mf);
    train_result res = {step, last_loss, beit_now() - t_start};
    free(sums);
    free(acc);
    free(m);
    free(v);
    free(yaml);
    free(resume_path);
    return res;
}
