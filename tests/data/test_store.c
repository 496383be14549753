/* data: IDX parsing of damaged and good .gz files, the store writer/reader round trip
 * (values against the synthetic formula, mean/std against a direct computation), store_open's
 * validation errors (run in a forked child: exit code and message), image resampling against
 * hand-computed values, PNG write/decode round trip and the grid compositor.
 * Serial: no MPI_Init (store_open with MPI_COMM_NULL uses the sec2 driver). */
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/idx.h"
#include "beit/image.h"
#include "beit/store.h"
#include "harness.h"
#include "synth.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];

static char *tpath(const char *name) { return xasprintf("%s/%s", g_dir, name); }
static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- IDX ------------------------------------------------------------------------------------ */

static int idx_fails_with(const char *path, int images, const char *needle, const char *what) {
    idx_array a;
    char err[512] = "";
    int rc = idx_read_gz(path, images, &a, err, sizeof err);
    int ok = rc == -1 && strstr(err, needle) != NULL;
    if (!ok) t_diag("%s: rc %d, message: %s", what, rc, err);
    return t_ok(ok, "idx: %s is rejected with \"%s\" (got: %s)", what, needle, err);
}

static void test_idx(void) {
    char *img = tpath("img.gz"), *lab = tpath("lab.gz");
    const uint32_t N = 50, R = 28, C = 28;
    t_ok(synth_write_idx_pair(img, lab, N, R, C, N) == 0, "idx: wrote synthetic gz pair");
    idx_array a, b;
    char err[512] = "";
    int rc = idx_read_gz(img, 1, &a, err, sizeof err);
    int ok = rc == 0 && a.count == N && a.rows == (int)R && a.cols == (int)C;
    for (uint32_t i = 0; ok && i < N; i++)
        for (uint32_t p = 0; p < R * C; p++) ok &= a.data[(size_t)i * R * C + p] == synth_pixel(i, p);
    t_ok(ok, "idx: good image file reads back %u images of %ux%u with the right bytes (%s)", N, R, C, err);
    rc = idx_read_gz(lab, 0, &b, err, sizeof err);
    ok = rc == 0 && b.count == N && b.rows == 0;
    for (uint32_t i = 0; ok && i < N; i++) ok &= b.data[i] == synth_label(i, 10);
    t_ok(ok, "idx: good label file reads back %u labels", N);
    if (a.data) idx_free(&a);
    if (b.data) idx_free(&b);

    idx_fails_with(lab, 1, "bad magic number 0x00000801 (a label file) (expected 0x00000803",
                   "label file read as images");
    idx_fails_with(img, 0, "bad magic number 0x00000803", "image file read as labels");

    long size = synth_file_size(img);
    char *cp = tpath("x.gz");
    /* truncated in the middle of the data */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, size / 2);
    idx_fails_with(cp, 1, "truncated", "gz cut at half its size");
    /* truncated inside the header (gzip header + a few deflate bytes) */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, 14);
    idx_fails_with(cp, 1, "truncated (unexpected end of file) in the header: 0 of 16 bytes",
                   "gz cut inside the IDX header");
    /* truncated just before the 8-byte trailer: all data there, the end is missing */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, size - 8);
    idx_fails_with(cp, 1, "expected a clean end of the gzip stream", "gz without its CRC/length trailer");
    /* flipped bytes inside the deflate stream */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_flip(cp, size / 2, 16);
    idx_fails_with(cp, 1, "gzip stream corrupted (", "gz with 16 flipped bytes in the deflate stream");
    /* flipped CRC only: every data byte decodes, the check at the end must catch it */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_flip(cp, size - 8, 2);
    idx_fails_with(cp, 1, "corrupted (incorrect data check)", "gz with a damaged CRC-32");
    /* extra data after the declared count */
    uint8_t d[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
    uint32_t dims[1] = {10};
    synth_write_idx_gz(cp, IDX_MAGIC_LABELS, 1, dims, d, 10, 7);
    idx_fails_with(cp, 0, "7 bytes of extra data after the 10 labels", "label file with 7 extra bytes");
    /* not gzip at all */
    FILE *f = fopen(cp, "wb");
    uint8_t raw[18] = {0, 0, 8, 1, 0, 0, 0, 10};
    fwrite(raw, 1, sizeof raw, f);
    fclose(f);
    idx_fails_with(cp, 0, "not a gzip file", "uncompressed IDX bytes");
    char *missing = tpath("missing.gz");
    idx_fails_with(missing, 0, "cannot open", "missing file");
    free(missing);
    free(cp);
    free(img);
    free(lab);
}

