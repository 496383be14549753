/* The dVAE tokenizer task: Gumbel-softmax relaxation with an annealed temperature, recon loss
 * (MSE or logit-Laplace) + KL to the uniform prior; evaluation with hard argmax tokens. */
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/image.h"
#include "beit/nn.h"
#include "beit/source.h"
#include "beit/tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

double dvae_temperature(const beit_config *c, int64_t s, int64_t total) {
    int64_t A = c->dvae.temp_anneal_steps > 0 ? c->dvae.temp_anneal_steps : total;
    double a = c->dvae.temp_start, b = c->dvae.temp_end;
    if (s >= A) return b;
    return b + 0.5 * (a - b) * (1.0 + cos(PI * (double)s / (double)A));
}

double dvae_kl_weight(const beit_config *c, int64_t s) {
    int64_t w = c->dvae.kl_warmup_steps;
    if (w <= 0 || s >= w) return c->dvae.kl_weight;
    return c->dvae.kl_weight * (double)s / (double)w;
}

/* The dVAE task. Shapes: n = local_max, H x W x C stored images, S = dvae.image_size,
 * V = vocab, P = token positions per image. */
typedef struct {
    const beit_config *c;
    dvae_model m;
    param_table pt;
    data_source src;
    int64_t total_steps;
    int local_max, micro; /* samples per step on this rank (at most); images per forward */
    uint8_t *img8;        /* [n,H,W,C] */
    int64_t *idx;         /* [n] sample indices */
    float *x;             /* [n,C,S,S] on [0,1] */
    float *noise;         /* [micro,V,P] Gumbel noise */
    int n_local;          /* samples of this step on this rank */
    double tau, klw;      /* this step's temperature and KL weight */
} dvae_task;

static double dvae_prepare(void *ctx, int64_t step) {
    dvae_task *t = ctx;
    int64_t spe = source_steps_per_epoch(&t->src);
    int64_t epoch = step / spe, s = step % spe;
    t->n_local = source_next(&t->src, epoch, s, t->img8, NULL, t->idx);
    images_to_float(t->x, t->img8, t->n_local, t->src.H, t->src.W, t->src.C, t->m.S);
    t->tau = dvae_temperature(t->c, step, t->total_steps);
    t->klw = dvae_kl_weight(t->c, step);
    return (double)t->n_local * t->m.C * t->m.S * t->m.S; /* pixels */
}

static void dvae_fwd_bwd(void *ctx, int64_t step, double global_pixels, double *sums) {
    dvae_task *t = ctx;
    dvae_model *m = &t->m;
    const size_t per_img = (size_t)m->C * m->S * m->S, per_noise = (size_t)m->V * m->P;
    const double pix_per_pos = (double)per_img / m->P;
    const double global_pos = global_pixels / pix_per_pos;
    for (int a = 0; a < t->n_local; a += t->micro) {
        int B = t->n_local - a < t->micro ? t->n_local - a : t->micro;
        /* each sample's noise is keyed by (step, sample index): independent of ranks */
        for (int i = 0; i < B; i++) {
            rng_t r = rng_stream((uint64_t)t->c->seed, RNG_GUMBEL, (uint64_t)step, (uint32_t)t->idx[a + i]);
            gumbel_noise(t->noise + (size_t)i * per_noise, per_noise, &r);
        }
        dvae_sums s;
        dvae_forward(m, &t->pt, t->x + (size_t)a * per_img, t->noise, (float)t->tau, B, &s);
        dvae_backward(m, &t->pt, (float)(1.0 / global_pixels), (float)(t->klw / global_pos), B);
        sums[0] += s.recon_sum + t->klw * s.kl_sum * pix_per_pos; /* loss, per pixel */
        sums[1] += (double)s.pixels;
        sums[2] += s.recon_sum;
        sums[3] += (double)s.pixels;
        sums[4] += s.kl_sum;
        sums[5] += (double)s.positions;
        sums[6] += s.sq_err_sum;
        sums[7] += (double)s.pixels;
    }
}

static int dvae_extra(void *ctx, int64_t step, const char **names, double *values, int max) {
    dvae_task *t = ctx;
    (void)step;
    if (max < 2) return 0;
    names[0] = "temperature";
    values[0] = t->tau;
    names[1] = "kl_weight";
    values[1] = t->klw;
    return 2;
}

/* ---- evaluation ---- */
static uint8_t to_u8(float v) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (uint8_t)lrintf(v * 255.0f);
}

