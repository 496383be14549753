/* The tokenization stage (include/beit/tokenize.h): a tokenizer (tokenizer.h: beit's dVAE or
 * DALL-E's encoder) encodes K views of every image of a store into one parallel-HDF5 token
 * store. */
#include "beit/input.h"
#include "beit/tokenize.h"

#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/log.h"
#include "beit/modelcfg.h"
#include "beit/reader.h"
#include "beit/rng.h"
#include "beit/store.h"
#include "beit/tokenizer.h"
#include "beit/tokens.h"

#include <stdlib.h>
#include <string.h>

static int grid_of(int image_size, int ngroups) { return image_size >> (ngroups - 1); }

/* The job's keys of the tokenizer's section (dvae.* for a dVAE, dalle.* for DALL-E's encoder)
 * must describe the tokenizer t opened from path (its stored config is t->cm.c). */
static void check_tokenizer(const tokenizer *t, const beit_config *c, const char *src, const char *path) {
    const int S = t->S, h = t->h, V = t->V;
    if (t->cm.kind == MODEL_DALLE) {
        const beit_config *s = &t->cm.c;
        if (config_key_given(c, "dalle.vocab_size") && c->dalle.vocab_size != V)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dalle.vocab_size = %d, but the tokenizer %s has vocab_size %d",
                            src, c->dalle.vocab_size, path, V);
        if (config_key_given(c, "dalle.image_size") && c->dalle.image_size != S)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dalle.image_size = %d, but the tokenizer %s takes %dx%d (%dx%d "
                            "tokens; convert it again with --image-size to change that)",
                            src, c->dalle.image_size, path, S, S, h, h);
        if (config_key_given(c, "dalle.n_hid") && c->dalle.n_hid != s->dalle.n_hid)
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dalle.n_hid = %d, but the tokenizer %s has n_hid %d", src,
                            c->dalle.n_hid, path, s->dalle.n_hid);
        return;
    }
    const dvae_dims *dd = &t->cm.dvae.d;
    if (config_key_given(c, "dvae.vocab_size") && c->dvae.vocab_size != V)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dvae.vocab_size = %d, but the tokenizer %s has vocab_size %d", src,
                        c->dvae.vocab_size, path, V);
    if ((config_key_given(c, "dvae.image_size") || config_key_given(c, "dvae.widths")) &&
        grid_of(c->dvae.image_size, c->dvae.widths.n) != h)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: dvae.image_size %d and %d widths give a %dx%d token grid, but the tokenizer %s gives "
                        "%dx%d (image_size %d, %d widths)",
                        src, c->dvae.image_size, c->dvae.widths.n, grid_of(c->dvae.image_size, c->dvae.widths.n),
                        grid_of(c->dvae.image_size, c->dvae.widths.n), path, h, h, S, dd->ngroups);
    if (config_key_given(c, "dvae.in_chans") && c->dvae.in_chans != dd->in_chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: dvae.in_chans = %d, but the tokenizer %s has in_chans %d", src,
                        c->dvae.in_chans, path, dd->in_chans);
}

/* One pass over the store: the state every split shares. */
typedef struct {
    const beit_config *c;
    const beit_dist *d;
    tokenizer *tk;
    beit_store *st;
    tokens_writer *w;
    int H, W, C, S, P; /* image side and channels; tokenizer input side; tokens per view (h*h) */
    int K, L, G, enc;  /* views; images per rank and step; global batch; encoder batch */
    int64_t total;     /* images of all splits */
    uint8_t *img8;     /* [L,H,W,C] */
    int64_t *idx;      /* [L] */
    float *x;          /* [L*K,C,S,S] views on [0,1] */
    int32_t *tok;      /* [L*K,h,h] */
    uint16_t *tok16;   /* [L*K,h,h] as stored */
    float *crops;      /* [L*K,5] y0, x0, h, w, flip */
} tok_pass;

/* Views of the n images of a step: x and crops; view 0 the stored image, views v > 0 random
 * resized crops keyed by (seed, sample, v). */
