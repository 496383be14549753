/* beit data: import datasets into the HDF5 store (include/beit/store.h) and describe a store.
 *
 *   beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] OUT.h5
 *   beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F]
 *   beit data mosaic --data FMNIST.h5 --seed S [--train N] [--test N] [--png FILE] OUT.h5
 *   beit data info FILE.h5
 *
 * Imports are single-process jobs: under mpirun, rank 0 works and the others wait. */
#include "commands.h"
#include "beit/error.h"
#include "beit/idx.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/mosaic.h"
#include "beit/rng.h"
#include "beit/store.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FMNIST_DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

/* ======================================================================================== */
/* flag parsing                                                                             */
/* ======================================================================================== */

typedef struct {
    const char *name;   /* "--src" */
    const char **value; /* where the value goes */
} opt_t;

/* Parse argv[1..] into opts and positionals. Returns 1 if --help was asked (usage printed),
 * else 0; bad flags end the job with BEIT_EXIT_USAGE. */
static int parse_args(const char *cmd, int argc, char **argv, const opt_t *opts, const char **pos, int npos_max,
                      int *npos, void (*usage)(FILE *)) {
    *npos = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && (!strcmp(a, "--help") || !strcmp(a, "-h"))) {
            if (beit_rank() == 0) usage(stdout);
            return 1;
        }
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            const opt_t *o = NULL;
            for (const opt_t *p = opts; p && p->name; p++)
                if (strlen(p->name) == len && !strncmp(p->name, a, len)) o = p;
            if (!o) beit_fatal_user(BEIT_EXIT_USAGE, "%s: unknown flag %.*s (see '%s --help')", cmd, (int)len, a, cmd);
            if (eq) *o->value = eq + 1;
            else if (i + 1 < argc) *o->value = argv[++i];
            else beit_fatal_user(BEIT_EXIT_USAGE, "%s: flag %s needs a value (see '%s --help')", cmd, o->name, cmd);
            continue;
        }
        if (*npos == npos_max)
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: unexpected argument '%s' (see '%s --help')", cmd, a, cmd);
        pos[(*npos)++] = a;
    }
    return 0;
}

static long long parse_int(const char *cmd, const char *flag, const char *s, long long lo, long long hi) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: %s '%s' (expected an integer in %lld..%lld)", cmd, flag, s, lo, hi);
    return v;
}

/* ======================================================================================== */
/* usage texts                                                                              */
/* ======================================================================================== */

static void usage_data(FILE *f) {
    fprintf(f, "usage: beit data <subcommand> [options]\n"
               "\n"
               "Datasets live in an HDF5 store (one file): /<split>/images uint8 [N,H,W,C] and\n"
               "/<split>/labels [N], with class names, per-channel mean/std and a uuid as attributes.\n"
               "\n"
               "subcommands:\n"
               "  import fashion-mnist   import the Fashion-MNIST IDX files (Debian dataset-fashion-mnist)\n"
               "  import folder          import a class-per-subfolder tree of PNG/JPEG images\n"
               "  mosaic                 build a segmentation store (per-pixel masks) from Fashion-MNIST\n"
               "  info                   describe a store: layout, attributes, per-class counts\n"
               "\n"
               "`beit data <subcommand> --help` describes each. Example:\n"
               "  beit data import fashion-mnist data/fmnist.h5 && beit data info data/fmnist.h5\n");
}

static void usage_import(FILE *f) {
    fprintf(f, "usage: beit data import <fashion-mnist|folder> ... OUT.h5\n"
               "\n"
               "  beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] OUT.h5\n"
               "  beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F]\n"
               "\n"
               "The store is written to a temporary file next to OUT.h5 and renamed when complete:\n"
               "a failed or interrupted import leaves nothing at OUT.h5.\n"
               "\n"
               "example:\n"
               "  beit data import fashion-mnist data/fmnist.h5\n");
}

