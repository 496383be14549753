/* The HDF5 dataset store's writer (importers, the mosaic builder, tests): one split at a time,
 * whole chunks per HDF5 write, exact statistics, written to a temporary file and renamed.
 * Layout and attributes: include/beit/store.h; reading is store.c. */
#include "beit/store.h"

#include "beit/h5attr.h"
#include "beit/error.h"
#include "beit/log.h"
#include "beit/fsutil.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BEIT_VERSION
#define BEIT_VERSION "dev" /* main.c uses the same fallback; meson may define it */
#endif

#define CHUNK_MAX_IMAGES 1024
#define LABEL_CHUNK 65536
#define DEFLATE_LEVEL 4

/* ======================================================================================== */
/* writer                                                                                   */
/* ======================================================================================== */

struct beit_store_writer {
    char *final_path, *tmp_path;
    hid_t file, group, images, labels, masks;
    beit_store_meta meta;
    char *source, *stats_split;
    char **class_names;
    size_t image_bytes;
    int label_u8;
    /* current split */
    char split[64];
    int64_t count, written;
    int in_split;
    /* one chunk of images is buffered so every HDF5 write covers whole chunks */
    int64_t chunk_n, buffered;
    uint8_t *buf_images;
    int32_t *buf_labels;
    /* masks (pixel_labels): their own count and one buffered chunk */
    size_t mask_bytes;
    int64_t mask_written, mask_buffered;
    uint8_t *buf_masks;
    /* exact per-channel histograms of the stats split */
    uint64_t hist[STORE_MAX_CHANNELS][256];
    int64_t stats_samples;
};


static void writer_free(beit_store_writer *w) {
    free(w->final_path);
    free(w->tmp_path);
    free(w->source);
    free(w->stats_split);
    for (int k = 0; k < w->meta.num_classes; k++) free(w->class_names[k]);
    free(w->class_names);
    free(w->buf_images);
    free(w->buf_labels);
    free(w->buf_masks);
    free(w);
}

static void close_quietly(hid_t *id) {
    if (*id < 0) return;
    H5E_BEGIN_TRY { H5Oclose(*id); }
    H5E_END_TRY;
    *id = -1;
}

void store_abort(beit_store_writer *w) {
    if (!w) return;
    close_quietly(&w->images);
    close_quietly(&w->labels);
    close_quietly(&w->masks);
    close_quietly(&w->group);
    if (w->file >= 0) {
        H5E_BEGIN_TRY { H5Fclose(w->file); }
        H5E_END_TRY;
        w->file = -1;
    }
    unlink(w->tmp_path);
    beit_tmp_guard_clear();
    writer_free(w);
}

/* A failed HDF5 write: print HDF5's stack, remove the temporary file, exit BEIT_EXIT_IO. */
#define W_CHECK(w, call)                                                                                               \
    do {                                                                                                               \
        if ((long long)(call) < 0) writer_fail((w), __FILE__, __LINE__, #call);                                        \
    } while (0)
BEIT_NORETURN static void writer_fail(beit_store_writer *w, const char *file, int line, const char *what) {
    H5Eprint2(H5E_DEFAULT, stderr);
    char *final_path = xstrdup(w->final_path);
    store_abort(w);
    beit_fatal_at(file, line, BEIT_EXIT_IO, "%s: cannot write the dataset store (%s failed)", final_path, what);
}

beit_store_writer *store_create(const char *final_path, const beit_store_meta *meta) {
    if (meta->channels < 1 || meta->channels > STORE_MAX_CHANNELS || meta->height < 1 || meta->width < 1 ||
        meta->num_classes < 1 || (meta->pixel_labels != 0 && meta->pixel_labels != 1) ||
        (meta->pixel_labels && meta->num_classes > 256))
        beit_fatal(BEIT_EXIT_FAILURE, "store_create: bad meta %dx%dx%d, %d classes, pixel_labels %d", meta->height,
                   meta->width, meta->channels, meta->num_classes, meta->pixel_labels);
    beit_store_writer *w = xcalloc(1, sizeof *w);
    w->final_path = xstrdup(final_path);
    w->tmp_path = beit_tmp_path(final_path);
    w->file = w->group = w->images = w->labels = w->masks = -1;
    w->meta = *meta;
    w->source = xstrdup(meta->source ? meta->source : "");
    w->stats_split = xstrdup(meta->stats_split ? meta->stats_split : "train");
    w->class_names = xcalloc((size_t)meta->num_classes, sizeof *w->class_names);
    for (int k = 0; k < meta->num_classes; k++) w->class_names[k] = xstrdup(meta->class_names[k]);
    w->meta.class_names = NULL;
    w->meta.source = w->meta.stats_split = NULL;
    w->image_bytes = (size_t)meta->height * meta->width * meta->channels;
    w->label_u8 = meta->num_classes <= 256;
    w->mask_bytes = (size_t)meta->height * meta->width;
    beit_tmp_guard_set(w->tmp_path);
    /* default file access: serial sec2 driver; the import is a single-process job */
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        H5Eprint2(H5E_DEFAULT, stderr);
        char *p = xstrdup(final_path);
        store_abort(w);
        beit_fatal_user(BEIT_EXIT_IO, "%s: cannot create the output file (expected a writable directory)", p);
    }
    return w;
}