static void make_views(tok_pass *p, int n) {
    const beit_config *c = p->c;
    const int H = p->H, W = p->W, C = p->C, S = p->S, K = p->K;
    const size_t bytes = (size_t)H * W * C, per = (size_t)C * S * S;
    for (int i = 0; i < n; i++) {
        if (p->idx[i] != p->idx[0] + i) beit_fatal(BEIT_EXIT_FAILURE, "sequential reader slice is not contiguous");
        for (int v = 0; v < K; v++) {
            crop_box b = crop_identity(H, W);
            if (v > 0) {
                rng_t r = rng_stream((uint64_t)c->seed, RNG_VIEW, (uint64_t)p->idx[i], (uint32_t)v);
                input_sample_crop(&b, H, W, c, &r);
            }
            size_t row = (size_t)i * K + v;
            tokenizer_view(p->tk, p->x + row * per, p->img8 + (size_t)i * bytes, H, W, C, &b);
            float *cb = p->crops + row * 5;
            cb[0] = b.y0, cb[1] = b.x0, cb[2] = b.h, cb[3] = b.w, cb[4] = (float)b.flip;
        }
    }
}

/* One split: read, make views, encode, write; progress lines every train.log_every steps.
 * Returns the split's image count. */
static int64_t tokenize_split(tok_pass *p, const char *split, int64_t nsplit, int64_t done_before, double t0) {
    const beit_config *c = p->c;
    const int K = p->K, G = p->G;
    const size_t P = (size_t)p->P;
    beit_reader rd;
    reader_init(&rd, p->st, split, c->data.subset > 0 ? nsplit : 0, G, (uint64_t)c->seed, p->d->rank, p->d->size, 0);
    const int64_t N = reader_num_samples(&rd), steps = reader_steps_per_epoch(&rd);
    if (reader_local_count(&rd) > p->L)
        beit_fatal(BEIT_EXIT_FAILURE, "reader slice %d exceeds the buffers (%d)", reader_local_count(&rd), p->L);
    tokens_begin_split(p->w, split, N);
    for (int64_t s = 0; s < steps; s++) {
        int n = reader_next(&rd, 0, s, p->img8, NULL, p->idx);
        make_views(p, n);
        tokenizer_encode(p->tk, p->x, n * K, p->tok); /* in encoder batches of p->enc */
        for (size_t j = 0; j < (size_t)n * K * P; j++) p->tok16[j] = (uint16_t)p->tok[j];
        tokens_write_rows(p->w, n ? p->idx[0] : 0, n, p->tok16, p->crops); /* failures: tokens_commit reports */

        int64_t done_split = (s + 1) * G < N ? (s + 1) * G : N, done = done_before + done_split;
        double now = beit_now();
        if ((s + 1) % c->train.log_every == 0 || s + 1 == steps) {
            double rate = (double)done / (now - t0 > 1e-9 ? now - t0 : 1e-9);
            char eta[32];
            beit_fmt_duration((double)(p->total - done) / (rate > 0 ? rate : 1), eta, sizeof eta);
            beit_log("tokenize %s: %lld/%lld images (%lld/%lld all splits), %.1f images/s, ETA %s", split,
                     (long long)done_split, (long long)N, (long long)done, (long long)p->total, rate, eta);
        }
    }
    tokens_end_split(p->w);
    reader_free(&rd);
    return N;
}

/* The dataset must exist with its splits and fit the tokenizer. */
static void check_store(const beit_config *c, beit_store *st, const tokenizer *t, const char *ckpt) {
    const int H = store_height(st), W = store_width(st), C = store_channels(st), S = t->S;
    if (!store_has_split(st, c->data.split)) store_split_count(st, c->data.split); /* BEIT_EXIT_DATA naming it */
    if (config_key_given(c, "data.eval_split") && !store_has_split(st, c->data.eval_split))
        store_split_count(st, c->data.eval_split);
    if (C != t->C)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images have %d channel%s, but the tokenizer %s takes in_chans %d",
                        c->data.path, C, C == 1 ? "" : "s", ckpt, t->C);
    if (H < S || W < S)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images are %dx%d, smaller than the tokenizer input %dx%d (%s)",
                        c->data.path, H, W, S, S, ckpt);
}

