#include "beit/error.h"
#include "beit/image.h"
#include "beit/reader.h"
#include "beit/rng.h"
#include "beit/source.h"

#include <stdlib.h>
#include <string.h>

void source_open(data_source *s, const beit_config *c, const char *split, int global_batch, int shuffle,
                 const beit_dist *d, int synth_hw, int synth_c) {
    memset(s, 0, sizeof *s);
    snprintf(s->split, sizeof s->split, "%s", split);
    s->global_batch = global_batch;
    s->shuffle = shuffle;
    s->seed = (uint64_t)c->seed;
    s->rank = d->rank;
    s->nranks = d->size;
    if (c->data.source == BEIT_DATA_SYNTHETIC) {
        s->synthetic = 1;
        s->H = s->W = synth_hw;
        s->C = synth_c;
        s->n = c->data.synthetic_size;
        s->num_classes = c->data.num_classes > 0 ? c->data.num_classes : 10;
        for (int k = 0; k < 4; k++) s->mean[k] = 0.5, s->std[k] = 0.29; /* uniform bytes */
        snprintf(s->uuid, sizeof s->uuid, "synthetic-%d", c->seed);
        if (global_batch > s->n)
            beit_fatal_user(BEIT_EXIT_USAGE, "train.global_batch = %d exceeds data.synthetic_size = %lld", global_batch,
                            (long long)s->n);
        return;
    }
    if (!c->data.path[0]) beit_fatal_user(BEIT_EXIT_USAGE, "data.path is not set: which HDF5 store to read?");
    s->store = store_open(c->data.path, d->comm);
    s->H = store_height(s->store);
    s->W = store_width(s->store);
    s->C = store_channels(s->store);
    s->num_classes = store_num_classes(s->store);
    for (int k = 0; k < s->C && k < 4; k++) {
        s->mean[k] = store_mean(s->store)[k];
        s->std[k] = store_std(s->store)[k];
    }
    snprintf(s->uuid, sizeof s->uuid, "%s", store_uuid(s->store));
    reader_init(&s->reader, s->store, split, c->data.subset, global_batch, s->seed, d->rank, d->size, shuffle);
    s->n = reader_num_samples(&s->reader);
}

void source_close(data_source *s) {
    if (s->store) {
        reader_free(&s->reader);
        store_close(s->store);
    }
    memset(s, 0, sizeof *s);
}

int64_t source_steps_per_epoch(const data_source *s) {
    if (!s->synthetic) return reader_steps_per_epoch(&s->reader);
    return s->shuffle ? s->n / s->global_batch : (s->n + s->global_batch - 1) / s->global_batch;
}

int source_local_max(const data_source *s) {
    if (!s->synthetic) return reader_local_count(&s->reader);
    return (s->global_batch + s->nranks - 1) / s->nranks;
}

int source_next(data_source *s, int64_t epoch, int64_t step, uint8_t *images, int32_t *labels, int64_t *indices) {
    if (!s->synthetic) return reader_next(&s->reader, epoch, step, images, labels, indices);
    /* the same slicing rule as the reader; samples are generated from their index */
    int64_t G = s->global_batch, lo = step * G, B = G;
    if (!s->shuffle && lo + B > s->n) B = s->n - lo;
    int64_t a = lo + (int64_t)s->rank * B / s->nranks, b = lo + (int64_t)(s->rank + 1) * B / s->nranks;
    size_t px = (size_t)s->H * s->W * s->C;
    for (int64_t i = a; i < b; i++) {
        int64_t idx = s->shuffle ? (i + epoch * 7919) % s->n : i;
        rng_t r = rng_stream(s->seed, RNG_SYNTH, (uint64_t)idx, 0);
        uint8_t *im = images + (size_t)(i - a) * px;
        for (size_t k = 0; k < px; k++) im[k] = (uint8_t)(rng_u32(&r) >> 24);
        if (labels) labels[i - a] = (int32_t)(rng_u32(&r) % (uint32_t)s->num_classes);
        if (indices) indices[i - a] = idx;
    }
    return (int)(b - a);
}

void images_to_float(float *out, const uint8_t *in, int n, int H, int W, int C, int S) {
    uint8_t *tmp = NULL;
    if (S != H || S != W) tmp = xmalloc((size_t)S * S * C);
    for (int i = 0; i < n; i++) {
        const uint8_t *im = in + (size_t)i * H * W * C;
        int h = H, w = W;
        if (tmp) {
            image_resample(im, H, W, C, 0, 0, W, H, tmp, S, S);
            im = tmp;
            h = w = S;
        }
        float *o = out + (size_t)i * C * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < C; k++) o[((size_t)k * h + y) * w + x] = im[((size_t)y * w + x) * C + k] * (1.0f / 255.0f);
    }
    free(tmp);
}
