/* Fashion-MNIST importer: four gzip-compressed IDX files -> a dataset store with /train and
 * /test (import.h). */
#include "beit/import.h"

#include "beit/error.h"
#include "beit/idx.h"
#include "beit/log.h"
#include "beit/store.h"

#include <stdlib.h>

static const char *const FMNIST_CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static void read_idx_or_die(const char *path, int images, idx_array *a) {
    char err[512];
    if (idx_read_gz(path, images, a, err, sizeof err) != 0) beit_fatal_user(BEIT_EXIT_DATA, "%s: %s", path, err);
}

/* Load and check one split; all checks happen before the output file exists. */
static void fmnist_load_split(const char *dir, const char *stem, const char *split, int64_t expect, idx_array *im,
                              idx_array *lb, char **im_path_out) {
    char *ip = xasprintf("%s/%s-images-idx3-ubyte.gz", dir, stem);
    char *lp = xasprintf("%s/%s-labels-idx1-ubyte.gz", dir, stem);
    read_idx_or_die(ip, 1, im);
    read_idx_or_die(lp, 0, lb);
    if (im->rows != 28 || im->cols != 28)
        beit_fatal_user(BEIT_EXIT_DATA, "%s: images are %dx%d (expected 28x28 for fashion-mnist)", ip, im->rows,
                        im->cols);
    if (im->count != lb->count)
        beit_fatal_user(BEIT_EXIT_DATA, "%s: %lld labels but %s has %lld images (expected equal counts)", lp,
                        (long long)lb->count, ip, (long long)im->count);
    if (expect >= 0 && im->count != expect)
        beit_fatal_user(BEIT_EXIT_DATA,
                        "%s: %lld images (expected %lld for the fashion-mnist %s split; "
                        "--expect-counts changes this)",
                        ip, (long long)im->count, (long long)expect, split);
    for (int64_t i = 0; i < lb->count; i++)
        if (lb->data[i] > 9)
            beit_fatal_user(BEIT_EXIT_DATA, "%s: label %d at index %lld (expected 0..9)", lp, lb->data[i],
                            (long long)i);
    free(lp);
    *im_path_out = ip;
}

static void write_idx_split(beit_store_writer *w, const char *split, const idx_array *im, const idx_array *lb) {
    store_begin_split(w, split, im->count);
    enum { B = 4096 };
    int32_t lab[B];
    size_t ib = (size_t)im->rows * im->cols;
    for (int64_t s = 0; s < im->count; s += B) {
        int64_t n = im->count - s < B ? im->count - s : B;
        for (int64_t i = 0; i < n; i++) lab[i] = lb->data[s + i];
        store_append(w, im->data + (size_t)s * ib, lab, n);
    }
    store_end_split(w);
}

int import_fmnist(const import_fmnist_opts *o) {
    const char *src = o->src ? o->src : IMPORT_FMNIST_DEFAULT_SRC, *out = o->out;
    double t0 = beit_now();

    idx_array tr_im, tr_lb, te_im, te_lb;
    char *tr_path, *te_path;
    fmnist_load_split(src, "train", "train", o->expect_train, &tr_im, &tr_lb, &tr_path);
    fmnist_load_split(src, "t10k", "test", o->expect_test, &te_im, &te_lb, &te_path);

    char *source = xasprintf("fashion-mnist %s", src);
    beit_store_meta meta = {.source = source,
                            .height = 28,
                            .width = 28,
                            .channels = 1,
                            .num_classes = 10,
                            .class_names = FMNIST_CLASSES,
                            .stats_split = "train"};
    beit_store_writer *w = store_create(out, &meta);
    write_idx_split(w, "train", &tr_im, &tr_lb);
    write_idx_split(w, "test", &te_im, &te_lb);
    store_commit(w);
    char dur[32];
    beit_log("wrote %s: fashion-mnist train %lld, test %lld images of 28x28x1, 10 classes (%s)", out,
             (long long)tr_im.count, (long long)te_im.count, beit_fmt_duration(beit_now() - t0, dur, sizeof dur));
    idx_free(&tr_im);
    idx_free(&tr_lb);
    idx_free(&te_im);
    idx_free(&te_lb);
    free(tr_path);
    free(te_path);
    free(source);
    return 0;
}