dvae_eval_result dvae_evaluate(dvae_model *m, const param_table *pt, const beit_config *c, const char *split,
                               const beit_dist *d, const char *png_path) {
    const int G = m->max_batch * d->size;
    data_source src;
    source_open(&src, c, split, G, 0, d, m->S, m->C);
    const int L = source_local_max(&src);
    const size_t per_img = (size_t)m->C * m->S * m->S;
    uint8_t *img8 = xmalloc((size_t)L * src.H * src.W * src.C);
    int64_t *idx = xmalloc((size_t)L * sizeof(int64_t));
    float *x = xalloc_floats((size_t)L * per_img), *rec = xalloc_floats((size_t)L * per_img);
    int32_t *tok = xmalloc((size_t)L * m->P * sizeof(int32_t));
    int64_t *hist = xcalloc((size_t)m->V, sizeof(int64_t));
    const int NGRID = 32;
    uint8_t *grid_orig = xcalloc((size_t)NGRID * per_img, 1), *grid_rec = xcalloc((size_t)NGRID * per_img, 1);
    double sq = 0;
    int64_t n = 0;
    for (int64_t s = 0; s < source_steps_per_epoch(&src); s++) {
        int k = source_next(&src, 0, s, img8, NULL, idx);
        if (k == 0) continue;
        images_to_float(x, img8, k, src.H, src.W, src.C, m->S);
        dvae_encode(m, pt, x, k, tok, NULL);
        dvae_decode_tokens(m, pt, tok, k, rec);
        for (size_t i = 0; i < (size_t)k * per_img; i++) {
            double e = (double)rec[i] - x[i];
            sq += e * e;
        }
        for (int i = 0; i < k * m->P; i++) hist[tok[i]]++;
        for (int i = 0; i < k; i++) /* the first NGRID samples of the split, as HWC bytes */
            if (idx[i] < NGRID)
                for (int ch = 0; ch < m->C; ch++)
                    for (int p = 0; p < m->S * m->S; p++) {
                        size_t o = (size_t)idx[i] * per_img + (size_t)p * m->C + ch;
                        grid_orig[o] = to_u8(x[(size_t)i * per_img + (size_t)ch * m->S * m->S + p]);
                        grid_rec[o] = to_u8(rec[(size_t)i * per_img + (size_t)ch * m->S * m->S + p]);
                    }
        n += k;
    }
    double tot[2] = {sq, (double)n};
    dist_sum_f64(d, tot, 2);
    dist_sum_i64(d, hist, (size_t)m->V);
    dvae_eval_result r = {0};
    r.n = (int64_t)tot[1];
    r.mse = tot[0] / (tot[1] * (double)per_img);
    r.psnr = 10.0 * log10(1.0 / r.mse);
    double total = 0, ent = 0;
    for (int v = 0; v < m->V; v++) total += (double)hist[v];
    for (int v = 0; v < m->V; v++)
        if (hist[v]) {
            r.codes_used++;
            double p = (double)hist[v] / total;
            ent -= p * log(p);
        }
    r.perplexity = exp(ent);
    if (png_path) {
        /* the grid bytes of each sample came from whichever rank read it: sum them on rank 0 */
        uint8_t *both = xcalloc((size_t)2 * NGRID * per_img, 1);
        memcpy(both, grid_orig, (size_t)NGRID * per_img);
        memcpy(both + (size_t)NGRID * per_img, grid_rec, (size_t)NGRID * per_img);
        if (d->size > 1)
            MPI_CHECK(MPI_Reduce(d->rank == 0 ? MPI_IN_PLACE : both, both, (int)(2 * NGRID * per_img), MPI_UNSIGNED_CHAR,
                                 MPI_SUM, 0, d->comm));
        if (d->rank == 0) {
            int ng = r.n < NGRID ? (int)r.n : NGRID, cols = 8;
            /* rows: 8 originals, then their 8 reconstructions, and so on */
            uint8_t *tiles = xcalloc((size_t)2 * NGRID * per_img, 1);
            int nt = 0;
            for (int row = 0; row * cols < ng; row++)
                for (int which = 0; which < 2; which++)
                    for (int j = 0; j < cols; j++) {
                        int i = row * cols + j;
                        if (i < ng)
                            memcpy(tiles + (size_t)nt * per_img, both + ((size_t)which * NGRID + i) * per_img, per_img);
                        nt++;
                    }
            int gh, gw;
            image_grid_size(nt, cols, m->S, m->S, 2, &gh, &gw);
            uint8_t *g = xmalloc((size_t)gh * gw * m->C);
            image_grid(g, tiles, nt, cols, m->S, m->S, m->C, 2, 128);
            char err[256];
            if (png_write(png_path, g, gh, gw, m->C, err, sizeof err) != 0)
                beit_fatal_user(BEIT_EXIT_IO, "cannot write %s: %s", png_path, err);
            free(g);
            free(tiles);
        }
        free(both);
    }
    free(img8); free(idx); free(x); free(rec); free(tok); free(hist); free(grid_orig); free(grid_rec);
    source_close(&src);
    return r;
}