/* ---- store round trip ------------------------------------------------------------------------ */

enum { SH = 64, SW = 64, SC = 3, NTRAIN = 200, NTEST = 37, NCLS = 5 };
static const char *const CLS[NCLS] = {"alpha", "beta", "gamma", "delta", "epsilon"};

/* the test split's samples are offset so they differ from train's */
static int64_t synth_id(const char *split, int64_t i) { return strcmp(split, "test") == 0 ? 100000 + i : i; }

static void write_split(beit_store_writer *w, const char *split, int64_t n, int batch) {
    size_t ib = (size_t)SH * SW * SC;
    uint8_t *img = xmalloc((size_t)batch * ib);
    int32_t *lab = xmalloc((size_t)batch * sizeof *lab);
    store_begin_split(w, split, n);
    for (int64_t s = 0; s < n; s += batch) {
        int64_t m = n - s < batch ? n - s : batch;
        for (int64_t i = 0; i < m; i++) {
            int64_t id = synth_id(split, s + i);
            for (size_t p = 0; p < ib; p++) img[(size_t)i * ib + p] = synth_pixel(id, (int64_t)p);
            lab[i] = synth_label(id, NCLS);
        }
        store_append(w, img, lab, m);
    }
    store_end_split(w);
    free(img);
    free(lab);
}

static char *make_store(const char *name) {
    char *path = tpath(name);
    beit_store_meta meta = {.source = "synthetic test",
                            .height = SH,
                            .width = SW,
                            .channels = SC,
                            .num_classes = NCLS,
                            .class_names = CLS,
                            .stats_split = "train"};
    beit_store_writer *w = store_create(path, &meta);
    char *tmp = beit_tmp_path(path);
    int tmp_seen = exists(tmp), final_early = exists(path);
    write_split(w, "train", NTRAIN, 33); /* 33: appends straddle chunk boundaries */
    write_split(w, "test", NTEST, 10);
    store_commit(w);
    t_ok(tmp_seen && !final_early && exists(path) && !exists(tmp), "writer: works in %s and only the commit creates %s",
         tmp, name);
    free(tmp);
    return path;
}

static int check_samples(beit_store *s, const char *split, const int64_t *idx, int n, const uint8_t *img,
                         const int32_t *lab) {
    size_t ib = store_image_bytes(s);
    for (int i = 0; i < n; i++) {
        int64_t id = synth_id(split, idx[i]);
        if (lab && lab[i] != synth_label(id, NCLS)) return 0;
        if (img)
            for (size_t p = 0; p < ib; p++)
                if (img[(size_t)i * ib + p] != synth_pixel(id, (int64_t)p)) return 0;
    }
    return 1;
}

