/* beit bench: the C side of tools/bench. Not a training command: it measures.
 *
 *   beit bench sgemm [--n N] [--reps R]
 *       gemm() (gemm.h; fp32: cblas_sgemm) on N x N x N (default 2048) with the process's
 *       OpenBLAS threads: one untimed call, then R (default 5) timed ones; 2 N^3 / seconds each.
 *   beit bench pretrain|dvae -c JOB --out DIR --steps N [--set KEY=VALUE]... [--profile]
 *       runs the training command's own code (pretrain_main / dvae_train_main: the task, the
 *       shared loop, the gradient reduction, AdamW; the run directory gets what a run writes,
 *       including the final checkpoint) for N steps with step records on (prof.h): per step
 *       the seconds from prepare() to the end of the optimizer, VmRSS after it; VmRSS at the
 *       start of the loop (after initialisation) with VmHWM reset there, VmHWM at the end.
 *       --profile also switches the per-op timers on (seconds, calls, flops per category).
 *   beit bench encode -c JOB [--set KEY=VALUE]... [--batch B] [--steps N]
 *       what `beit tokenize` spends its compute on: dvae_encode (encoder forward + argmax) of
 *       B images per rank (default 64) from the job's dVAE (dvae.*, random init weights) on the
 *       job's data (data=synthetic for generated images), N times (default 10); each call is
 *       timed between barriers (a step = the slowest rank's call).
 *   beit bench reduce [--floats N,N,...] [--reps R] [--bucket-mb B] [--zero]
 *       the gradient reduction the loop runs (comm.h: dist_reducer, fixed-order sums) on a
 *       buffer of N floats (default a ladder 2^10 .. 2^26), R timed reductions per size
 *       (default 5) after one untimed, each between barriers (the slowest rank's time);
 *       --zero: reduce-scatter + parameter all-gather (dist.zero: 1) instead of all-reduce.
 *       tools/scaling fits latency and bandwidth to it; over two hosts it is the link test.
 *
 * Every mode prints one JSON object on stdout (rank 0; logs go to stderr) with the raw
 * per-step numbers, per rank where they differ, and the OpenBLAS build and environment
 * (OPENBLAS_NUM_THREADS, OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE as set, or null). tools/bench
 * turns them into medians and the table. */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/comm.h"
#include "beit/dvae.h"
#include "beit/gemm.h"
#include "beit/prof.h"
#include "beit/source.h"
#include "beit/tasks.h"
#include "commands.h"
#include "runopts.h"

#include <cblas.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: beit bench sgemm [--n N] [--reps R]\n"
    "       beit bench pretrain|dvae -c JOB --out DIR --steps N [--set KEY=VALUE]... [--profile]\n"
    "       beit bench encode -c JOB [--set KEY=VALUE]... [--batch B] [--steps N]\n"
    "       beit bench reduce [--floats N,N,...] [--reps R] [--bucket-mb B] [--zero]\n"
    "\n"
    "Measurements for tools/bench (not a training command). sgemm: GFLOP/s of cblas_sgemm on\n"
    "N x N x N (default 2048) with the process's OpenBLAS threads, R timed calls (default 5)\n"
    "after one untimed. pretrain / dvae: the training command's own code for N steps, recording\n"
    "per step its seconds (prepare to optimizer) and resident set; --profile adds per-op timers\n"
    "(share of GEMMs, attention, LayerNorm, GELU, softmax, optimizer, data, communication; see\n"
    "include/beit/prof.h). encode: dvae_encode of B images per rank (default 64), N times\n"
    "(default 10), the compute of `beit tokenize`. reduce: the training loop's gradient reduction\n"
    "(fixed-order, bucketed) of N floats per rank (default 2^10 .. 2^26), R timed runs per size\n"
    "(default 5); --zero: reduce-scatter + all-gather as with dist.zero: 1. Prints one JSON object on stdout; logs go to\n"
    "stderr. Run from tools/bench, which also runs the PyTorch side and prints the table.\n"
    "Example: OPENBLAS_NUM_THREADS=2 build/beit bench pretrain -c jobs/fmnist/pretrain.yaml \\\n"
    "           --set data=synthetic --set data.tokens= --set train.global_batch=64 --steps 6 \\\n"
    "           --out /tmp/b --profile";

