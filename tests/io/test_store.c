/* io/store: the dataset store writer/reader round trip (values against the synthetic formula,
 * mean/std against a direct computation, the cache budget, chunking and filters as written),
 * store_open's validation errors (run in a forked child: exit code and message), the writer's
 * abort and int32 labels for more than 256 classes.
 * Serial: no MPI_Init (store_open with MPI_COMM_NULL uses the sec2 driver). */
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/store.h"
#include "harness.h"
#include "synth.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
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
    char *path = t_path(name);
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
    unsigned level = cdv[0];
    ncd = 4;
    H5Z_filter_t f2 = H5Pget_filter2(dcpl, 2, &flags, &ncd, cdv, 0, NULL, NULL);
    t_ok(cd[0] == (1u << 20) / ib && cd[1] == SH && nf == 3 && f0 == H5Z_FILTER_SHUFFLE && f1 == H5Z_FILTER_DEFLATE &&
             level == 4 && f2 == H5Z_FILTER_FLETCHER32,
         "layout: /train/images chunks of %llu images (<= 1 MiB), shuffle + deflate(4) + fletcher32",
         (unsigned long long)cd[0]);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);
    free(path);
}

/* ---- store_open errors (forked child) ----------------------------------------------------------- */

/* Run store_open(path) (and, with read_all, read every train sample) in a child; returns its
 * exit code and its stderr in msg. */
typedef struct {
    const char *path;
    int read_all;
} open_call;

static void open_store(void *arg) {
    const open_call *c = arg;
    beit_store *s = store_open(c->path, MPI_COMM_NULL);
    if (c->read_all) {
        int64_t cnt = store_split_count(s, "train");
        int32_t lab;
        for (int64_t i = 0; i < cnt; i++) store_read(s, "train", &i, 1, NULL, &lab);
    }
    store_close(s);
}

static int open_in_child(const char *path, char *msg, size_t n, int read_all) {
    open_call c = {path, read_all};
    return t_in_child(open_store, &c, msg, n);
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
    char *good = t_path("synth.h5");
    char *p = t_path("nothere.h5");
    expect_open_error(p, "No such file", "missing file");
    free(p);
    p = t_path("text.h5");
    FILE *f = fopen(p, "w");
    fprintf(f, "hello\n");
    fclose(f);
    expect_open_error(p, "not an HDF5 file", "a text file");
    free(p);
    p = t_path("plain.h5");
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
        p = t_path("bad.h5");
        copy_file(good, p);
        h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t a = H5Aopen(h, cases[c].attr, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &cases[c].value);
        H5Aclose(a);
        H5Fclose(h);
        expect_open_error(p, cases[c].needle, cases[c].what);
        free(p);
    }
    /* statistics every input is normalised with: a zero or NaN std, a NaN mean */
    struct {
        const char *attr;
        double value;
        const char *needle, *what;
    } stats[] = {
        {"std", 0.0, "attribute 'std'[0] is 0 (expected a finite pixel std in (0, 1])", "std = 0"},
        {"std", NAN, "attribute 'std'[0] is nan (expected a finite pixel std in (0, 1])", "std = NaN"},
        {"mean", NAN, "attribute 'mean'[0] is nan (expected a finite pixel mean in [0, 1])", "mean = NaN"},
        {"mean", -INFINITY, "attribute 'mean'[0] is -inf", "mean = -Inf"},
    };
    for (size_t c = 0; c < sizeof stats / sizeof stats[0]; c++) {
        p = t_path("bad.h5");
        copy_file(good, p);
        h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        hid_t a = H5Aopen(h, stats[c].attr, H5P_DEFAULT);
        double vals[STORE_MAX_CHANNELS];
        H5Aread(a, H5T_NATIVE_DOUBLE, vals); /* float64[channels]: change channel 0 only */
        vals[0] = stats[c].value;
        H5Awrite(a, H5T_NATIVE_DOUBLE, vals);
        H5Aclose(a);
        H5Fclose(h);
        expect_open_error(p, stats[c].needle, stats[c].what);
        free(p);
    }
    p = t_path("bad.h5");
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
    p = t_path("bad.h5");
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
    char *path = t_path("aborted.h5");
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
    char *path = t_path("many.h5");
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

int main(void) {
    beit_h5_quiet();
    t_tmpdir("beit_test_store");
    test_store_roundtrip();
    test_open_errors();
    test_writer_abort();
    test_many_classes();
    t_tmpdir_remove();
    return t_done();
}