static void test_store_roundtrip(void) {
    char *path = make_store("synth.h5");
    beit_store *s = store_open(path, MPI_COMM_NULL);
    t_ok(store_height(s) == SH && store_width(s) == SW && store_channels(s) == SC && store_num_classes(s) == NCLS,
         "store: dims %dx%dx%d, %d classes", store_height(s), store_width(s), store_channels(s), store_num_classes(s));
    t_ok(store_split_count(s, "train") == NTRAIN && store_split_count(s, "test") == NTEST &&
             store_has_split(s, "train") && !store_has_split(s, "val"),
         "store: split counts train %lld test %lld", (long long)store_split_count(s, "train"),
         (long long)store_split_count(s, "test"));
    int names_ok = 1;
    for (int k = 0; k < NCLS; k++) names_ok &= strcmp(store_class_name(s, k), CLS[k]) == 0;
    t_ok(names_ok, "store: class names read back");
    const char *u = store_uuid(s);
    t_ok(strlen(u) == 36 && u[8] == '-' && u[14] == '4', "store: uuid is a v4 UUID (%s)", u);

    /* mean/std: direct double computation over the train pixels, from the formula */
    double sum[SC] = {0}, sq[SC] = {0};
    size_t ib = (size_t)SH * SW * SC;
    for (int64_t i = 0; i < NTRAIN; i++)
        for (size_t p = 0; p < ib; p++) {
            double v = synth_pixel(i, (int64_t)p) / 255.0;
            sum[p % SC] += v;
            sq[p % SC] += v * v;
        }
    int stat_ok = 1;
    for (int k = 0; k < SC; k++) {
        double n = (double)NTRAIN * SH * SW, m = sum[k] / n, sd = sqrt(sq[k] / n - m * m);
        stat_ok &= fabs(store_mean(s)[k] - m) < 1e-9 && fabs(store_std(s)[k] - sd) < 1e-9;
        t_diag("channel %d: mean %.9f (direct %.9f), std %.9f (direct %.9f)", k, store_mean(s)[k], m, store_std(s)[k],
               sd);
    }
    t_ok(stat_ok, "store: per-channel mean/std of train match a direct computation (abs 1e-9)");

    /* everything, in order (straight into the caller's buffer) */
    uint8_t *img = xmalloc((size_t)NTRAIN * ib);
    int32_t *lab = xmalloc((size_t)NTRAIN * sizeof *lab);
    int64_t *idx = xmalloc((size_t)NTRAIN * sizeof *idx);
    for (int i = 0; i < NTRAIN; i++) idx[i] = i;
    store_read(s, "train", idx, NTRAIN, img, lab);
    t_ok(check_samples(s, "train", idx, NTRAIN, img, lab), "store_read: all %d train samples in order", NTRAIN);
    /* unsorted, with repeats and across chunk boundaries */
    int64_t r[12] = {199, 0, 84, 85, 86, 3, 3, 170, 199, 1, 2, 120};
    memset(img, 0, 12 * ib);
    store_read(s, "train", r, 12, img, lab);
    t_ok(check_samples(s, "train", r, 12, img, lab), "store_read: unsorted indices with repeats");
    /* a budget of about one block: every block is evicted and re-read as needed */
    store_set_cache_budget(s, 90 * ib);
    int64_t r2[10] = {199, 0, 100, 5, 199, 86, 170, 1, 84, 150};
    memset(img, 0, 10 * ib);
    store_read(s, "train", r2, 10, img, lab);
    int ok2 = check_samples(s, "train", r2, 10, img, lab) && s->cache_bytes <= 90 * ib;
    store_read(s, "train", r, 12, img, lab);
    ok2 &= check_samples(s, "train", r, 12, img, lab) && s->cache_bytes <= 90 * ib && s->nloaded == 1;
    t_ok(ok2, "store_read: with a one-block cache budget (blocks evicted and re-read)");
    store_set_cache_budget(s, STORE_CACHE_DEFAULT);
    int64_t t[3] = {36, 0, 17};
    store_read(s, "test", t, 3, img, lab);
    t_ok(check_samples(s, "test", t, 3, img, lab), "store_read: test split samples");
    store_read(s, "test", t, 3, NULL, lab);
    t_ok(check_samples(s, "test", t, 3, NULL, lab), "store_read: labels only (images NULL)");
    int32_t *all = xmalloc(NTEST * sizeof *all);
    store_read_labels(s, "test", all);
    int lab_ok = 1;
    for (int i = 0; i < NTEST; i++) lab_ok &= all[i] == synth_label(synth_id("test", i), NCLS);
    t_ok(lab_ok, "store_read_labels: all test labels");
    free(all);
    free(img);
    free(lab);
    free(idx);
    store_close(s);

    /* the file as written: chunking and filters as documented */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/train/images", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t cd[4] = {0};
    H5Pget_chunk(dcpl, 4, cd);
    int nf = H5Pget_nfilters(dcpl);
    unsigned flags, cdv[4];
    size_t ncd = 4;
    H5Z_filter_t f0 = H5Pget_filter2(dcpl, 0, &flags, &ncd, cdv, 0, NULL, NULL);
    ncd = 4;
    H5Z_filter_t f1 = H5Pget_filter2(dcpl, 1, &flags, &ncd, cdv, 0, NULL, NULL);
    t_ok(cd[0] == (1u << 20) / ib && cd[1] == SH && nf == 2 && f0 == H5Z_FILTER_SHUFFLE && f1 == H5Z_FILTER_DEFLATE &&
             cdv[0] == 4,
         "layout: /train/images chunks of %llu images (<= 1 MiB), shuffle + deflate(4)", (unsigned long long)cd[0]);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    free(path);
}

/* ---- store_open errors (forked child) ----------------------------------------------------------- */