/* ---- JSON output ---- */
static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void json_doubles(FILE *f, const double *v, int n, int stride) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.9g", i ? ", " : "", v[(size_t)i * stride]);
    fputc(']', f);
}

static void json_env(FILE *f) {
    char *corename = openblas_get_corename(), *config = openblas_get_config();
    fprintf(f, "\"openblas\": {\"threads\": %d, \"corename\": ", openblas_get_num_threads());
    json_str(f, corename);
    fputs(", \"config\": ", f);
    json_str(f, config);
    const char *vars[] = {"OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};
    for (int i = 0; i < 3; i++) {
        fprintf(f, ", \"%s\": ", vars[i]);
        json_str(f, getenv(vars[i]));
    }
    fputc('}', f);
}

static int parse_int(const char *flag, const char *v, int lo) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < lo || x > 1000000)
        beit_fatal_user(BEIT_EXIT_USAGE, "beit bench: %s expects a whole number >= %d, got '%s'", flag, lo, v);
    return (int)x;
}

/* ---- sgemm ---- */
static int bench_sgemm(int argc, char **argv) {
    const char *n_s = NULL, *reps_s = NULL;
    extra_flag ex[] = {{"--n", "N", "matrix side (default 2048)", &n_s},
                       {"--reps", "R", "timed calls (default 5)", &reps_s},
                       {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, argc, argv, 0, ex, USAGE)) return 0;
    const int n = n_s ? parse_int("--n", n_s, 1) : 2048, reps = reps_s ? parse_int("--reps", reps_s, 1) : 5;
    const size_t nn = (size_t)n * n;
    float *a = xalloc_floats(nn), *b = xalloc_floats(nn), *c = xalloc_floats(nn);
    rng_t r = rng_stream(0, RNG_TEST, 7, 0);
    for (size_t i = 0; i < nn; i++) {
        a[i] = rng_uniform(&r) - 0.5f;
        b[i] = rng_uniform(&r) - 0.5f;
    }
    double *gf = xcalloc((size_t)reps, sizeof(double));
    for (int k = -1; k < reps; k++) {
        double t0 = beit_now();
        gemm(&gemm_fp32, GEMM_N, GEMM_N, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = beit_now() - t0;
        if (k >= 0) gf[k] = 2.0 * n * (double)n * n / dt / 1e9;
    }
    if (beit_rank() == 0) {
        printf("{\"bench\": \"sgemm\", \"n\": %d, \"gflops\": ", n);
        json_doubles(stdout, gf, reps, 1);
        printf(", \"check\": %.6g, ", (double)c[nn / 2]);
        json_env(stdout);
        printf("}\n");
        fflush(stdout);
    }
    free(a);
    free(b);
    free(c);
    free(gf);
    return 0;
}

/* ---- pretrain / dvae through the training command ---- */
enum { NB_HDR = 4 }; /* per rank: rss_init, hwm, hwm_reset, ops */

static int bench_train(int argc, char **argv, const char *what) {
    const char *profile = NULL;
    extra_flag ex[] = {{"--profile", NULL, "per-op timers too (include/beit/prof.h)", &profile}, {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_CONFIG | RUNOPT_SET | RUNOPT_OUT | RUNOPT_STEPS | RUNOPT_SEED, ex,
                      USAGE))
        return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    const int pre = strcmp(what, "pretrain") == 0;
    const int task = pre ? BEIT_TASK_PRETRAIN : BEIT_TASK_DVAE;
    if (c.task != task)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: task is '%s'; beit bench %s needs a job with task: %s", ro.config,
                        config_enum_name("task", c.task), what, config_enum_name("task", task));
    if (!ro.out) beit_fatal_user(BEIT_EXIT_USAGE, "beit bench %s: --out DIR is required (the run directory)", what);
    if (ro.steps < 1) beit_fatal_user(BEIT_EXIT_USAGE, "beit bench %s: --steps N (>= 1) is required", what);
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    const int steps = (int)ro.steps;
    prof_record_steps(steps, profile != NULL);
    train_opts o = {ro.out, ro.steps, NULL, runopts_source(&ro), NULL};
    double t0 = beit_now();
    int rc = pre ? pretrain_main(&c, &o, &d) : dvae_train_main(&c, &o, &d);
    double wall = beit_now() - t0;
    if (rc != 0) return rc;

    /* gather every rank's record: [hdr][steps: seconds][steps: rss][steps*NCAT: s, flops, calls] */
    prof_record pr = prof_get_record();
    const int ns = pr.nsteps < steps ? pr.nsteps : steps;
    const size_t per = NB_HDR + 2 * (size_t)steps + 3 * (size_t)steps * PROF_NCAT;
    double *mine = xcalloc(per, sizeof(double)), *all = NULL;
    mine[0] = (double)pr.rss_init_kb;
    mine[1] = (double)pr.hwm_kb;
    mine[2] = pr.hwm_reset;
    mine[3] = pr.ops;
    double *sec = mine + NB_HDR, *rss = sec + steps, *cs = rss + steps, *cf = cs + (size_t)steps * PROF_NCAT,
           *cc = cf + (size_t)steps * PROF_NCAT;
    for (int i = 0; i < ns; i++) {
        sec[i] = pr.step[i].seconds;
        rss[i] = (double)pr.step[i].rss_kb;
        for (int k = 0; k < PROF_NCAT; k++) {
            cs[(size_t)i * PROF_NCAT + k] = pr.step[i].cat_s[k];
            cf[(size_t)i * PROF_NCAT + k] = pr.step[i].cat_flops[k];
            cc[(size_t)i * PROF_NCAT + k] = (double)pr.step[i].cat_calls[k];
        }
    }
    int nsmin = ns;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &nsmin, 1, MPI_INT, MPI_MIN, d.comm));
    if (d.rank == 0) all = xcalloc(per * (size_t)d.size, sizeof(double));
    MPI_CHECK(MPI_Gather(mine, (int)per, MPI_DOUBLE, all, (int)per, MPI_DOUBLE, 0, d.comm));
    if (d.rank == 0) {
        FILE *f = stdout;
        fprintf(f, "{\"bench\": \"%s\", \"ranks\": %d, \"global_batch\": %d, \"steps\": %d, \"wall_s\": %.3f, ", what,
                d.size, c.train.global_batch, nsmin, wall);
        json_env(f);
        fputs(", \"categories\": [", f);
        for (int k = 0; k < PROF_NCAT; k++) fprintf(f, "%s\"%s\"", k ? ", " : "", prof_cat_name((prof_cat)k));
        fputs("], \"per_rank\": [", f);
        for (int q = 0; q < d.size; q++) {
            const double *p = all + per * (size_t)q;
            const double *qs = p + NB_HDR, *qr = qs + steps, *qcs = qr + steps, *qcf = qcs + (size_t)steps * PROF_NCAT,
                         *qcc = qcf + (size_t)steps * PROF_NCAT;
            fprintf(f, "%s{\"rank\": %d, \"rss_init_kb\": %.0f, \"hwm_kb\": %.0f, \"hwm_reset\": %d, \"step_s\": ",
                    q ? ", " : "", q, p[0], p[1], (int)p[2]);
            json_doubles(f, qs, nsmin, 1);
            fputs(", \"rss_kb\": ", f);
            json_doubles(f, qr, nsmin, 1);
            if (p[3] != 0) {
                fputs(", \"profile\": {", f);
                for (int k = 0; k < PROF_NCAT; k++) {
                    fprintf(f, "%s\"%s\": {\"s\": ", k ? ", " : "", prof_cat_name((prof_cat)k));
                    json_doubles(f, qcs + k, nsmin, PROF_NCAT);
                    fputs(", \"flops\": ", f);
                    json_doubles(f, qcf + k, nsmin, PROF_NCAT);
                    fputs(", \"calls\": ", f);
                    json_doubles(f, qcc + k, nsmin, PROF_NCAT);
                    fputc('}', f);
                }
                fputc('}', f);
            }
            fputc('}', f);
        }
        fputs("]}\n", f);
        fflush(f);
    }
    free(mine);
    free(all);
    return 0;
}