static void usage_fmnist(FILE *f) {
    fprintf(f, "usage: beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] OUT.h5\n"
               "\n"
               "Reads DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (gzip-compressed IDX), checks\n"
               "them (gzip integrity, magic numbers, 28x28 images, equal image/label counts, labels 0..9,\n"
               "the expected counts) and writes /train and /test (uint8 images [N,28,28,1], uint8 labels).\n"
               "\n"
               "flags:\n"
               "  --src DIR             where the .gz files are (default " FMNIST_DEFAULT_SRC ")\n"
               "  --expect-counts T:E   required train:test sample counts (default 60000:10000, the real\n"
               "                        Fashion-MNIST); 'any' accepts any counts (for small test sets)\n"
               "  -h, --help            this text\n"
               "\n"
               "example:\n"
               "  beit data import fashion-mnist data/fmnist.h5\n");
}

static void usage_folder(FILE *f) {
    fprintf(f, "usage: beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F]\n"
               "\n"
               "DIR holds one subfolder per class (classes sorted by folder name, labels 0..K-1) with\n"
               "PNG/JPEG files (.png .jpg .jpeg, any case; sorted by name; other files are skipped).\n"
               "Each image is decoded (format from its signature), center-cropped to a square and\n"
               "resized to S x S with an antialiased bilinear filter. Channels: 1 if every image is\n"
               "grayscale, else 3 (RGB; gray images replicated, alpha composited onto white).\n"
               "\n"
               "flags:\n"
               "  --size S              output side in pixels (required, 1..4096)\n"
               "  --split-name NAME     split the images go to (default train)\n"
               "  --test-fraction F     hold out round(F * n) images of each class (fixed-seed random\n"
               "                        choice) as the split 'test' (default 0, 0 <= F < 1)\n"
               "  -h, --help            this text\n"
               "\n"
               "example:\n"
               "  beit data import folder ~/pets data/pets.h5 --size 64 --test-fraction 0.1\n");
}

static void usage_mosaic(FILE *f) {
    fprintf(f, "usage: beit data mosaic --data FMNIST.h5 --seed S [--train N] [--test N] [--png FILE] OUT.h5\n"
               "\n"
               "Builds a semantic-segmentation store from a Fashion-MNIST store (28x28x1, 10 classes):\n"
               "each sample pastes 1..4 garments of the same split, downscaled to 14x14, at random\n"
               "positions on a black 28x28 canvas; pixels >= %d of a garment overwrite the canvas and\n"
               "the mask (the later garment wins). Masks /<split>/masks uint8 [N,28,28] hold 0 for\n"
               "background and 1..10 for the garment classes; the label of a sample is the class\n"
               "covering the most pixels (0 if none). 11 classes: background + the source's 10.\n"
               "Everything is drawn from (seed, split, sample index): the same seed gives the same\n"
               "images, labels and masks. Recipe: datasets/mosaic.md.\n"
               "\n"
               "flags:\n"
               "  --data FILE     the source store (required; e.g. from 'beit data import fashion-mnist')\n"
               "  --seed S        the seed (required, 0..2^63-1)\n"
               "  --train N       samples of split train (default: as many as the source's train split)\n"
               "  --test N        samples of split test (default: as many as the source's test split)\n"
               "  --png FILE      also write a PNG of the first 16 train images beside their masks\n"
               "  -h, --help      this text\n"
               "\n"
               "example:\n"
               "  beit data mosaic --data data/fmnist.h5 --seed 1 --png mosaic.png data/mosaic.h5\n",
            MOSAIC_FOREGROUND);
}

static void usage_info(FILE *f) {
    fprintf(f, "usage: beit data info FILE.h5\n"
               "\n"
               "Prints the store's layout (groups, datasets with shape, type, chunks, filters and size\n"
               "on disk), its attributes, and statistics: per-class sample counts of every split,\n"
               "the per-channel mean/std and, for stores with masks, the per-class pixel frequencies\n"
               "of every split (every mask is read and checked). A missing file, one that is not a\n"
               "dataset store or a mask value outside [0, num_classes) exits 3.\n"
               "\n"
               "flags:\n"
               "  -h, --help   this text\n"
               "\n"
               "example:\n"
               "  beit data info data/fmnist.h5\n");
}