/* Run store_open(path) (and, with read_all, read every train sample) in a child; returns its
 * exit code and its stderr in msg. */
static int open_in_child(const char *path, char *msg, size_t n, int read_all) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        beit_h5_quiet();
        beit_store *s = store_open(path, MPI_COMM_NULL);
        if (read_all) {
            int64_t cnt = store_split_count(s, "train");
            int32_t lab;
            for (int64_t i = 0; i < cnt; i++) store_read(s, "train", &i, 1, NULL, &lab);
        }
        store_close(s);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd[0], msg + got, n - 1 - got)) > 0) got += (size_t)r;
    msg[got] = '\0';
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void expect_error(const char *path, const char *needle, const char *what, int read_all) {
    char msg[2048];
    int code = open_in_child(path, msg, sizeof msg, read_all);
    char *nl = strchr(msg, '\n');
    if (nl) *nl = '\0';
    t_ok(code == BEIT_EXIT_DATA && strstr(msg, path) && strstr(msg, needle), "store_%s: %s -> exit %d, \"%s\"",
         read_all ? "read" : "open", what, code, msg);
}
static void expect_open_error(const char *path, const char *needle, const char *what) {
    expect_error(path, needle, what, 0);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

static void test_open_errors(void) {
    char *good = tpath("synth.h5");
    char *p = tpath("nothere.h5");
    expect_open_error(p, "No such file", "missing file");
    free(p);
    p = tpath("text.h5");
    FILE *f = fopen(p, "w");
    fprintf(f, "hello\n");
    fclose(f);
    expect_open_error(p, "not an HDF5 file", "a text file");
    free(p);
    p = tpath("plain.h5");
    hid_t h = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    expect_open_error(p, "no 'format' attribute", "an HDF5 file without the store attributes");
    free(p);

    /* surgery on copies of the good store */
    struct {
        const char *attr;
        int value;
        const char *needle, *what;
    } cases[] = {
        {"format_version", 2, "format_version 2 is not supported (expected 1)", "format_version 2"},
        {"height", 32, "/images has shape [", "height attribute 32"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        p = tpath("bad.h5");
        copy_file(good, p);
        h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t a = H5Aopen(h, cases[c].attr, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &cases[c].value);
        H5Aclose(a);
        H5Fclose(h);
        expect_open_error(p, cases[c].needle, cases[c].what);
        free(p);
    }
    p = tpath("bad.h5");
    copy_file(good, p);
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(h, "uuid");
    H5Ldelete(h, "/test/labels", H5P_DEFAULT);
    H5Fclose(h);
    expect_open_error(p, "'uuid'", "uuid attribute deleted");
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    hid_t a = H5Acreate2(h, "uuid", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "abcd");
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
    H5Fclose(h);
    expect_open_error(p, "dataset /test/labels is missing", "test split without labels");
    free(p);
    /* a label outside 0..4 is found when its block is read */
    p = tpath("bad.h5");
    copy_file(good, p);
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = H5Dopen2(h, "/train/labels", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t at = 123, one = 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int v = 7;
    H5Dwrite(d, H5T_NATIVE_INT, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(h);
    expect_error(p, "dataset /train/labels: label 7 at index 123 (expected 0..4)", "label 7 of 5 classes", 1);
    free(p);
    free(good);
}

static void test_writer_abort(void) {
    char *path = tpath("aborted.h5");
    beit_store_meta meta = {.source = "x",
                            .height = 2,
                            .width = 2,
                            .channels = 1,
                            .num_classes = 2,
                            .class_names = CLS,
                            .stats_split = "train"};
    beit_store_writer *w = store_create(path, &meta);
    store_begin_split(w, "train", 5);
    uint8_t img[8] = {0};
    int32_t lab[2] = {0, 1};
    store_append(w, img, lab, 2);
    char *tmp = beit_tmp_path(path);
    int had_tmp = exists(tmp);
    store_abort(w);
    t_ok(had_tmp && !exists(tmp) && !exists(path), "writer: abort removes the temporary file, no final file");
    free(tmp);
    free(path);
}

static void test_many_classes(void) {
    /* more than 256 classes: labels are stored as int32 */
    enum { NK = 300, NS = 40 };
    char **names = xmalloc(NK * sizeof *names);
    for (int k = 0; k < NK; k++) names[k] = xasprintf("class%03d", k);
    char *path = tpath("many.h5");
    beit_store_meta meta = {.source = "x",
                            .height = 2,
                            .width = 3,
                            .channels = 1,
                            .num_classes = NK,
                            .class_names = (const char *const *)names,
                            .stats_split = "train"};
    beit_store_writer *w = store_create(path, &meta);
    store_begin_split(w, "train", NS);
    uint8_t img[NS * 6];
    int32_t lab[NS];
    for (int i = 0; i < NS; i++) {
        lab[i] = (i * 37) % NK;
        for (int p = 0; p < 6; p++) img[i * 6 + p] = (uint8_t)(i + p);
    }
    store_append(w, img, lab, NS);
    store_end_split(w);
    store_commit(w);
    beit_store *s = store_open(path, MPI_COMM_NULL);
    int32_t got[NS];
    int64_t idx[NS];
    for (int i = 0; i < NS; i++) idx[i] = NS - 1 - i;
    store_read(s, "train", idx, NS, NULL, got);
    int ok = store_num_classes(s) == NK && strcmp(store_class_name(s, 299), "class299") == 0;
    for (int i = 0; i < NS; i++) ok &= got[i] == lab[NS - 1 - i];
    hid_t t = H5Dget_type(s->splits[0].labels);
    ok &= H5Tget_size(t) == 4 && H5Tget_sign(t) == H5T_SGN_2;
    H5Tclose(t);
    t_ok(ok, "store: %d classes -> int32 labels, read back (labels up to %d)", NK, NK - 1);
    store_close(s);
    for (int k = 0; k < NK; k++) free(names[k]);
    free(names);
    free(path);
}

/* ---- images ----------------------------------------------------------------------------------- */

static void test_resample(void) {
    /* 1 x 2 -> 1 x 4 (upscale, triangle radius 1): centres 0.25, 0.75, 1.25, 1.75
     * weights on pixels (0.5, 1.5): (1,0) (0.75,0.25) (0.25,0.75) (0,1) -> 0, 63.75, 191.25, 255 */
    uint8_t src[2] = {0, 255}, dst[4];
    image_resample(src, 1, 2, 1, 0, 0, 2, 1, dst, 1, 4);
    t_ok(dst[0] == 0 && dst[1] == 64 && dst[2] == 191 && dst[3] == 255,
         "resample: 2 -> 4 upscale by hand (%d %d %d %d)", dst[0], dst[1], dst[2], dst[3]);
    /* 1 x 4 -> 1 x 2 (shrink by 2: triangle radius 2): output 0 centre 1.0, pixel centres
     * 0.5 1.5 2.5 -> weights .75 .75 .25 (normalised /1.75); output 1 centre 3.0: pixels
     * 1.5 2.5 3.5 -> .25 .75 .75 */
    uint8_t s4[4] = {10, 20, 100, 200}, d2[2];
    image_resample(s4, 1, 4, 1, 0, 0, 4, 1, d2, 1, 2);
    double e0 = (0.75 * 10 + 0.75 * 20 + 0.25 * 100) / 1.75, e1 = (0.25 * 20 + 0.75 * 100 + 0.75 * 200) / 1.75;
    t_ok(d2[0] == (uint8_t)lrint(e0) && d2[1] == (uint8_t)lrint(e1),
         "resample: 4 -> 2 antialiased by hand (%d %d, want %.2f %.2f)", d2[0], d2[1], e0, e1);
    /* identity size is exact */
    uint8_t id_src[12], id_dst[12];
    for (int i = 0; i < 12; i++) id_src[i] = (uint8_t)(i * 21);
    image_resample(id_src, 2, 2, 3, 0, 0, 2, 2, id_dst, 2, 2);
    t_ok(memcmp(id_src, id_dst, 12) == 0, "resample: same size is the identity");
    /* center crop: 4 wide x 2 high, columns red | green green | blue -> 2x2 all green */
    uint8_t wide[2 * 4 * 3], sq[2 * 2 * 3];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            uint8_t *p = wide + (y * 4 + x) * 3;
            p[0] = x == 0 ? 255 : 0;
            p[1] = (x == 1 || x == 2) ? 255 : 0;
            p[2] = x == 3 ? 255 : 0;
        }
    image_center_crop_resize(wide, 2, 4, 3, sq, 2);
    int green = 1;
    for (int i = 0; i < 4; i++) green &= sq[i * 3] == 0 && sq[i * 3 + 1] == 255 && sq[i * 3 + 2] == 0;
    t_ok(green, "center crop: the middle square of a red|green|blue strip is all green");
}

static void test_png(void) {
    enum { H = 5, W = 7 };
    uint8_t rgb[H * W * 3], gray[H * W];
    for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(i * 53 + 1);
    char *pr = tpath("rgb.png"), *pg = tpath("gray.png");
    char err[256] = "";
    t_ok(png_write(pr, rgb, H, W, 3, err, sizeof err) == 0 && png_write(pg, gray, H, W, 1, err, sizeof err) == 0,
         "png_write: RGB and gray files written (%s)", err);
    beit_image a, b, c;
    int ha = 0, wa = 0, hb = 0, wb = 0, ga = -1, gb = -1;
    int pa = image_probe(pr, &ha, &wa, &ga, err, sizeof err), pb = image_probe(pg, &hb, &wb, &gb, err, sizeof err);
    t_ok(pa == 0 && pb == 0 && ha == H && wa == W && hb == H && wb == W && ga == 0 && gb == 1,
         "image_probe: sizes %dx%d and %dx%d, RGB file not gray, gray file gray", ha, wa, hb, wb);
    int ok = image_load(pr, 3, &a, err, sizeof err) == 0 && a.h == H && a.w == W && a.c == 3 &&
             memcmp(a.pix, rgb, sizeof rgb) == 0;
    t_ok(ok, "png: RGB round trip is exact");
    ok = image_load(pg, 3, &b, err, sizeof err) == 0 && b.c == 3;
    for (int i = 0; ok && i < H * W; i++)
        ok &= b.pix[i * 3] == gray[i] && b.pix[i * 3 + 1] == gray[i] && b.pix[i * 3 + 2] == gray[i];
    t_ok(ok, "png: gray file decoded to RGB replicates the sample");
    ok = image_load(pg, 1, &c, err, sizeof err) == 0 && c.c == 1 && memcmp(c.pix, gray, sizeof gray) == 0;
    t_ok(ok, "png: gray round trip is exact");
    image_free(&a);
    image_free(&b);
    image_free(&c);
    char *bad = tpath("no/such/dir/x.png");
    t_ok(png_write(bad, gray, H, W, 1, err, sizeof err) == -1 && !exists(bad), "png_write: unwritable path fails (%s)",
         err);
    free(bad);
    /* a truncated PNG is reported */
    synth_truncate(pr, synth_file_size(pr) / 2);
    t_ok(image_load(pr, 3, &a, err, sizeof err) == -1 && strstr(err, "PNG"), "png: truncated file rejected (%s)", err);
    free(pr);
    free(pg);

    /* grid: 5 tiles of 2x3x1 in 3 columns with gap 1 -> 2 rows: 2*2+3 = 7 high, 3*3+4 = 13 wide */
    uint8_t tiles[5 * 2 * 3];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 6; i++) tiles[t * 6 + i] = (uint8_t)(10 * (t + 1) + i);
    int gh, gw;
    image_grid_size(5, 3, 2, 3, 1, &gh, &gw);
    uint8_t grid[7 * 13];
    image_grid(grid, tiles, 5, 3, 2, 3, 1, 1, 255);
    /* tile 4 (row 1, col 1) starts at y = 1 + 1*(2+1) = 4, x = 1 + 1*(3+1) = 5 */
    ok = gh == 7 && gw == 13 && grid[0] == 255 && grid[1 * 13 + 1] == 10 && grid[4 * 13 + 5] == 50 &&
         grid[5 * 13 + 7] == 55 && grid[4 * 13 + 9] == 255 && grid[4 * 13 + 11] == 255 && grid[6 * 13 + 5] == 255;
    t_ok(ok, "grid: 5 tiles in 3 columns, gap 1: %dx%d, tiles placed, gaps and empty slot background", gh, gw);
}

int main(void) {
    beit_h5_quiet();
    snprintf(g_dir, sizeof g_dir, "/tmp/beit_test_store.XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_idx();
    test_store_roundtrip();
    test_open_errors();
    test_writer_abort();
    test_many_classes();
    test_resample();
    test_png();
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0) t_diag("could not remove %s", g_dir);
    free(cmd);
    return t_done();
}
