/* Image-folder importers (import.h): a class-per-subfolder tree of PNG/JPEG files, or an
 * ImageNet-style root holding train/ and val/ trees of the same classes, -> a dataset store of
 * center-cropped, resized images. */
#include "beit/import.h"

#include "beit/error.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *path;
    int label;
    int test; /* the second split: held out, or from val/ */
} sample_t;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    size_t n = strlen(dot + 1);
    if (n == 0 || n > 4) return 0;
    for (size_t i = 0; i < n; i++) ext[i] = (char)tolower((unsigned char)dot[1 + i]);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

/* Sorted names of the entries of dir that are directories (want_dir) or regular files;
 * hidden entries are skipped. *skipped counts entries of the other kind. */
static char **list_dir(const char *dir, int want_dir, int *n_out, int *skipped) {
    DIR *d = opendir(dir);
    if (!d)
        beit_fatal_user(BEIT_EXIT_DATA, "%s: cannot open directory: %s (expected a folder of class folders)", dir,
                        strerror(errno));
    int n = 0, cap = 64;
    char **names = xmalloc((size_t)cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        int ok = stat(p, &st) == 0;
        free(p);
        int is_dir = ok && S_ISDIR(st.st_mode), is_file = ok && S_ISREG(st.st_mode);
        if (want_dir ? !is_dir : !(is_file && has_image_ext(e->d_name))) {
            (*skipped)++;
            continue;
        }
        if (n == cap) names = xrealloc(names, (size_t)(cap *= 2) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    *n_out = n;
    return names;
}

static void write_folder_split(beit_store_writer *w, const char *split, const sample_t *smp, int64_t n, int want_test,
                               int64_t count, int C, int S) {
    store_begin_split(w, split, count);
    uint8_t *out = xmalloc((size_t)S * S * C);
    char err[512];
    for (int64_t i = 0; i < n; i++) {
        if (smp[i].test != want_test) continue;
        beit_image im;
        if (image_load(smp[i].path, C, &im, err, sizeof err) != 0) {
            store_abort(w);
            beit_fatal_user(BEIT_EXIT_DATA, "%s: %s (expected a decodable PNG or JPEG image)", smp[i].path, err);
        }
        image_center_crop_resize(im.pix, im.h, im.w, C, out, S);
        image_free(&im);
        int32_t label = smp[i].label;
        store_append(w, out, &label, 1);
    }
    free(out);
    store_end_split(w);
}

static void free_samples(sample_t *smp, int64_t n, char **classes, int nclass) {
    for (int64_t i = 0; i < n; i++) free(smp[i].path);
    free(smp);
    for (int k = 0; k < nclass; k++) free(classes[k]);
    free(classes);
}


/* The class folders of dir (sorted: label k = classes[k]) and their image files, appended to
 * *smp with test = test_flag. Bad trees end the job with exit 3 naming the folder; *skipped
 * counts the files ignored inside class folders. */
static char **scan_tree(const char *dir, int test_flag, int *nclass_out, sample_t **smp, int64_t *n, int64_t *cap,
                        int *skipped) {
    int nclass = 0, skipped_root = 0;
    char **classes = list_dir(dir, 1, &nclass, &skipped_root);
    if (nclass == 0) {
        int nimg = 0, other = 0;
        char **files = list_dir(dir, 0, &nimg, &other);
        for (int i = 0; i < nimg; i++) free(files[i]);
        free(files);
        /* e.g. ILSVRC2012's val/ as distributed: 50000 JPEGs side by side, labels elsewhere */
        if (nimg > 0)
            beit_fatal_user(BEIT_EXIT_DATA,
                            "%s: %d images directly in the folder and no class folders (expected one subfolder "
                            "per class: sort the images into folders named by class first)",
                            dir, nimg);
        beit_fatal_user(BEIT_EXIT_DATA,
                        "%s: no class folders (expected one subfolder per class holding PNG/JPEG images)", dir);
    }
    if (skipped_root) beit_warn("%s: %d entries that are not folders ignored", dir, skipped_root);
    for (int k = 0; k < nclass; k++) {
        char *cdir = xasprintf("%s/%s", dir, classes[k]);
        int nf = 0;
        char **files = list_dir(cdir, 0, &nf, skipped);
        if (nf == 0)
            beit_fatal_user(BEIT_EXIT_DATA,
                            "%s: no .png/.jpg/.jpeg files (expected at least one image per class folder)", cdir);
        for (int i = 0; i < nf; i++) {
            if (*n == *cap) *smp = xrealloc(*smp, (size_t)(*cap *= 2) * sizeof **smp);
            (*smp)[*n] = (sample_t){.path = xasprintf("%s/%s", cdir, files[i]), .label = k, .test = test_flag};
            (*n)++;
            free(files[i]);
        }
        free(files);
        free(cdir);
    }
    *nclass_out = nclass;
    return classes;
}

/* 1 if every image is grayscale (headers only), else 3 */
static int tree_channels(const sample_t *smp, int64_t n) {
    char err[512];
    for (int64_t i = 0; i < n; i++) {
        int h, w, g;
        if (image_probe(smp[i].path, &h, &w, &g, err, sizeof err) != 0)
            beit_fatal_user(BEIT_EXIT_DATA, "%s: %s (expected a decodable PNG or JPEG image)", smp[i].path, err);
        if (!g) return 3;
    }
    return 1;
}

int import_folder(const import_folder_opts *o) {
    const char *dir = o->dir, *out = o->out, *split = o->split ? o->split : "train";
    const int S = o->size;
    const double frac = o->test_fraction;
    double t0 = beit_now();

    int nclass = 0, skipped = 0;
    int64_t n = 0, cap = 1024, n_test = 0;
    sample_t *smp = xmalloc((size_t)cap * sizeof *smp);
    char **classes = scan_tree(dir, 0, &nclass, &smp, &n, &cap, &skipped);
    /* hold out round(frac * nf) files of each class, chosen by a fixed-seed partial
     * Fisher-Yates (seed 0, stream (RNG_SHUFFLE, class, 1)): reproducible across runs */
    for (int64_t first = 0; first < n;) {
        int k = smp[first].label, nf = 0;
        while (first + nf < n && smp[first + nf].label == k) nf++;
        int nt = (int)floor(frac * nf + 0.5);
        if (nt > 0) {
            int *ord = xmalloc((size_t)nf * sizeof *ord);
            for (int i = 0; i < nf; i++) ord[i] = i;
            rng_t g = rng_stream(0, RNG_SHUFFLE, (uint64_t)k, 1);
            for (int i = 0; i < nt; i++) {
                int j = i + (int)rng_below(&g, (uint64_t)(nf - i));
                int t = ord[i];
                ord[i] = ord[j];
                ord[j] = t;
                smp[first + ord[i]].test = 1;
            }
            free(ord);
            n_test += nt;
        }
        first += nf;
    }
    if (skipped)
        beit_warn("%s: %d files without a .png/.jpg/.jpeg name or subfolders inside class folders ignored", dir,
                  skipped);

    int C = tree_channels(smp, n);
    if (n - n_test == 0) {
        free_samples(smp, n, classes, nclass);
        return IMPORT_FOLDER_SPLIT_EMPTY;
    }

    char *source = xasprintf("folder %s (size %d, split %s, test-fraction %g)", dir, S, split, frac);
    beit_store_meta meta = {.source = source,
                            .height = S,
                            .width = S,
                            .channels = C,
                            .num_classes = nclass,
                            .class_names = (const char *const *)classes,
                            .stats_split = split};
    beit_store_writer *w = store_create(out, &meta);
    write_folder_split(w, split, smp, n, 0, n - n_test, C, S);
    if (frac > 0) write_folder_split(w, "test", smp, n, 1, n_test, C, S);
    store_commit(w);
    char dur[32], test_part[64] = "";
    if (frac > 0) snprintf(test_part, sizeof test_part, ", test %lld", (long long)n_test);
    beit_log("wrote %s: %s %lld%s images of %dx%dx%d, %d classes (%s)", out, split, (long long)(n - n_test), test_part,
             S, S, C, nclass, beit_fmt_duration(beit_now() - t0, dur, sizeof dur));
    free_samples(smp, n, classes, nclass);
    free(source);
    return 0;
}

/* "a, b, c" of the names in `names` that are not in `other` (both sorted), at most 10 then
 * "and N more"; *count_out = how many. NULL when none. */
static char *missing_from(char **names, int n, char **other, int m, int *count_out) {
    int cnt = 0;
    size_t len = 0;
    char *list = NULL;
    for (int i = 0, j = 0; i < n; i++) {
        while (j < m && strcmp(other[j], names[i]) < 0) j++;
        if (j < m && !strcmp(other[j], names[i])) continue;
        if (++cnt <= 10) {
            const char *part = names[i];
            size_t pl = strlen(part);
            list = xrealloc(list, len + pl + 3);
            if (len) {
                memcpy(list + len, ", ", 2);
                len += 2;
            }
            memcpy(list + len, part, pl + 1);
            len += pl;
        }
    }
    *count_out = cnt;
    if (cnt > 10) {
        char *t = xasprintf("%s and %d more", list, cnt - 10);
        free(list);
        list = t;
    }
    return list;
}

int import_imagenet(const import_imagenet_opts *o) {
    const char *root = o->root, *out = o->out, *val_split = o->val_split ? o->val_split : "test";
    const int S = o->size;
    double t0 = beit_now();
    char *tdir = xasprintf("%s/train", root), *vdir = xasprintf("%s/val", root);
    struct stat st;
    for (int i = 0; i < 2; i++) {
        const char *d = i ? vdir : tdir;
        if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
            beit_fatal_user(BEIT_EXIT_DATA, "%s: no such folder (expected %s to hold train/ and val/, one folder per "
                            "class in each)", d, root);
    }

    int nt_class = 0, nv_class = 0, skipped = 0;
    int64_t n = 0, cap = 1024;
    sample_t *smp = xmalloc((size_t)cap * sizeof *smp);
    char **classes = scan_tree(tdir, 0, &nt_class, &smp, &n, &cap, &skipped);
    int64_t n_train = n;
    char **vclasses = scan_tree(vdir, 1, &nv_class, &smp, &n, &cap, &skipped);
    /* one class index for both splits: the same sorted folder names on both sides */
    int miss_v = 0, miss_t = 0;
    char *lv = missing_from(classes, nt_class, vclasses, nv_class, &miss_v);
    char *lt = missing_from(vclasses, nv_class, classes, nt_class, &miss_t);
    if (miss_v || miss_t) {
        char *a = miss_v ? xasprintf("%d class%s of train/ missing from val/: %s", miss_v, miss_v > 1 ? "es" : "", lv)
                         : xstrdup("");
        char *b = miss_t ? xasprintf("%s%d class%s of val/ missing from train/: %s", miss_v ? "; " : "", miss_t,
                                     miss_t > 1 ? "es" : "", lt)
                         : xstrdup("");
        beit_fatal_user(BEIT_EXIT_DATA,
                        "%s: train/ and val/ have different class folders: %s%s (expected the same class folders "
                        "in both, so that class indices agree)",
                        root, a, b);
    }
    free(lv);
    free(lt);
    if (skipped)
        beit_warn("%s: %d files without a .png/.jpg/.jpeg name or subfolders inside class folders ignored", root,
                  skipped);

    int C = tree_channels(smp, n);
    char *source = xasprintf("imagenet-layout %s (size %d, train/ -> train, val/ -> %s)", root, S, val_split);
    beit_store_meta meta = {.source = source,
                            .height = S,
                            .width = S,
                            .channels = C,
                            .num_classes = nt_class,
                            .class_names = (const char *const *)classes,
                            .stats_split = "train"}; /* mean/std from train only */
    beit_store_writer *w = store_create(out, &meta);
    write_folder_split(w, "train", smp, n, 0, n_train, C, S);
    write_folder_split(w, val_split, smp, n, 1, n - n_train, C, S);
    store_commit(w);
    char dur[32];
    beit_log("wrote %s: train %lld, %s %lld images of %dx%dx%d, %d classes (%s)", out, (long long)n_train, val_split,
             (long long)(n - n_train), S, S, C, nt_class, beit_fmt_duration(beit_now() - t0, dur, sizeof dur));
    free_samples(smp, n, classes, nt_class);
    for (int k = 0; k < nv_class; k++) free(vclasses[k]);
    free(vclasses);
    free(source);
    free(tdir);
    free(vdir);
    return 0;
}