const char *store_writer_final_path(const beit_store_writer *w) { return w->final_path; }

static hid_t make_dcpl(beit_store_writer *w, int rank, const hsize_t *chunk) {
    hid_t p = H5Pcreate(H5P_DATASET_CREATE);
    W_CHECK(w, p);
    W_CHECK(w, H5Pset_chunk(p, rank, chunk));
    /* shuffle is a no-op for 1-byte elements but keeps every store dataset's filter chain
     * the same (int32 labels do benefit) */
    W_CHECK(w, H5Pset_shuffle(p));
    W_CHECK(w, H5Pset_deflate(p, DEFLATE_LEVEL));
    /* last: the checksum covers the compressed bytes on disk, so a damaged chunk fails its read */
    W_CHECK(w, H5Pset_fletcher32(p));
    return p;
}

void store_begin_split(beit_store_writer *w, const char *split, int64_t count) {
    if (w->in_split) beit_fatal(BEIT_EXIT_FAILURE, "store_begin_split(%s) while %s is open", split, w->split);
    if (strlen(split) >= sizeof w->split || count < 0)
        beit_fatal(BEIT_EXIT_FAILURE, "store_begin_split: bad split '%s' or count %lld", split, (long long)count);
    snprintf(w->split, sizeof w->split, "%s", split);
    w->count = count;
    w->written = 0;
    w->buffered = 0;
    w->mask_written = 0;
    w->mask_buffered = 0;
    w->in_split = 1;
    int64_t cn = (int64_t)(STORE_CHUNK_TARGET_BYTES / w->image_bytes);
    if (cn > CHUNK_MAX_IMAGES) cn = CHUNK_MAX_IMAGES;
    if (cn > count) cn = count;
    if (cn < 1) cn = 1;
    w->chunk_n = cn;
    free(w->buf_images);
    free(w->buf_labels);
    free(w->buf_masks);
    w->buf_images = xmalloc((size_t)cn * w->image_bytes);
    w->buf_labels = xmalloc((size_t)cn * sizeof(int32_t));
    w->buf_masks = w->meta.pixel_labels ? xmalloc((size_t)cn * w->mask_bytes) : NULL;

    w->group = H5Gcreate2(w->file, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    W_CHECK(w, w->group);
    int64_t c64 = count;
    W_CHECK(w, h5a_put(w->group, "count", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, 1, &c64));

    hsize_t dims[4] = {(hsize_t)count, (hsize_t)w->meta.height, (hsize_t)w->meta.width, (hsize_t)w->meta.channels};
    hsize_t chunk[4] = {(hsize_t)cn, dims[1], dims[2], dims[3]};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    W_CHECK(w, sp);
    hid_t dcpl = make_dcpl(w, 4, chunk);
    w->images = H5Dcreate2(w->group, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    W_CHECK(w, w->images);
    H5Pclose(dcpl);
    H5Sclose(sp);

    hsize_t ldim = (hsize_t)count, lchunk = (hsize_t)(count < LABEL_CHUNK ? (count > 0 ? count : 1) : LABEL_CHUNK);
    sp = H5Screate_simple(1, &ldim, NULL);
    W_CHECK(w, sp);
    dcpl = make_dcpl(w, 1, &lchunk);
    w->labels =
        H5Dcreate2(w->group, "labels", w->label_u8 ? H5T_STD_U8LE : H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    W_CHECK(w, w->labels);
    H5Pclose(dcpl);
    H5Sclose(sp);

    if (w->meta.pixel_labels) { /* masks [count, H, W], chunked like the images */
        sp = H5Screate_simple(3, dims, NULL);
        W_CHECK(w, sp);
        dcpl = make_dcpl(w, 3, chunk);
        w->masks = H5Dcreate2(w->group, "masks", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        W_CHECK(w, w->masks);
        H5Pclose(dcpl);
        H5Sclose(sp);
    }
}

/* Write buf into the hyperslab start[rank], cnt[rank] of dataset ds (dim 0 = samples). */
static void write_samples(beit_store_writer *w, hid_t ds, hid_t mtype, int rank, const hsize_t *start,
                          const hsize_t *cnt, const void *buf) {
    hid_t fs = H5Dget_space(ds);
    W_CHECK(w, fs);
    W_CHECK(w, H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL));
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    W_CHECK(w, ms);
    W_CHECK(w, H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf));
    H5Sclose(ms);
    H5Sclose(fs);
}

static void flush_masks(beit_store_writer *w) {
    if (w->mask_buffered == 0) return;
    hsize_t start[3] = {(hsize_t)w->mask_written, 0, 0};
    hsize_t cnt[3] = {(hsize_t)w->mask_buffered, (hsize_t)w->meta.height, (hsize_t)w->meta.width};
    write_samples(w, w->masks, H5T_NATIVE_UINT8, 3, start, cnt, w->buf_masks);
    w->mask_written += w->mask_buffered;
    w->mask_buffered = 0;
}

void store_append_masks(beit_store_writer *w, const uint8_t *masks, int64_t n) {
    if (!w->in_split) beit_fatal(BEIT_EXIT_FAILURE, "store_append_masks outside a split");
    if (!w->meta.pixel_labels) beit_fatal(BEIT_EXIT_FAILURE, "store_append_masks: the store has pixel_labels = 0");
    if (w->mask_written + w->mask_buffered + n > w->count)
        beit_fatal(BEIT_EXIT_FAILURE, "store_append_masks: split %s announced %lld samples, got more masks", w->split,
                   (long long)w->count);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *m = masks + (size_t)i * w->mask_bytes;
        for (size_t p = 0; p < w->mask_bytes; p++)
            if (m[p] >= w->meta.num_classes)
                beit_fatal(BEIT_EXIT_FAILURE, "store_append_masks: pixel label %d outside [0, %d)", m[p],
                           w->meta.num_classes);
        memcpy(w->buf_masks + (size_t)w->mask_buffered * w->mask_bytes, m, w->mask_bytes);
        if (++w->mask_buffered == w->chunk_n) flush_masks(w);
    }
}

static void flush_buffer(beit_store_writer *w) {
    if (w->buffered == 0) return;
    hsize_t start[4] = {(hsize_t)w->written, 0, 0, 0};
    hsize_t cnt[4] = {(hsize_t)w->buffered, (hsize_t)w->meta.height, (hsize_t)w->meta.width, (hsize_t)w->meta.channels};
    write_samples(w, w->images, H5T_NATIVE_UINT8, 4, start, cnt, w->buf_images);
    write_samples(w, w->labels, H5T_NATIVE_INT32, 1, start, cnt, w->buf_labels);
    w->written += w->buffered;
    w->buffered = 0;
}

void store_append(beit_store_writer *w, const uint8_t *images, const int32_t *labels, int64_t n) {
    if (!w->in_split) beit_fatal(BEIT_EXIT_FAILURE, "store_append outside a split");
    if (w->written + w->buffered + n > w->count)
        beit_fatal(BEIT_EXIT_FAILURE, "store_append: split %s announced %lld samples, got more", w->split,
                   (long long)w->count);
    int stats = strcmp(w->split, w->stats_split) == 0;
    int C = w->meta.channels;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= w->meta.num_classes)
            beit_fatal(BEIT_EXIT_FAILURE, "store_append: label %d outside [0, %d)", labels[i], w->meta.num_classes);
        const uint8_t *img = images + (size_t)i * w->image_bytes;
        if (stats) {
            for (size_t p = 0; p < w->image_bytes; p += (size_t)C)
                for (int k = 0; k < C; k++) w->hist[k][img[p + (size_t)k]]++;
            w->stats_samples++;
        }
        memcpy(w->buf_images + (size_t)w->buffered * w->image_bytes, img, w->image_bytes);
        w->buf_labels[w->buffered] = labels[i];
        if (++w->buffered == w->chunk_n) flush_buffer(w);
    }
}

