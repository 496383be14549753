/* beit tokenize: encode every split of a dataset store into visual tokens with a trained dVAE,
 * K views per image, MPI-parallel, every rank writing its rows of ONE HDF5 token store with
 * collective parallel-HDF5 writes (include/beit/tokens.h).
 *
 * Per split, a sequential pass (reader sequential mode, global batch = tokenize.batch * ranks):
 *   img8 [L, H, W, C] -> x [L*K, C, S, S] (view 0: crop_identity; view v > 0: crop_sample with
 *   rng_stream(seed, RNG_VIEW, i, v)) -> dvae_encode -> tokens [L, K, h, h] uint16, crops
 *   [L, K, 5] -> one collective write per dataset and step (a rank with 0 rows takes part with
 *   an empty selection). */
#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/comm.h"
#include "beit/dvae.h"
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/log.h"
#include "beit/reader.h"
#include "beit/rng.h"
#include "beit/store.h"
#include "beit/tasks.h"
#include "beit/tokens.h"
#include "commands.h"
#include "runopts.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: beit tokenize -c JOB [--checkpoint DVAE.h5] [--data DATA.h5] [--tokens TOKENS.h5]\n"
    "                     [--set KEY=VALUE]... [--seed S] [--log-every N]\n"
    "\n"
    "Encodes every split of the dataset store (data.path, or --data) into visual tokens with the\n"
    "dVAE checkpoint (tokenize.checkpoint, or --checkpoint): tokenize.views views per image (view\n"
    "0 = the stored image; views 1.. = random resized crops + flips from aug.*, drawn from the\n"
    "seed), tokenize.batch images per rank per step. The tokenizer is rebuilt from the config\n"
    "stored in its checkpoint; dvae.* keys the job sets must agree with it. data.subset limits\n"
    "each split to its first N images. All ranks write one HDF5 file (data.tokens, or --tokens)\n"
    "with parallel HDF5; it appears at its path only when complete.\n"
    "Example: mpirun -np 4 build/beit tokenize -c jobs/fmnist/tokenize.yaml \\\n"
    "           --checkpoint runs/dvae/ckpt-00000700.h5 --tokens data/fmnist-tokens.h5";

static void set_str(beit_config *c, const char *key, const char *value) {
    char *a = xasprintf("%s=%s", key, value);
    config_set(c, a);
    free(a);
}

static int grid_of(int image_size, int ngroups) { return image_size >> (ngroups - 1); }