/* ---- encode ---- */
static int bench_encode(int argc, char **argv) {
    const char *batch_s = NULL;
    extra_flag ex[] = {{"--batch", "B", "images per rank per call (default 64)", &batch_s}, {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_CONFIG | RUNOPT_SET | RUNOPT_STEPS | RUNOPT_SEED, ex, USAGE)) return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    const int B = batch_s ? parse_int("--batch", batch_s, 1) : 64;
    const int steps = ro.steps >= 1 ? (int)ro.steps : 10;
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);

    dvae_dims dd;
    dvae_dims_from_config(&dd, &c);
    param_table pt;
    dvae_model m;
    params_init(&pt);
    dvae_build(&m, &pt, &dd);
    params_alloc(&pt);
    dvae_init(&m, &pt, (uint64_t)c.seed);
    dvae_alloc(&m, B);
    data_source src;
    source_open(&src, &c, c.data.split, B * d.size, 0, &d, dd.image_size, dd.in_chans);
    if (source_steps_per_epoch(&src) < 1)
        beit_fatal_user(BEIT_EXIT_USAGE, "beit bench encode: the split has fewer than %d images", B * d.size);
    uint8_t *img8 = xmalloc((size_t)B * src.H * src.W * src.C);
    float *x = xalloc_floats((size_t)B * dd.in_chans * dd.image_size * dd.image_size);
    int32_t *tok = xmalloc((size_t)B * m.P * sizeof(int32_t));
    int n = source_next(&src, 0, 0, img8, NULL, NULL);
    images_to_float(x, img8, n, src.H, src.W, src.C, dd.image_size);
    beit_log("bench encode: dVAE %dx%dx%d -> %dx%d tokens over V = %d, %d image%s per rank per call, %d call%s",
             dd.image_size, dd.image_size, dd.in_chans, m.h, m.h, m.V, n, n == 1 ? "" : "s", steps,
             steps == 1 ? "" : "s");

    long rss0 = 0, hwm = 0;
    int reset = prof_reset_hwm() == 0;
    prof_read_rss(&rss0, &hwm);
    double *sec = xcalloc((size_t)steps, sizeof(double));
    long *rss = xcalloc((size_t)steps, sizeof(long));
    for (int s = 0; s < steps; s++) {
        dist_barrier(&d);
        double t0 = beit_now();
        dvae_encode(&m, &pt, x, n, tok, NULL);
        sec[s] = beit_now() - t0;
        prof_read_rss(&rss[s], &hwm);
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sec, steps, MPI_DOUBLE, MPI_MAX, d.comm));
    double mem[3] = {(double)rss0, (double)hwm, reset}, *mems = d.rank == 0 ? xcalloc(3 * (size_t)d.size, sizeof(double)) : NULL;
    MPI_CHECK(MPI_Gather(mem, 3, MPI_DOUBLE, mems, 3, MPI_DOUBLE, 0, d.comm));
    int images = n;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &images, 1, MPI_INT, MPI_SUM, d.comm));
    int64_t hist = 0; /* tokens summed: keeps the work observable */
    for (int i = 0; i < n * m.P; i++) hist += tok[i];
    if (d.rank == 0) {
        printf("{\"bench\": \"encode\", \"ranks\": %d, \"batch_per_rank\": %d, \"images_per_step\": %d, \"steps\": %d, "
               "\"token_sum_rank0\": %lld, \"step_s\": ",
               d.size, n, images, steps, (long long)hist);
        json_doubles(stdout, sec, steps, 1);
        printf(", \"per_rank\": [");
        for (int q = 0; q < d.size; q++)
            printf("%s{\"rank\": %d, \"rss_init_kb\": %.0f, \"hwm_kb\": %.0f, \"hwm_reset\": %d}", q ? ", " : "", q,
                   mems[3 * q], mems[3 * q + 1], (int)mems[3 * q + 2]);
        printf("], ");
        json_env(stdout);
        printf("}\n");
        fflush(stdout);
    }
    free(mems);
    free(sec);
    free(rss);
    free(img8);
    free(x);
    free(tok);
    source_close(&src);
    dvae_free(&m);
    params_free(&pt);
    return 0;
}

