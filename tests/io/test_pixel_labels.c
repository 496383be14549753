/* Pixel labels (the per-pixel class masks of segmentation stores, store.h's store_read_masks
 * and the writer's masks), run by data/mosaic.sh:
 *   test_pixel_labels make PATH        write a synthetic store with masks (train 1000, test 37;
 *                                      40x40x3, 7 classes; masks and images appended in
 *                                      different interleavings)
 *   test_pixel_labels check PATH       under mpirun: open with the MPI-IO driver, every rank
 *                                      reads its own random samples (any order, repeats) of
 *                                      masks and images with a small cache budget (blocks of
 *                                      both kinds evicted), compared with the formula; rank 0
 *                                      prints TAP
 *   test_pixel_labels read PATH SPLIT  serial: read every mask of SPLIT with store_read_masks
 *                                      (exit 0, or the reader's exit code on bad data)
 *   test_pixel_labels errors DIR       writer misuse in forked children: exit 1 with the message
 * Expected values come from synth.h's formula, not from the writer.
 * (Not to be confused with models/test_masking.c: the masks of masked image modelling.) */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/rng.h"
#include "beit/store.h"
#include "harness.h"
#include "synth.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { N_TRAIN = 1000, N_TEST = 37, H = 40, W = 40, C = 3, K = 7 };
static const char *const NAMES[K] = {"bg", "a", "b", "c", "d", "e", "f"};
static int g_rank, g_size;

static uint8_t mask_px(int split, int64_t i, int p) { return (uint8_t)(synth_pixel(i + 7777 * (split + 1), p) % K); }

static void fill(int split, int64_t i, uint8_t *img, uint8_t *mask, int32_t *lab) {
    for (int p = 0; p < H * W * C; p++) img[p] = synth_pixel(i + 100000 * split, p);
    for (int p = 0; p < H * W; p++) mask[p] = mask_px(split, i, p);
    *lab = synth_label(i, K);
}

static beit_store_meta meta_of(int pixel_labels) {
    beit_store_meta m = {.source = "synthetic masks test",
                         .height = H,
                         .width = W,
                         .channels = C,
                         .num_classes = K,
                         .class_names = NAMES,
                         .stats_split = "train",
                         .pixel_labels = pixel_labels};
    return m;
}

static int make(const char *path) {
    beit_store_meta meta = meta_of(1);
    beit_store_writer *w = store_create(path, &meta);
    uint8_t *img = xmalloc((size_t)N_TRAIN * H * W * C), *mask = xmalloc((size_t)N_TRAIN * H * W);
    int32_t *lab = xmalloc(N_TRAIN * sizeof *lab);
    /* train: all images first, then the masks in uneven batches */
    store_begin_split(w, "train", N_TRAIN);
    for (int64_t i = 0; i < N_TRAIN; i++)
        fill(0, i, img + (size_t)i * H * W * C, mask + (size_t)i * H * W, lab + i);
    store_append(w, img, lab, N_TRAIN);
    for (int64_t i = 0; i < N_TRAIN;) {
        int64_t nb = i % 3 == 0 ? 1 : 333;
        if (nb > N_TRAIN - i) nb = N_TRAIN - i;
        store_append_masks(w, mask + (size_t)i * H * W, nb);
        i += nb;
    }
    store_end_split(w);
    /* test: one sample at a time, the mask before the image */
    store_begin_split(w, "test", N_TEST);
    for (int64_t i = 0; i < N_TEST; i++) {
        fill(1, i, img, mask, lab);
        store_append_masks(w, mask, 1);
        store_append(w, img, lab, 1);
    }
    store_end_split(w);
    store_commit(w);
    free(img);
    free(mask);
    free(lab);
    return 0;
}

static void check(int ok, const char *fmt, ...) BEIT_PRINTF(2, 3);
static void check(int ok, const char *fmt, ...) {
    int all = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (g_rank != 0) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t_ok(all, "np=%d: %s", g_size, buf);
}

static int masks_ok(int split, const int64_t *idx, int n, const uint8_t *m) {
    for (int i = 0; i < n; i++)
        for (int p = 0; p < H * W; p++)
            if (m[(size_t)i * H * W + p] != mask_px(split, idx[i], p)) return 0;
    return 1;
}
static int images_ok(int split, const int64_t *idx, int n, const uint8_t *img, const int32_t *lab) {
    for (int i = 0; i < n; i++) {
        if (lab[i] != synth_label(idx[i], K)) return 0;
        for (int p = 0; p < H * W * C; p++)
            if (img[(size_t)i * H * W * C + p] != synth_pixel(idx[i] + 100000 * split, p)) return 0;
    }
    return 1;
}