int cmd_tokenize(int argc, char **argv) {
    const char *ckpt_path = NULL, *data_path = NULL, *tokens_path = NULL;
    const extra_flag extra[] = {
        {"--checkpoint", "FILE", "the dVAE checkpoint (tokenize.checkpoint)", &ckpt_path},
        {"--data", "FILE", "the dataset store to tokenize (data.path)", &data_path},
        {"--tokens", "FILE", "the token store to write (data.tokens)", &tokens_path},
        {NULL, NULL, NULL, NULL},
    };
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_JOB | RUNOPT_LOG, extra, USAGE)) return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    const char *src = runopts_source(&ro);
    if (c.task != BEIT_TASK_TOKENIZE)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: task is '%s'; beit tokenize runs jobs with task: tokenize", ro.config,
                        config_enum_name("task", c.task));
    if (ckpt_path) set_str(&c, "tokenize.checkpoint", ckpt_path);
    if (data_path) set_str(&c, "data.path", data_path);
    if (tokens_path) set_str(&c, "data.tokens", tokens_path);
    if (c.data.source != BEIT_DATA_STORE)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: beit tokenize reads a dataset store (data.source: store)", src);
    config_require(&c, "tokenize.checkpoint", src);
    config_require(&c, "data.path", src);
    config_require(&c, "data.tokens", src);
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    const int K = c.tokenize.views;

    /* ---- the tokenizer, as trained: from the config stored in its checkpoint ---- */
    ckpt_reader cr;
    ckpt_open(&cr, c.tokenize.checkpoint);
    if (strcmp(cr.kind, "dvae") != 0)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: a checkpoint of kind '%s', expected a dVAE tokenizer (kind 'dvae')",
                        cr.path, cr.kind);
    beit_config cc;
    char *cname = xasprintf("%s (stored config)", cr.path);
    config_load_string(&cc, cr.config_yaml, cname);
    free(cname);
    dvae_dims dd;
    dvae_dims_from_config(&dd, &cc);
    const int S = dd.image_size, h = grid_of(dd.image_size, dd.ngroups), V = dd.vocab;
    if (V > 65535)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: vocab_size %d does not fit the token store's uint16 tokens (max 65535)", cr.path, V);
    /* dvae.* keys the job gives must describe this tokenizer */
    if (config_key_given(&c, "dvae.vocab_size") && c.dvae.vocab_size != V)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dvae.vocab_size = %d, but the tokenizer %s has vocab_size %d", src,
                        c.dvae.vocab_size, cr.path, V);
    if ((config_key_given(&c, "dvae.image_size") || config_key_given(&c, "dvae.widths")) &&
        grid_of(c.dvae.image_size, c.dvae.widths.n) != h)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: dvae.image_size %d and %d widths give a %dx%d token grid, but the tokenizer %s gives "
                        "%dx%d (image_size %d, %d widths)",
                        src, c.dvae.image_size, c.dvae.widths.n, grid_of(c.dvae.image_size, c.dvae.widths.n),
                        grid_of(c.dvae.image_size, c.dvae.widths.n), cr.path, h, h, S, dd.ngroups);
    if (config_key_given(&c, "dvae.in_chans") && c.dvae.in_chans != dd.in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dvae.in_chans = %d, but the tokenizer %s has in_chans %d", src,
                        c.dvae.in_chans, cr.path, dd.in_chans);

    /* ---- the dataset ---- */
    beit_store *st = store_open(c.data.path, d.comm);
    const int H = store_height(st), W = store_width(st), C = store_channels(st);
    if (!store_has_split(st, c.data.split)) store_split_count(st, c.data.split); /* BEIT_EXIT_DATA naming it */
    if (config_key_given(&c, "data.eval_split") && !store_has_split(st, c.data.eval_split))
        store_split_count(st, c.data.eval_split);
    if (C != dd.in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images have %d channel%s, but the tokenizer %s takes in_chans %d",
                        c.data.path, C, C == 1 ? "" : "s", cr.path, dd.in_chans);
    if (H < S || W < S)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images are %dx%d, smaller than the tokenizer input %dx%d (%s)",
                        c.data.path, H, W, S, S, cr.path);

    param_table pt;
    dvae_model m;
    params_init(&pt);
    dvae_build(&m, &pt, &dd);
    params_alloc(&pt);
    ckpt_load_params(&cr, &pt);
    ckpt_close(&cr);
    char sha[65] = {0};
    int sha_ok = 1;
    if (d.rank == 0) sha_ok = beit_sha256_file(c.tokenize.checkpoint, sha) == 0;
    dist_bcast(&d, &sha_ok, sizeof sha_ok, 0);
    if (!sha_ok) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot read it to hash it", c.tokenize.checkpoint);
    dist_bcast(&d, sha, sizeof sha, 0);

    /* ---- plan: per-rank slices, encoder batch within an activation budget ---- */
    const int G = c.tokenize.batch * d.size;
    int64_t nsplit[STORE_MAX_SPLITS], total = 0;
    for (int i = 0; i < st->nsplits; i++) {
        int64_t n = store_split_count(st, st->splits[i].name);
        if (c.data.subset > 0 && c.data.subset < n) n = c.data.subset;
        nsplit[i] = n;
        total += n;
    }
    const int L = c.tokenize.batch; /* a rank's slice of a global batch of batch * ranks */
    size_t per1 = dvae_activation_bytes(&m, 2) - dvae_activation_bytes(&m, 1);
    const size_t budget = (size_t)512 << 20;
    int enc = per1 ? (int)(budget / per1) : L * K;
    if (enc < 1) enc = 1;
    if (enc > L * K) enc = L * K;
    dvae_alloc(&m, enc);

    char *yaml = config_to_yaml(&c);
    beit_log("# resolved job (%s)\n%s", src, yaml);
    beit_log("tokenizer %s: %dx%dx%d -> %dx%d tokens over V = %d (sha256 %.12s...)", c.tokenize.checkpoint, S, S,
             dd.in_chans, h, h, V, sha);
    beit_log("dataset %s: %d split%s, %lld images of %dx%dx%d; %d view%s each; %d rank%s x %d images per step "
             "(encoder batch %d)",
             c.data.path, st->nsplits, st->nsplits == 1 ? "" : "s", (long long)total, H, W, C, K, K == 1 ? "" : "s",
             d.size, d.size == 1 ? "" : "s", c.tokenize.batch, enc);

    tokens_meta meta = {V, h, K, S, H, W, C, sha, store_uuid(st), c.data.path, yaml};
    tokens_writer *w = tokens_create(c.data.tokens, &meta, d.comm);

    const size_t bytes = (size_t)H * W * C, per = (size_t)C * S * S, P = (size_t)h * h;
    uint8_t *img8 = xmalloc((size_t)L * bytes);
    int64_t *idx = xmalloc((size_t)L * sizeof(int64_t));
    float *x = xalloc_floats((size_t)L * K * per);
    int32_t *tok = xmalloc((size_t)L * K * P * sizeof(int32_t));
    uint16_t *tok16 = xmalloc((size_t)L * K * P * sizeof(uint16_t));
    float *crops = xmalloc((size_t)L * K * 5 * sizeof(float));

    const double t0 = beit_now();
    int64_t done_before = 0; /* images of the finished splits */
    for (int si = 0; si < st->nsplits; si++) {
        const char *split = st->splits[si].name;
        beit_reader rd;
        reader_init(&rd, st, split, c.data.subset > 0 ? nsplit[si] : 0, G, (uint64_t)c.seed, d.rank, d.size, 0);
        const int64_t N = reader_num_samples(&rd), steps = reader_steps_per_epoch(&rd);
        if (reader_local_count(&rd) > L)
            beit_fatal(BEIT_EXIT_FAILURE, "reader slice %d exceeds the buffers (%d)", reader_local_count(&rd), L);
        tokens_begin_split(w, split, N);
        for (int64_t s = 0; s < steps; s++) {
            int n = reader_next(&rd, 0, s, img8, NULL, idx);
            for (int i = 0; i < n; i++) {
                if (idx[i] != idx[0] + i) beit_fatal(BEIT_EXIT_FAILURE, "sequential reader slice is not contiguous");
                for (int v = 0; v < K; v++) {
                    crop_box b = crop_identity(H, W);
                    if (v > 0) {
                        rng_t r = rng_stream((uint64_t)c.seed, RNG_VIEW, (uint64_t)idx[i], (uint32_t)v);
                        crop_sample(&b, H, W, c.aug.crop_scale_min, c.aug.crop_scale_max, c.aug.crop_ratio_min,
                                    c.aug.crop_ratio_max, c.aug.flip, &r);
                    }
                    size_t row = (size_t)i * K + v;
                    crop_apply(x + row * per, img8 + (size_t)i * bytes, H, W, C, &b, S);
                    float *cb = crops + row * 5;
                    cb[0] = b.y0, cb[1] = b.x0, cb[2] = b.h, cb[3] = b.w, cb[4] = (float)b.flip;
                }
            }
            for (int a = 0; a < n * K; a += enc) {
                int B = n * K - a < enc ? n * K - a : enc;
                dvae_encode(&m, &pt, x + (size_t)a * per, B, tok + (size_t)a * P, NULL);
            }
            for (size_t j = 0; j < (size_t)n * K * P; j++) tok16[j] = (uint16_t)tok[j];
            tokens_write_rows(w, n ? idx[0] : 0, n, tok16, crops); /* failures: tokens_commit reports */

            int64_t done_split = (s + 1) * G < N ? (s + 1) * G : N, done = done_before + done_split;
            double now = beit_now();
            if ((s + 1) % c.train.log_every == 0 || s + 1 == steps) {
                double rate = (double)done / (now - t0 > 1e-9 ? now - t0 : 1e-9);
                char eta[32];
                beit_fmt_duration((double)(total - done) / (rate > 0 ? rate : 1), eta, sizeof eta);
                beit_log("tokenize %s: %lld/%lld images (%lld/%lld all splits), %.1f images/s, ETA %s", split,
                         (long long)done_split, (long long)N, (long long)done, (long long)total, rate, eta);
            }
        }
        tokens_end_split(w);
        reader_free(&rd);
        done_before += N;
    }
    double secs = beit_now() - t0;
    int rc = tokens_commit(w);
    if (rc == 0) {
        char dur[32];
        beit_log("tokenized %lld images x %d view%s in %s: %.1f images/s (%.1f views/s) on %d rank%s -> %s",
                 (long long)total, K, K == 1 ? "" : "s", beit_fmt_duration(secs, dur, sizeof dur),
                 (double)total / (secs > 1e-9 ? secs : 1e-9), (double)total * K / (secs > 1e-9 ? secs : 1e-9), d.size,
                 d.size == 1 ? "" : "s", c.data.tokens);
    }
    free(yaml);
    free(img8);
    free(idx);
    free(x);
    free(tok);
    free(tok16);
    free(crops);
    dvae_free(&m);
    params_free(&pt);
    store_close(st);
    return rc;
}
