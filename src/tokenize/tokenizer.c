/* A frozen tokenizer from its checkpoint, dispatched on the checkpoint's kind
 * (include/beit/tokenizer.h). */
#include "beit/tokenizer.h"

#include "beit/checkpoint.h"
#include "beit/error.h"

#include <stdlib.h>
#include <string.h>

void tokenizer_open(tokenizer *t, const char *path, int max_vocab) {
    memset(t, 0, sizeof *t);
    ckpt_reader r;
    ckpt_open(&r, path);
    const model_kind k = model_kind_of(r.kind);
    if (k != MODEL_DVAE && k != MODEL_DALLE)
        beit_fatal_user(BEIT_EXIT_MISMATCH,
                        "%s: a checkpoint of kind '%s', expected a tokenizer (kind 'dvae' from beit dvae train, or '"
                        DALLE_KIND "' from tools/import_dalle.py)", r.path, r.kind);
    char *cname = xasprintf("%s (stored config)", r.path);
    if (max_vocab > 0) { /* before building: a huge vocabulary would not even load */
        beit_config sc;
        config_load_string(&sc, r.config_yaml, cname);
        const int V = k == MODEL_DVAE ? sc.dvae.vocab_size : sc.dalle.vocab_size;
        if (V > max_vocab)
            beit_fatal_user(BEIT_EXIT_MISMATCH,
                            "%s: vocab_size %d does not fit the token store's uint16 tokens (max %d)", r.path, V,
                            max_vocab);
    }
    model_from_checkpoint(&t->cm, &r, k, cname, 0);
    free(cname);
    ckpt_close(&r);
    t->pixel_map = "0.8 x + 0.1 (map_pixels, eps 0.1) of x in [0, 1]";
    if (k == MODEL_DVAE) {
        const dvae_model *m = &t->cm.dvae;
        t->S = m->S, t->h = m->h, t->V = m->V, t->C = m->C;
        t->resize = RESIZE_BILINEAR, t->resize_name = "bilinear", t->kind = "dvae";
    } else {
        const dalle_model *m = &t->cm.dalle;
        t->S = m->S, t->h = m->h, t->V = m->V, t->C = m->C;
        t->resize = RESIZE_LANCZOS, t->resize_name = "lanczos", t->kind = DALLE_KIND;
    }
}

size_t tokenizer_activation_bytes(const tokenizer *t, int B) {
    return t->cm.kind == MODEL_DVAE ? dvae_activation_bytes(&t->cm.dvae, B) : dalle_activation_bytes(&t->cm.dalle, B);
}

int tokenizer_batch_within(const tokenizer *t, size_t budget, int cap) {
    /* per-view bytes past the fixed part (scratch and the like) */
    size_t one = tokenizer_activation_bytes(t, 1), per = tokenizer_activation_bytes(t, 2) - one;
    int B = per ? (int)((budget > one ? budget - one : 0) / per) + 1 : cap;
    if (B > cap) B = cap;
    return B < 1 ? 1 : B;
}

void tokenizer_alloc(tokenizer *t, int max_batch) {
    if (t->cm.kind == MODEL_DVAE) dvae_alloc(&t->cm.dvae, max_batch);
    else dalle_alloc(&t->cm.dalle, max_batch);
    t->max_batch = max_batch;
}

void tokenizer_view(const tokenizer *t, float *dst, const uint8_t *img, int H, int W, int C, const crop_box *b) {
    crop_apply_resize(dst, img, H, W, C, b, t->S, t->resize);
}

void tokenizer_encode(tokenizer *t, const float *x, int B, int32_t *tokens) {
    const size_t per = (size_t)t->C * t->S * t->S, P = (size_t)t->h * t->h;
    if (t->max_batch < 1) beit_fatal(BEIT_EXIT_FAILURE, "tokenizer_encode before tokenizer_alloc");
    for (int a = 0; a < B; a += t->max_batch) {
        int n = B - a < t->max_batch ? B - a : t->max_batch;
        if (t->cm.kind == MODEL_DVAE) dvae_encode(&t->cm.dvae, t->cm.pt, x + a * per, n, tokens + a * P, NULL);
        else dalle_encode(&t->cm.dalle, t->cm.pt, x + a * per, n, tokens + a * P, NULL);
    }
}

void tokenizer_free(tokenizer *t) {
    ckpt_model_free(&t->cm);
    memset(t, 0, sizeof *t);
}