/* ======================================================================================== */
/* import fashion-mnist                                                                     */
/* ======================================================================================== */

static const char *const FMNIST_CLASSES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

static void read_idx_or_die(const char *path, int images, idx_array *a) {
    char err[512];
    if (idx_read_gz(path, images, a, err, sizeof err) != 0) beit_fatal_user(BEIT_EXIT_DATA, "%s: %s", path, err);
}

/* Load and check one split; all checks happen before the output file exists. */
static void fmnist_load_split(const char *dir, const char *stem, const char *split, long long expect, idx_array *im,
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
                        ip, (long long)im->count, expect, split);
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

static int import_fmnist(int argc, char **argv) {
    const char *cmd = "beit data import fashion-mnist";
    const char *src = NULL, *expect = NULL, *pos[1];
    opt_t opts[] = {{"--src", &src}, {"--expect-counts", &expect}, {NULL, NULL}};
    int npos;
    if (parse_args(cmd, argc, argv, opts, pos, 1, &npos, usage_fmnist)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing OUT.h5 (see '%s --help')", cmd, cmd);
    const char *out = pos[0];
    long long exp_train = 60000, exp_test = 10000;
    if (expect) {
        if (!strcmp(expect, "any")) {
            exp_train = exp_test = -1;
        } else {
            char *colon = strchr(expect, ':');
            if (!colon)
                beit_fatal_user(BEIT_EXIT_USAGE, "%s: --expect-counts '%s' (expected TRAIN:TEST or any)", cmd, expect);
            char *a = xstrdup(expect);
            a[colon - expect] = '\0';
            exp_train = parse_int(cmd, "--expect-counts", a, 0, 1LL << 40);
            exp_test = parse_int(cmd, "--expect-counts", colon + 1, 0, 1LL << 40);
            free(a);
        }
    }
    if (beit_rank() != 0) return 0;
    if (!src) src = FMNIST_DEFAULT_SRC;
    double t0 = beit_now();

    idx_array tr_im, tr_lb, te_im, te_lb;
    char *tr_path, *te_path;
    fmnist_load_split(src, "train", "train", exp_train, &tr_im, &tr_lb, &tr_path);
    fmnist_load_split(src, "t10k", "test", exp_test, &te_im, &te_lb, &te_path);

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

/* ======================================================================================== */
/* import folder                                                                            */
/* ======================================================================================== */

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

static int import_folder(int argc, char **argv) {
    const char *cmd = "beit data import folder";
    const char *size_s = NULL, *split = NULL, *frac_s = NULL, *pos[2];
    opt_t opts[] = {{"--size", &size_s}, {"--split-name", &split}, {"--test-fraction", &frac_s}, {NULL, NULL}};
    int npos;
    if (parse_args(cmd, argc, argv, opts, pos, 2, &npos, usage_folder)) return 0;
    if (npos != 2) beit_fatal_user(BEIT_EXIT_USAGE, "%s: expected DIR and OUT.h5 (see '%s --help')", cmd, cmd);
    if (!size_s) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --size is required (see '%s --help')", cmd, cmd);
    int S = (int)parse_int(cmd, "--size", size_s, 1, 4096);
    if (!split) split = "train";
    if (!*split || strchr(split, '/') || strlen(split) >= 64)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --split-name '%s' (expected a name without '/', under 64 chars)", cmd,
                        split);
    double frac = 0;
    if (frac_s) {
        char *end = NULL;
        frac = strtod(frac_s, &end);
        if (!end || *end || end == frac_s || !(frac >= 0 && frac < 1))
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: --test-fraction '%s' (expected a number in [0, 1))", cmd, frac_s);
    }
    if (frac > 0 && !strcmp(split, "test"))
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --split-name test with --test-fraction (the held-out split is 'test')",
                        cmd);
    const char *dir = pos[0], *out = pos[1];
    if (beit_rank() != 0) return 0;
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
    if (n - n_test == 0)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --test-fraction %g leaves split %s empty (expected a smaller fraction)",
                        cmd, frac, split);

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
    for (int64_t i = 0; i < n; i++) free(smp[i].path);
    free(smp);
    for (int k = 0; k < nclass; k++) free(classes[k]);
    free(classes);
    free(source);
    return 0;
}