/* ---- reduce: the loop's gradient reduction alone ---- */
static int bench_reduce(int argc, char **argv) {
    const char *floats_s = NULL, *reps_s = NULL, *bucket_s = NULL, *zero_s = NULL;
    extra_flag ex[] = {{"--floats", "N,N,..", "buffer sizes in floats (default 2^10 .. 2^26, x4)", &floats_s},
                       {"--reps", "R", "timed reductions per size (default 5)", &reps_s},
                       {"--bucket-mb", "B", "bucket size in MiB (default 25, as dist.bucket_mb)", &bucket_s},
                       {"--zero", NULL, "reduce-scatter + all-gather (dist.zero: 1)", &zero_s},
                       {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, argc, argv, 0, ex, USAGE)) return 0;
    const int reps = reps_s ? parse_int("--reps", reps_s, 1) : 5;
    double bucket_mb = 25;
    if (bucket_s) {
        char *end;
        bucket_mb = strtod(bucket_s, &end);
        if (*bucket_s == '\0' || *end != '\0' || !(bucket_mb > 0) || bucket_mb > 4096)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit bench reduce: --bucket-mb expects a size in MiB in (0, 4096], got '%s'",
                            bucket_s);
    }
    size_t sizes[64];
    int nsz = 0;
    if (floats_s) {
        const char *q = floats_s;
        while (*q) {
            char *end;
            long long v = strtoll(q, &end, 10);
            if (end == q || v < 1 || v > (1LL << 30) || (*end && *end != ',') || nsz == 64)
                beit_fatal_user(BEIT_EXIT_USAGE,
                                "beit bench reduce: --floats expects up to 64 comma-separated counts in [1, 2^30], got '%s'",
                                floats_s);
            sizes[nsz++] = (size_t)v;
            q = *end ? end + 1 : end;
        }
    } else {
        for (size_t n = (size_t)1 << 10; n <= (size_t)1 << 26; n <<= 2) sizes[nsz++] = n;
    }
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    const int gather = zero_s == NULL;
    if (d.rank == 0)
        printf("{\"bench\": \"reduce\", \"ranks\": %d, \"mode\": \"%s\", \"bucket_mb\": %g, \"reps\": %d, \"sizes\": [",
               d.size, gather ? "allreduce" : "zero1", bucket_mb, reps);
    double *sec = xcalloc((size_t)reps, sizeof(double));
    for (int k = 0; k < nsz; k++) {
        const size_t n = sizes[k];
        float *buf = xalloc_floats(n);
        dist_reducer red;
        dist_reducer_init(&red, &d, n, bucket_mb);
        uint64_t b0 = 0;
        for (int i = -1; i < reps; i++) {
            for (size_t j = 0; j < n; j++) buf[j] = (float)((j + (size_t)d.rank) % 7) * 0.25f;
            if (i == 0) b0 = red.bytes_sent;
            dist_barrier(&d);
            double t0 = beit_now();
            dist_reduce_begin(&red, buf, gather);
            dist_reduce_end(&red);
            if (!gather) dist_allgather_owned(&red, buf);
            double dt = beit_now() - t0;
            if (i >= 0) sec[i] = dt;
        }
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sec, reps, MPI_DOUBLE, MPI_MAX, d.comm));
        /* the sums are checked: a reduction that lost a message must not pass as fast */
        double want = 0;
        for (int j = 0; j < d.size; j++) want += (double)((n / 2 + (size_t)j) % 7) * 0.25;
        if (fabs((double)buf[n / 2] - want) > 1e-3)
            beit_fatal(BEIT_EXIT_FAILURE, "bench reduce: wrong sum at %zu floats (%g, want %g)", n, (double)buf[n / 2],
                       want);
        if (d.rank == 0) {
            printf("%s{\"floats\": %zu, \"buckets\": %d, \"bytes_sent_rank0\": %.0f, \"seconds\": ", k ? ", " : "", n,
                   red.nb, (double)(red.bytes_sent - b0) / reps);
            json_doubles(stdout, sec, reps, 1);
            putchar('}');
            fflush(stdout);
        }
        dist_reducer_free(&red);
        free(buf);
    }
    if (d.rank == 0) {
        printf("], ");
        json_env(stdout);
        printf("}\n");
        fflush(stdout);
    }
    free(sec);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        if (beit_rank() == 0) printf("%s\n", USAGE);
        return argc < 2 ? BEIT_EXIT_USAGE : 0;
    }
    const char *what = argv[1];
    beit_log_to_stderr(); /* stdout carries the JSON */
    if (!strcmp(what, "sgemm")) return bench_sgemm(argc - 1, argv + 1);
    if (!strcmp(what, "pretrain") || !strcmp(what, "dvae")) return bench_train(argc - 1, argv + 1, what);
    if (!strcmp(what, "encode")) return bench_encode(argc - 1, argv + 1);
    if (!strcmp(what, "reduce")) return bench_reduce(argc - 1, argv + 1);
    beit_fatal_user(BEIT_EXIT_USAGE, "beit bench: unknown mode '%s' (sgemm, pretrain, dvae, encode, reduce; see --help)",
                    what);
}