int tokenize_store(const beit_config *c, const char *src, const beit_dist *d) {
    const int K = c->tokenize.views;
    tokenizer tk;
    tokenizer_open(&tk, c->tokenize.checkpoint, 65535); /* the store's uint16 tokens */
    check_tokenizer(&tk, c, src, c->tokenize.checkpoint);

    beit_store *st = store_open(c->data.path, d->comm);
    const int H = store_height(st), W = store_width(st), C = store_channels(st);
    check_store(c, st, &tk, c->tokenize.checkpoint);
    const int S = tk.S, h = tk.h, V = tk.V;
    char sha[65] = {0};
    int sha_ok = 1;
    if (d->rank == 0) sha_ok = beit_sha256_file(c->tokenize.checkpoint, sha) == 0;
    dist_bcast(d, &sha_ok, sizeof sha_ok, 0);
    if (!sha_ok) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot read it to hash it", c->tokenize.checkpoint);
    dist_bcast(d, sha, sizeof sha, 0);

    /* ---- plan: per-rank slices, encoder batch within an activation budget ---- */
    tok_pass p = {.c = c, .d = d, .tk = &tk, .st = st, .H = H, .W = W, .C = C, .S = S, .P = h * h, .K = K,
                  .L = c->tokenize.batch, .G = c->tokenize.batch * d->size};
    int64_t nsplit[STORE_MAX_SPLITS];
    for (int i = 0; i < st->nsplits; i++) {
        int64_t n = store_split_count(st, st->splits[i].name);
        if (c->data.subset > 0 && c->data.subset < n) n = c->data.subset;
        nsplit[i] = n;
        p.total += n;
    }
    const int L = p.L; /* a rank's slice of a global batch of batch * ranks */
    const size_t budget = (size_t)512 << 20;
    const int enc = tokenizer_batch_within(&tk, budget, L * K);
    tokenizer_alloc(&tk, enc);
    p.enc = enc;

    char *yaml = config_to_yaml(c);
    beit_log("# resolved job (%s)\n%s", src, yaml);
    beit_log("tokenizer %s (%s): %dx%dx%d views (%s resize) -> %dx%d tokens over V = %d (sha256 %.12s...)",
             c->tokenize.checkpoint, tk.kind, S, S, tk.C, tk.resize_name, h, h, V, sha);
    beit_log("dataset %s: %d split%s, %lld images of %dx%dx%d; %d view%s each; %d rank%s x %d images per step "
             "(encoder batch %d)",
             c->data.path, st->nsplits, st->nsplits == 1 ? "" : "s", (long long)p.total, H, W, C, K, K == 1 ? "" : "s",
             d->size, d->size == 1 ? "" : "s", c->tokenize.batch, enc);

    tokens_meta meta = {V, h, K, S, H, W, C, sha, store_uuid(st), c->data.path, yaml,
                        tk.kind, c->tokenize.checkpoint, tk.resize_name, tk.pixel_map};
    p.w = tokens_create(c->data.tokens, &meta, d->comm);

    const size_t bytes = (size_t)H * W * C, per = (size_t)C * S * S, P = (size_t)h * h;
    p.img8 = xmalloc((size_t)L * bytes);
    p.idx = xmalloc((size_t)L * sizeof(int64_t));
    p.x = xalloc_floats((size_t)L * K * per);
    p.tok = xmalloc((size_t)L * K * P * sizeof(int32_t));
    p.tok16 = xmalloc((size_t)L * K * P * sizeof(uint16_t));
    p.crops = xmalloc((size_t)L * K * 5 * sizeof(float));

    const double t0 = beit_now();
    int64_t done_before = 0; /* images of the finished splits */
    for (int si = 0; si < st->nsplits; si++) {
        done_before += tokenize_split(&p, st->splits[si].name, nsplit[si], done_before, t0);
    }
    double secs = beit_now() - t0;
    int rc = tokens_commit(p.w);
    if (rc == 0) {
        char dur[32];
        beit_log("tokenized %lld images x %d view%s in %s: %.1f images/s (%.1f views/s) on %d rank%s -> %s",
                 (long long)p.total, K, K == 1 ? "" : "s", beit_fmt_duration(secs, dur, sizeof dur),
                 (double)p.total / (secs > 1e-9 ? secs : 1e-9), (double)p.total * K / (secs > 1e-9 ? secs : 1e-9),
                 d->size, d->size == 1 ? "" : "s", c->data.tokens);
    }
    free(yaml);
    free(p.img8);
    free(p.idx);
    free(p.x);
    free(p.tok);
    free(p.tok16);
    free(p.crops);
    tokenizer_free(&tk);
    store_close(st);
    return rc;
}