/* ======================================================================================== */
/* mosaic                                                                                   */
/* ======================================================================================== */

static int cmd_mosaic(int argc, char **argv) {
    const char *cmd = "beit data mosaic";
    const char *data = NULL, *seed_s = NULL, *train_s = NULL, *test_s = NULL, *png = NULL, *pos[1];
    opt_t opts[] = {{"--data", &data}, {"--seed", &seed_s}, {"--train", &train_s},
                    {"--test", &test_s}, {"--png", &png},   {NULL, NULL}};
    int npos;
    if (parse_args(cmd, argc, argv, opts, pos, 1, &npos, usage_mosaic)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing OUT.h5 (see '%s --help')", cmd, cmd);
    if (!data) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --data is required (see '%s --help')", cmd, cmd);
    if (!seed_s) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --seed is required (see '%s --help')", cmd, cmd);
    mosaic_opts o = {.src_path = data, .out_path = pos[0], .png_path = png, .n_train = -1, .n_test = -1};
    o.seed = (uint64_t)parse_int(cmd, "--seed", seed_s, 0, INT64_MAX);
    /* sample indices are the 32-bit b of the RNG stream; store_read takes int counts */
    if (train_s) o.n_train = parse_int(cmd, "--train", train_s, 1, INT32_MAX);
    if (test_s) o.n_test = parse_int(cmd, "--test", test_s, 1, INT32_MAX);
    if (beit_rank() != 0) return 0;
    double t0 = beit_now();
    mosaic_build(&o);
    beit_store *s = store_open(o.out_path, MPI_COMM_NULL);
    char dur[32];
    beit_log("wrote %s: mosaic of %s (seed %llu), train %lld, test %lld images of 28x28x1 with masks, %d classes (%s)",
             o.out_path, data, (unsigned long long)o.seed, (long long)store_split_count(s, "train"),
             (long long)store_split_count(s, "test"), store_num_classes(s),
             beit_fmt_duration(beit_now() - t0, dur, sizeof dur));
    store_close(s);
    if (png) beit_log("wrote %s: the first 16 train images and their masks", png);
    return 0;
}

/* ======================================================================================== */
/* info                                                                                     */
/* ======================================================================================== */

static void type_name(hid_t t, char *buf, size_t n) {
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, n, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", H5Tget_size(t) * 8);
        break;
    case H5T_FLOAT: snprintf(buf, n, "float%zu", H5Tget_size(t) * 8); break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    default: snprintf(buf, n, "other"); break;
    }
}

static void dims_str(hid_t space, char *buf, size_t n) {
    hsize_t d[H5S_MAX_RANK];
    int r = H5Sget_simple_extent_ndims(space);
    if (r <= 0) {
        snprintf(buf, n, "scalar");
        return;
    }
    H5Sget_simple_extent_dims(space, d, NULL);
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < r && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static void human_bytes(double b, char *buf, size_t n) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, n, i ? "%.2f %s" : "%.0f %s", b, u[i]);
}