/* After a finished run (or one of --steps) and every train.eval_every steps: reconstructions.png
 * and the results (eval.json / eval.jsonl). */
static int dvae_eval_hook(void *ctx, const train_result *res, const train_opts *o, const beit_dist *d,
                          eval_results *out) {
    dvae_task *t = ctx;
    const beit_config *c = t->c;
    if (res->final && !(res->steps_done >= t->total_steps || o->max_steps >= 0)) return 0;
    char *png = xasprintf("%s/reconstructions.png", o->out_dir);
    double t0 = beit_now();
    dvae_eval_result e = dvae_evaluate(&t->m, &t->pt, c, c->data.eval_split, d, png);
    beit_log("eval on '%s' (%lld images, hard argmax tokens): mse %.5f psnr %.2f dB, codes used %d of %d, "
             "perplexity %.1f (%.1fs); grid %s",
             c->data.eval_split, (long long)e.n, e.mse, e.psnr, e.codes_used, t->m.V, e.perplexity, beit_now() - t0,
             png);
    free(png);
    eval_put_str(out, "task", "dvae");
    eval_put_str(out, "split", c->data.eval_split);
    eval_put_int(out, "step", res->steps_done);
    eval_put_int(out, "n", e.n);
    eval_put_num(out, "mse", "%.8g", e.mse);
    eval_put_num(out, "psnr", "%.6g", e.psnr);
    eval_put_int(out, "codes_used", e.codes_used);
    eval_put_int(out, "vocab", t->m.V);
    eval_put_num(out, "perplexity", "%.6g", e.perplexity);
    return 1;
}

int dvae_train_main(const beit_config *c, const train_opts *o, const beit_dist *d) {
    dvae_task *t = xcalloc(1, sizeof *t);
    t->c = c;
    dvae_dims dims;
    dvae_dims_from_config(&dims, c);
    params_init(&t->pt);
    dvae_build(&t->m, &t->pt, &dims);
    params_alloc(&t->pt);
    dvae_init(&t->m, &t->pt, (uint64_t)c->seed);

    source_open(&t->src, c, c->data.split, c->train.global_batch, 1, d, dims.image_size, dims.in_chans);
    if (t->src.C != dims.in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dvae.in_chans = %d but the images of %s have %d channels", o->source,
                        dims.in_chans, c->data.path, t->src.C);
    t->local_max = source_local_max(&t->src);
    t->micro = c->train.micro_batch > 0 && c->train.micro_batch < t->local_max ? c->train.micro_batch : t->local_max;
    dvae_alloc(&t->m, t->micro);
    char wbuf[128] = "";
    for (int g = 0; g < dims.ngroups; g++)
        snprintf(wbuf + strlen(wbuf), sizeof wbuf - strlen(wbuf), "%s%d", g ? "/" : "", dims.widths[g]);
    beit_log("dvae: %dx%dx%d -> %dx%d tokens over V = %d; widths %s, %d block%s per group, %s reconstruction",
             dims.image_size, dims.image_size, dims.in_chans, t->m.h, t->m.h, t->m.V, wbuf, dims.blocks,
             dims.blocks == 1 ? "" : "s", dims.recon == DVAE_MSE ? "MSE" : "logit-Laplace");
    beit_log("dvae: activations %.1f MiB per rank for %d images per forward",
             (double)dvae_activation_bytes(&t->m, t->micro) / (1 << 20), t->micro);
    t->img8 = xmalloc((size_t)t->local_max * t->src.H * t->src.W * t->src.C);
    t->idx = xmalloc((size_t)t->local_max * sizeof(int64_t));
    t->x = xalloc_floats((size_t)t->local_max * t->m.C * t->m.S * t->m.S);
    t->noise = xalloc_floats((size_t)t->micro * t->m.V * t->m.P);

    train_task task = {.kind = "dvae", .pt = &t->pt, .ctx = t,
                       .steps_per_epoch = source_steps_per_epoch(&t->src),
                       .images_per_step = c->train.global_batch,
                       .nmetrics = 4, .metric_names = {"loss", "recon", "kl", "mse_soft"},
                       .prepare = dvae_prepare, .forward_backward = dvae_fwd_bwd};
    task.extra_log = dvae_extra;
    t->total_steps = train_total_steps(c, task.steps_per_epoch);

    task.evaluate = dvae_eval_hook;
    train_run(&task, c, o, d);
    source_close(&t->src);

    free(t->img8); free(t->idx); free(t->x); free(t->noise);
    dvae_free(&t->m);
    params_free(&t->pt);
    free(t);
    return 0;
}