static int run_checks(const char *path) {
    beit_store *s = store_open(path, MPI_COMM_WORLD);
    check(s->mpio == 1 && store_has_masks(s) == 1 && store_num_classes(s) == K,
          "store opened with MPI-IO; store_has_masks = 1, %d classes", K);
    /* whole splits in one call each, in order */
    int64_t *all = xmalloc(N_TRAIN * sizeof *all);
    uint8_t *m = xmalloc((size_t)N_TRAIN * H * W);
    for (int64_t i = 0; i < N_TRAIN; i++) all[i] = i;
    store_read_masks(s, "train", all, N_TRAIN, m);
    check(masks_ok(0, all, N_TRAIN, m), "every train mask (%d, one call) equals the formula", N_TRAIN);
    store_read_masks(s, "test", all, N_TEST, m);
    check(masks_ok(1, all, N_TEST, m), "every test mask (%d, written one at a time) equals the formula", N_TEST);
    store_read_masks(s, "train", all, 0, m); /* n = 0: nothing to do */

    /* random per-rank reads, images and masks interleaved, with a budget below one image block
     * (218 images of 4800 bytes) so blocks of both kinds are evicted and re-read */
    store_set_cache_budget(s, 200 << 10);
    enum { R = 40, ROUNDS = 25 };
    int64_t idx[R];
    uint8_t *img = xmalloc((size_t)R * H * W * C), *mm = xmalloc((size_t)R * H * W);
    int32_t lab[R];
    int ok_m = 1, ok_i = 1, ok_budget = 1;
    rng_t g = rng_stream(99, RNG_TEST, (uint64_t)g_rank, 0);
    for (int round = 0; round < ROUNDS; round++) {
        int split = round % 4 == 3; /* mostly train */
        int64_t n = split ? N_TEST : N_TRAIN;
        for (int i = 0; i < R; i++) idx[i] = (int64_t)rng_below(&g, (uint64_t)n);
        idx[R - 1] = idx[0]; /* a repeat */
        const char *sp = split ? "test" : "train";
        store_read_masks(s, sp, idx, R, mm);
        ok_m &= masks_ok(split, idx, R, mm);
        store_read(s, sp, idx, R, img, lab);
        ok_i &= images_ok(split, idx, R, img, lab);
        ok_budget &= s->nloaded <= 1 || s->cache_bytes <= s->cache_budget;
    }
    check(ok_m, "%d rounds of %d random masks per rank (any order, a repeat) equal the formula", ROUNDS, R);
    check(ok_i, "images and labels read between them are right (cache shared by both kinds)");
    check(ok_budget, "the cache stays within its 200 KiB budget (or holds a single block)");
    free(img);
    free(mm);
    free(all);
    free(m);
    store_close(s);
    return 0;
}

static int read_split(const char *path, const char *split) {
    beit_store *s = store_open(path, MPI_COMM_NULL);
    int64_t n = store_split_count(s, split);
    int64_t *idx = xmalloc((size_t)(n + 1) * sizeof *idx);
    uint8_t *m = xmalloc((size_t)(n + 1) * H * W);
    for (int64_t i = 0; i < n; i++) idx[i] = n - 1 - i; /* reverse order */
    store_read_masks(s, split, idx, (int)n, m);
    printf("read %lld masks of %s\n", (long long)n, split);
    free(idx);
    free(m);
    store_close(s);
    return 0;
}

/* ---- writer misuse (forked children) ----------------------------------------------------------- */
static char g_dir[512];

/* misuse case `which` (what[] in run_errors); it ends the process before returning */
static void misuse(void *arg) {
    const int which = *(const int *)arg;
    uint8_t img[H * W * C] = {0}, mask[H * W] = {0};
    for (int k = 0; k < H * W * C; k++) img[k] = (uint8_t)(k * 37); /* not constant: std > 0 */
    int32_t lab = 0;
    char *p = xasprintf("%s/w%d.h5", g_dir, which);
    beit_store_meta meta = meta_of(which < 2); /* 2, 3: no pixel_labels */
    if (which == 3) { /* a store without masks, read as if it had some */
        beit_store_writer *w = store_create(p, &meta);
        store_begin_split(w, "train", 1);
        store_append(w, img, &lab, 1);
        store_end_split(w);
        store_commit(w);
        beit_store *s = store_open(p, MPI_COMM_NULL);
        int64_t i = 0;
        store_read_masks(s, "train", &i, 1, mask);
        return;
    }
    beit_store_writer *w = store_create(p, &meta);
    store_begin_split(w, "train", 2);
    store_append(w, img, &lab, 1);
    store_append(w, img, &lab, 1);
    if (which == 0) store_append_masks(w, mask, 1); /* one mask short */
    if (which == 1) {
        mask[17] = K; /* out of range */
        store_append_masks(w, mask, 1);
    }
    if (which == 2) store_append_masks(w, mask, 1); /* store without pixel_labels */
    store_end_split(w);
    store_commit(w);
}

/* misuse case `which` in a forked child: its exit code, the first line of its stderr in msg */
static int in_child(int which, char *msg, size_t n) {
    int code = t_in_child(misuse, &which, msg, n);
    char *nl = strchr(msg, '\n');
    if (nl) *nl = '\0';
    return code;
}

static int run_errors(const char *dir) {
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    static const char *what[4] = {"end_split with one mask short", "a mask value = num_classes",
                                  "store_append_masks without pixel_labels",
                                  "store_read_masks on a store without masks"};
    static const char *needle[4] = {"announced 2 samples, got 1 masks", "pixel label 7 outside [0, 7)",
                                    "the store has pixel_labels = 0", "has no masks (pixel_labels = 0)"};
    for (int i = 0; i < 4; i++) {
        char msg[2048];
        int code = in_child(i, msg, sizeof msg);
        t_ok(code == BEIT_EXIT_FAILURE && strstr(msg, needle[i]), "writer/reader misuse: %s -> exit %d, \"%s\"",
             what[i], code, msg);
    }
    /* a store written without pixel_labels has neither masks nor the attribute */
    char *p = xasprintf("%s/w3.h5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    int ok = f >= 0 && H5Aexists(f, "pixel_labels") == 0 && H5Lexists(f, "/train/masks", H5P_DEFAULT) == 0;
    if (f >= 0) H5Fclose(f);
    t_ok(ok, "a store written with pixel_labels = 0 has no pixel_labels attribute and no /train/masks");
    free(p);
    return t_done();
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "make")) return make(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "read")) return read_split(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "errors")) return run_errors(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "check")) {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
        beit_set_rank(g_rank, g_size);
        run_checks(argv[2]);
        int rc = g_rank == 0 ? t_done() : 0;
        MPI_Finalize();
        return rc;
    }
    fprintf(stderr, "usage: test_pixel_labels make|check|errors PATH | read PATH SPLIT\n");
    return 2;
}