static void print_attr_value(hid_t a) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int is_array = H5Sget_simple_extent_ndims(sp) > 0;
    H5T_class_t cls = H5Tget_class(t);
    const hssize_t max_show = 16;
    if (is_array) printf("[");
    if (cls == H5T_STRING) {
        char **v = xcalloc((size_t)n, sizeof *v);
        int vlen = H5Tis_variable_str(t) > 0;
        size_t len = H5Tget_size(t);
        hid_t m = H5Tcopy(H5T_C_S1);
        char *fixed = NULL;
        if (vlen) {
            H5Tset_size(m, H5T_VARIABLE);
            H5Tset_cset(m, H5Tget_cset(t));
            H5Aread(a, m, v);
        } else {
            H5Tset_size(m, len + 1);
            fixed = xcalloc((size_t)n, len + 1);
            H5Aread(a, m, fixed);
            for (hssize_t i = 0; i < n; i++) v[i] = fixed + (size_t)i * (len + 1);
        }
        for (hssize_t i = 0; i < n && i < max_show; i++) printf("%s\"%s\"", i ? ", " : "", v[i] ? v[i] : "");
        if (vlen)
            for (hssize_t i = 0; i < n; i++)
                if (v[i]) H5free_memory(v[i]);
        free(fixed);
        free(v);
        H5Tclose(m);
    } else if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
        double *v = xmalloc((size_t)n * sizeof *v);
        H5Aread(a, H5T_NATIVE_DOUBLE, v);
        for (hssize_t i = 0; i < n && i < max_show; i++) {
            if (cls == H5T_INTEGER) printf("%s%.0f", i ? ", " : "", v[i]);
            else printf("%s%.6g", i ? ", " : "", v[i]);
        }
        free(v);
    } else {
        printf("(unprintable)");
    }
    if (n > max_show) printf(", ... (%lld values)", (long long)n);
    if (is_array) printf("]");
    H5Tclose(t);
    H5Sclose(sp);
}

static herr_t print_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    const char *indent = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    char tn[32];
    hid_t t = H5Aget_type(a);
    type_name(t, tn, sizeof tn);
    H5Tclose(t);
    printf("%s%-16s %-8s ", indent, name, tn);
    print_attr_value(a);
    printf("\n");
    H5Aclose(a);
    return 0;
}

static void print_dataset_line(hid_t d, const char *path) {
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    char tn[32], dims[128], chunk[128] = "contiguous", filters[128] = "none", raw[32], disk[32];
    type_name(t, tn, sizeof tn);
    dims_str(sp, dims, sizeof dims);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[H5S_MAX_RANK];
        int r = H5Pget_chunk(dcpl, H5S_MAX_RANK, cd);
        size_t o = (size_t)snprintf(chunk, sizeof chunk, "chunks [");
        for (int i = 0; i < r && o < sizeof chunk; i++)
            o += (size_t)snprintf(chunk + o, sizeof chunk - o, "%s%llu", i ? "," : "", (unsigned long long)cd[i]);
        if (o < sizeof chunk) snprintf(chunk + o, sizeof chunk - o, "]");
    }
    int nf = H5Pget_nfilters(dcpl);
    if (nf > 0) {
        size_t o = 0;
        filters[0] = '\0';
        for (int i = 0; i < nf && o < sizeof filters; i++) {
            unsigned flags, cd[8];
            size_t ncd = 8;
            char fname[64];
            H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, sizeof fname, fname, NULL);
            if (id == H5Z_FILTER_DEFLATE && ncd >= 1)
                o += (size_t)snprintf(filters + o, sizeof filters - o, "%sdeflate(%u)", i ? "+" : "", cd[0]);
            else if (id == H5Z_FILTER_SHUFFLE)
                o += (size_t)snprintf(filters + o, sizeof filters - o, "%sshuffle", i ? "+" : "");
            else o += (size_t)snprintf(filters + o, sizeof filters - o, "%sfilter%d", i ? "+" : "", (int)id);
        }
    }
    double raw_b = (double)H5Sget_simple_extent_npoints(sp) * (double)H5Tget_size(t);
    double disk_b = (double)H5Dget_storage_size(d);
    human_bytes(raw_b, raw, sizeof raw);
    human_bytes(disk_b, disk, sizeof disk);
    printf("  %-18s %-7s %-20s %-22s %-16s %s -> %s on disk", path, tn, dims, chunk, filters, raw, disk);
    if (disk_b > 0) printf(" (%.1fx)", raw_b / disk_b);
    printf("\n");
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(sp);
}

