/* Image-folder importer: a class-per-subfolder tree of PNG/JPEG files -> a dataset store of
 * center-cropped, resized images (import.h). */
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
    int test; /* held out */
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

int import_folder(const import_folder_opts *o) {
    const char *dir = o->dir, *out = o->out, *split = o->split ? o->split : "train";
    const int S = o->size;
    const double frac = o->test_fraction;
    double t0 = beit_now();

    int nclass = 0, skipped_root = 0, skipped = 0;
    char **classes = list_dir(dir, 1, &nclass, &skipped_root);
    if (nclass == 0)
        beit_fatal_user(BEIT_EXIT_DATA,
                        "%s: no class folders (expected one subfolder per class holding PNG/JPEG images)", dir);
    if (skipped_root) beit_warn("%s: %d entries that are not folders ignored", dir, skipped_root);
    int64_t n = 0, cap = 1024;
    sample_t *smp = xmalloc((size_t)cap * sizeof *smp);
    int64_t n_test = 0;
    for (int k = 0; k < nclass; k++) {
        char *cdir = xasprintf("%s/%s", dir, classes[k]);
        int nf = 0;
        char **files = list_dir(cdir, 0, &nf, &skipped);
        if (nf == 0)
            beit_fatal_user(BEIT_EXIT_DATA,
                            "%s: no .png/.jpg/.jpeg files (expected at least one image per class folder)", cdir);
        int64_t first = n;
        for (int i = 0; i < nf; i++) {
            if (n == cap) smp = xrealloc(smp, (size_t)(cap *= 2) * sizeof *smp);
            smp[n].path = xasprintf("%s/%s", cdir, files[i]);
            smp[n].label = k;
            smp[n].test = 0;
            n++;
            free(files[i]);
        }
        free(files);
        free(cdir);
        /* hold out round(frac * nf) files of this class, chosen by a fixed-seed partial
         * Fisher-Yates (seed 0, stream (RNG_SHUFFLE, class, 1)): reproducible across runs */
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
    }
    if (skipped)
        beit_warn("%s: %d files without a .png/.jpg/.jpeg name or subfolders inside class folders ignored", dir,
                  skipped);

    /* channels: 1 only if every image is grayscale (headers only) */
    int all_gray = 1;
    char err[512];
    for (int64_t i = 0; i < n; i++) {
        int h, w, g;
        if (image_probe(smp[i].path, &h, &w, &g, err, sizeof err) != 0)
            beit_fatal_user(BEIT_EXIT_DATA, "%s: %s (expected a decodable PNG or JPEG image)", smp[i].path, err);
        if (!g) {
            all_gray = 0;
            break;
        }
    }
    int C = all_gray ? 1 : 3;
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