void store_end_split(beit_store_writer *w) {
    if (!w->in_split) beit_fatal(BEIT_EXIT_FAILURE, "store_end_split outside a split");
    flush_buffer(w);
    if (w->written != w->count)
        beit_fatal(BEIT_EXIT_FAILURE, "store_end_split: split %s announced %lld samples, got %lld", w->split,
                   (long long)w->count, (long long)w->written);
    if (w->meta.pixel_labels) {
        flush_masks(w);
        if (w->mask_written != w->count)
            beit_fatal(BEIT_EXIT_FAILURE, "store_end_split: split %s announced %lld samples, got %lld masks", w->split,
                       (long long)w->count, (long long)w->mask_written);
        W_CHECK(w, H5Dclose(w->masks));
        w->masks = -1;
    }
    W_CHECK(w, H5Dclose(w->images));
    W_CHECK(w, H5Dclose(w->labels));
    W_CHECK(w, H5Gclose(w->group));
    w->images = w->labels = w->group = -1;
    w->in_split = 0;
}

void store_commit(beit_store_writer *w) {
    if (w->in_split) beit_fatal(BEIT_EXIT_FAILURE, "store_commit with split %s still open", w->split);
    int C = w->meta.channels;
    double mean[STORE_MAX_CHANNELS] = {0}, sd[STORE_MAX_CHANNELS] = {0};
    for (int k = 0; k < C; k++) {
        /* two passes over the exact histogram: mean, then mean squared deviation */
        double n = 0, s = 0, v = 0;
        for (int b = 0; b < 256; b++) {
            n += (double)w->hist[k][b];
            s += (double)w->hist[k][b] * (b / 255.0);
        }
        double m = n > 0 ? s / n : 0;
        for (int b = 0; b < 256; b++) v += (double)w->hist[k][b] * (b / 255.0 - m) * (b / 255.0 - m);
        mean[k] = m;
        sd[k] = n > 0 ? sqrt(v / n) : 0;
    }
    if (w->stats_samples == 0)
        beit_warn("%s: split '%s' is empty: mean/std written as 0", w->final_path, w->stats_split);
    char uuid[37];
    beit_uuid4(uuid);
    char *created = xasprintf("beit %s", BEIT_VERSION);
    hid_t f = w->file;
    W_CHECK(w, h5a_put_str(f, "format", STORE_FORMAT));
    W_CHECK(w, h5a_put_i32(f, "format_version", STORE_FORMAT_VERSION));
    W_CHECK(w, h5a_put_str(f, "source", w->source));
    W_CHECK(w, h5a_put_strs(f, "class_names", (const char *const *)w->class_names, w->meta.num_classes));
    W_CHECK(w, h5a_put_i32(f, "num_classes", w->meta.num_classes));
    W_CHECK(w, h5a_put_i32(f, "height", w->meta.height));
    W_CHECK(w, h5a_put_i32(f, "width", w->meta.width));
    W_CHECK(w, h5a_put_i32(f, "channels", C));
    W_CHECK(w, h5a_put(f, "mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)C, mean));
    W_CHECK(w, h5a_put(f, "std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)C, sd));
    W_CHECK(w, h5a_put_str(f, "stats_split", w->stats_split));
    W_CHECK(w, h5a_put_str(f, "uuid", uuid));
    W_CHECK(w, h5a_put_str(f, "created_by", created));
    if (w->meta.pixel_labels) W_CHECK(w, h5a_put_i32(f, "pixel_labels", 1));
    free(created);
    W_CHECK(w, H5Fflush(f, H5F_SCOPE_GLOBAL));
    W_CHECK(w, H5Fclose(f));
    w->file = -1;
    if (beit_commit_file(w->tmp_path, w->final_path) != 0) {
        int e = errno;
        char *p = xstrdup(w->final_path);
        store_abort(w);
        beit_fatal_user(BEIT_EXIT_IO, "%s: cannot move the finished store into place: %s", p, strerror(e));
    }
    beit_tmp_guard_clear();
    writer_free(w);
}