/* Walk groups in name order and print each object; attributes of non-root objects inline. */
static void print_tree(hid_t g, const char *prefix) {
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) return;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
        char *path = xasprintf("%s/%s", prefix, name);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o >= 0) {
            if (H5Iget_type(o) == H5I_GROUP) {
                printf("  %-18s group", path);
                int64_t count;
                if (H5Aexists(o, "count") > 0) {
                    hid_t a = H5Aopen(o, "count", H5P_DEFAULT);
                    if (H5Aread(a, H5T_NATIVE_INT64, &count) >= 0) printf("   count = %lld", (long long)count);
                    H5Aclose(a);
                }
                printf("\n");
                print_tree(o, path);
            } else if (H5Iget_type(o) == H5I_DATASET) {
                print_dataset_line(o, path);
            }
            H5Oclose(o);
        }
        free(path);
    }
}

static int cmd_info(int argc, char **argv) {
    const char *cmd = "beit data info", *pos[1];
    opt_t opts[] = {{NULL, NULL}};
    int npos;
    if (parse_args(cmd, argc, argv, opts, pos, 1, &npos, usage_info)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing FILE.h5 (see '%s --help')", cmd, cmd);
    if (beit_rank() != 0) return 0;
    const char *path = pos[0];
    beit_store *s = store_open(path, MPI_COMM_NULL); /* validates; errors exit 3 */
    int C = s->channels;

    printf("%s: beit dataset store (format %s, version %d)\n", path, STORE_FORMAT, STORE_FORMAT_VERSION);
    printf("  source       %s\n", s->source);
    printf("  uuid         %s\n", s->uuid);
    printf("  created_by   %s\n", s->created_by);
    printf("  images       %d x %d x %d (height x width x channels), uint8\n", s->height, s->width, C);
    printf("  classes      %d\n", s->num_classes);
    if (store_has_masks(s))
        printf("  masks        %d x %d per-pixel class, uint8 (pixel_labels = 1)\n", s->height, s->width);
    printf("  splits      ");
    for (int i = 0; i < s->nsplits; i++) printf(" %s (%lld)", s->splits[i].name, (long long)s->splits[i].count);
    printf("\n  mean         [");
    for (int k = 0; k < C; k++) printf("%s%.6f", k ? ", " : "", s->mean[k]);
    printf("]  (per channel, pixels scaled to [0,1], over split %s)\n  std          [", s->stats_split);
    for (int k = 0; k < C; k++) printf("%s%.6f", k ? ", " : "", s->std[k]);
    printf("]\n\nlayout\n  %-18s group\n", "/");
    print_tree(s->file, "");

    printf("\nattributes of /\n");
    hsize_t idx = 0;
    H5Aiterate2(s->file, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr_cb, (void *)"  ");

    /* per-class counts of every split */
    printf("\nsamples per class\n  %-4s %-20s", "#", "class");
    int64_t **counts = xcalloc((size_t)s->nsplits, sizeof *counts);
    int64_t *bad = xcalloc((size_t)s->nsplits, sizeof *bad);
    for (int i = 0; i < s->nsplits; i++) {
        printf(" %10s", s->splits[i].name);
        counts[i] = xcalloc((size_t)s->num_classes, sizeof **counts);
        int32_t *lab = xmalloc((size_t)(s->splits[i].count + 1) * sizeof *lab);
        store_read_labels(s, s->splits[i].name, lab);
        for (int64_t j = 0; j < s->splits[i].count; j++) {
            if (lab[j] >= 0 && lab[j] < s->num_classes) counts[i][lab[j]]++;
            else bad[i]++;
        }
        free(lab);
    }
    printf("\n");
    for (int k = 0; k < s->num_classes; k++) {
        printf("  %-4d %-20s", k, s->class_names[k]);
        for (int i = 0; i < s->nsplits; i++) printf(" %10lld", (long long)counts[i][k]);
        printf("\n");
    }
    printf("  %-4s %-20s", "", "total");
    for (int i = 0; i < s->nsplits; i++) printf(" %10lld", (long long)s->splits[i].count);
    printf("\n");
    int any_bad = 0;
    for (int i = 0; i < s->nsplits; i++) {
        if (bad[i]) {
            printf("  warning: split %s has %lld labels outside 0..%d\n", s->splits[i].name, (long long)bad[i],
                   s->num_classes - 1);
            any_bad = 1;
        }
        free(counts[i]);
    }
    free(counts);
    free(bad);
    if (store_has_masks(s)) { /* per-class pixel frequencies, every mask read (and checked) */
        enum { RB = 1024 };
        size_t mb = (size_t)s->height * s->width;
        int64_t *idx = xmalloc(RB * sizeof *idx);
        uint8_t *m = xmalloc(RB * mb);
        double **freq = xcalloc((size_t)s->nsplits, sizeof *freq);
        for (int i = 0; i < s->nsplits; i++) {
            int64_t cnt[256] = {0};
            for (int64_t j0 = 0; j0 < s->splits[i].count; j0 += RB) {
                int nb = (int)(s->splits[i].count - j0 < RB ? s->splits[i].count - j0 : RB);
                for (int j = 0; j < nb; j++) idx[j] = j0 + j;
                store_read_masks(s, s->splits[i].name, idx, nb, m);
                for (size_t p = 0; p < (size_t)nb * mb; p++) cnt[m[p]]++;
            }
            freq[i] = xcalloc((size_t)s->num_classes, sizeof **freq);
            double tot = (double)s->splits[i].count * (double)mb;
            for (int k = 0; k < s->num_classes; k++) freq[i][k] = tot > 0 ? 100.0 * (double)cnt[k] / tot : 0;
        }
        printf("\npixels per class (%% of the split's pixels)\n  %-4s %-20s", "#", "class");
        for (int i = 0; i < s->nsplits; i++) printf(" %10s", s->splits[i].name);
        printf("\n");
        for (int k = 0; k < s->num_classes; k++) {
            printf("  %-4d %-20s", k, s->class_names[k]);
            for (int i = 0; i < s->nsplits; i++) printf(" %9.3f%%", freq[i][k]);
            printf("\n");
        }
        for (int i = 0; i < s->nsplits; i++) free(freq[i]);
        free(freq);
        free(idx);
        free(m);
    }
    fflush(stdout);
    int nk = s->num_classes;
    store_close(s);
    if (any_bad) beit_fatal_user(BEIT_EXIT_DATA, "%s: labels outside [0, num_classes) (expected 0..%d)", path, nk - 1);
    return 0;
}

/* ======================================================================================== */

static int cmd_import(int argc, char **argv) {
    if (argc < 2) {
        if (beit_rank() == 0) usage_import(stderr);
        return BEIT_EXIT_USAGE;
    }
    const char *what = argv[1];
    if (!strcmp(what, "--help") || !strcmp(what, "-h")) {
        if (beit_rank() == 0) usage_import(stdout);
        return 0;
    }
    if (!strcmp(what, "fashion-mnist")) return import_fmnist(argc - 1, argv + 1);
    if (!strcmp(what, "folder")) return import_folder(argc - 1, argv + 1);
    beit_fatal_user(BEIT_EXIT_USAGE, "beit data import: unknown dataset kind '%s' (expected fashion-mnist or folder)",
                    what);
}

int cmd_data(int argc, char **argv) {
    int rc;
    if (argc < 2) {
        if (beit_rank() == 0) usage_data(stderr);
        rc = BEIT_EXIT_USAGE;
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (beit_rank() == 0) usage_data(stdout);
        rc = 0;
    } else if (!strcmp(argv[1], "import")) {
        rc = cmd_import(argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "info")) {
        rc = cmd_info(argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "mosaic")) {
        rc = cmd_mosaic(argc - 1, argv + 1);
    } else {
        beit_fatal_user(BEIT_EXIT_USAGE,
                        "beit data: unknown subcommand '%s' (expected import, mosaic or info; see 'beit data "
                        "--help')",
                        argv[1]);
    }
    /* rank 0 did the work; the others wait so nobody reads a half-written file */
    if (beit_nranks() > 1) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    return rc;
}
