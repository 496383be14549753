/* io/checkpoint: checkpoint files (checkpoint.h) written by ckpt_write on 1 rank and read back:
 *   - every tensor bit for bit (incl. -0, a subnormal and FLT_MAX), the AdamW state, step,
 *     kind, seed, nranks, the stored config text, params_checksum;
 *   - ckpt_read_param / ckpt_param_dim (present and absent tensors, another table's name);
 *   - the documented errors, in forked children (exit code and message): a missing tensor and
 *     a shape that differs (BEIT_EXIT_MISMATCH), an optimizer state of another layout, a
 *     weights-only file asked for its state, a missing file, a file that is not a checkpoint,
 *     an incomplete one (BEIT_EXIT_CHECKPOINT);
 *   - checksums (format 3): one flipped bit in a parameter, in exp_avg or in exp_avg_sq is
 *     refused naming the tensor (BEIT_EXIT_CHECKPOINT); a format 2 file loads with a warning;
 *   - run directories: ckpt_is_complete, ckpt_find_latest (what --resume auto takes) skips
 *     incomplete and damaged files and never takes a temporary one; ckpt_rotate.
 * The writes run in a forked child that initialises MPI (a singleton: no mpirun); the parent
 * never does, so the error children end through beit_exit without MPI. */
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/h5attr.h"
#include "beit/log.h"
#include "beit/params.h"
#include "harness.h"

#include <float.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const KIND = "beit-pretrain";
static const uint64_t SEED = 2147483647; /* the largest seed a job can give (config: int) */
static const char *const CONFIG = "model:\n  arch: beit\n  depth: 2\nnote: \"caf\xc3\xa9 \\\"quoted\\\"\"\n";

enum { T_GOOD, T_EXTRA, T_SHAPE, T_ORDER };

/* The test table (variant T_GOOD), or one that differs from it: an extra tensor, a tensor of
 * another shape, or the same tensors in another order. Parameters filled from a seed. */
static void make_table(param_table *pt, int variant) {
    params_init(pt);
    const int64_t hw[2] = {3, 5}, hb[1] = {3}, bw[2] = {6, 4}, bw_t[2] = {4, 6}, pos[4] = {1, 2, 2, 2}, ex[1] = {7};
    if (variant == T_ORDER) params_add(pt, "head.bias", 1, hb, 0, -1);
    params_add(pt, "head.weight", 2, hw, 1, 3);
    if (variant != T_ORDER) params_add(pt, "head.bias", 1, hb, 0, -1);
    params_add(pt, "blocks.0.w", 2, variant == T_SHAPE ? bw_t : bw, 1, 1);
    params_add(pt, "pos_embed", 4, pos, 0, 0);
    if (variant == T_EXTRA) params_add(pt, "extra.weight", 1, ex, 1, 0);
    params_alloc(pt);
    t_fill_normal(pt->data, pt->total, 0.5f, 77);
    pt->data[0] = -0.0f;
    pt->data[1] = 1e-40f; /* subnormal */
    pt->data[2] = FLT_MAX;
}

static void make_optim(size_t n, float **m, float **v) {
    *m = xalloc_floats(n);
    *v = xalloc_floats(n);
    t_fill_normal(*m, n, 0.01f, 78);
    t_fill_uniform(*v, n, 1e-4f, 79);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- forked children ----------------------------------------------------------------------- */

/* fn(arg) in a forked child (t_in_child): its exit code, its stderr in msg */
typedef struct {
    void (*fn)(const char *);
    const char *arg;
} path_call;
static void call_with_path(void *c) { ((path_call *)c)->fn(((path_call *)c)->arg); }
static int in_child(void (*fn)(const char *), const char *arg, char *msg, size_t n) {
    path_call c = {fn, arg};
    return t_in_child(call_with_path, &c, msg, n);
}

/* The writes: <dir>/ckpt-00000010.h5 with the optimizer state and ckpt-00000005.h5 weights
 * only, under MPI on 1 rank. */
static void child_write(const char *dir) {
    int argc = 0;
    char **argv = NULL;
    MPI_Init(&argc, &argv);
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    beit_set_rank(d.rank, d.size);
    param_table pt;
    make_table(&pt, T_GOOD);
    float *m, *v;
    make_optim(pt.total, &m, &v);
    ckpt_meta meta = {KIND, 10, SEED, CONFIG, NULL};
    char *p = xasprintf("%s/ckpt-00000010.h5", dir);
    ckpt_write(p, &pt, m, v, &meta, &d);
    free(p);
    meta.step = 5;
    p = xasprintf("%s/ckpt-00000005.h5", dir);
    ckpt_write(p, &pt, NULL, NULL, &meta, &d);
    free(p);
    free(m);
    free(v);
    params_free(&pt);
    MPI_Finalize();
}

static void child_load_variant(const char *path, int variant) {
    param_table pt;
    make_table(&pt, variant);
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_load_params(&r, &pt);
    ckpt_close(&r);
}
static void child_load_good(const char *path) { child_load_variant(path, T_GOOD); }
static void child_load_extra(const char *path) { child_load_variant(path, T_EXTRA); }
static void child_load_shape(const char *path) { child_load_variant(path, T_SHAPE); }
static void child_open(const char *path) {
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_close(&r);
}
static void child_optim_order(const char *path) {
    param_table pt;
    make_table(&pt, T_ORDER);
    float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_load_optim(&r, &pt, m, v);
}
static void child_optim_good(const char *path) {
    param_table pt;
    make_table(&pt, T_GOOD);
    float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_load_optim(&r, &pt, m, v);
}
static void child_read_param(const char *path) {
    param_table pt;
    make_table(&pt, T_GOOD);
    ckpt_reader r;
    ckpt_open(&r, path);
    int i = params_find(&pt, "blocks.0.w");
    ckpt_read_param(&r, "blocks.0.w", &pt.t[i], params_data(&pt, i));
}
/* parameters and the whole optimizer state: exits 0 when everything loads */
static void child_load_all(const char *path) {
    param_table pt;
    make_table(&pt, T_GOOD);
    float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_load_params(&r, &pt);
    ckpt_load_optim(&r, &pt, m, v);
    ckpt_close(&r);
}
/* the floats [0, 15) of the state (head.weight whole) and [20, 22) (part of blocks.0.w) */
static void child_optim_part(const char *path) {
    param_table pt;
    make_table(&pt, T_GOOD);
    dist_range rg[2] = {{0, 15, 0}, {20, 22, 15}};
    float m[17], v[17];
    ckpt_optim_part o = {m, v, 2, rg};
    ckpt_reader r;
    ckpt_open(&r, path);
    ckpt_load_optim_part(&r, &pt, &o, MPI_COMM_NULL);
}
static void child_find_latest(const char *dir) {
    char *p = ckpt_find_latest(dir);
    fprintf(stderr, "latest: %s\n", p ? p : "none");
    free(p);
}
static void child_rotate(const char *dir) { ckpt_rotate(dir, 1); }

/* fn(arg) in a child ends with exit code `code` and a message containing every needle */
static void expect_exit(void (*fn)(const char *), const char *arg, int code, const char *n1, const char *n2,
                        const char *what) {
    char msg[4096];
    int got = in_child(fn, arg, msg, sizeof msg);
    char *nl = strchr(msg, '\n');
    if (nl) *nl = '\0';
    t_ok(got == code && strstr(msg, n1) && (!n2 || strstr(msg, n2)), "%s -> exit %d (want %d), \"%s\"", what, got,
         code, msg);
}

/* ---- the file as written, read back -------------------------------------------------------- */

static void test_round_trip(const char *dir) {
    char *p10 = xasprintf("%s/ckpt-00000010.h5", dir), *p5 = xasprintf("%s/ckpt-00000005.h5", dir);
    param_table ref;
    make_table(&ref, T_GOOD);
    float *m_ref, *v_ref;
    make_optim(ref.total, &m_ref, &v_ref);

    ckpt_reader r;
    ckpt_open(&r, p10);
    t_ok(strcmp(r.kind, KIND) == 0 && r.step == 10 && r.seed == SEED && r.nranks == 1 && r.has_optim,
         "ckpt_open: kind '%s', step %lld, seed %llx, nranks %d, optimizer state %d", r.kind, (long long)r.step,
         (unsigned long long)r.seed, r.nranks, r.has_optim);
    t_ok(strcmp(r.config_yaml, CONFIG) == 0, "ckpt_open: the stored config text is the text written (%zu bytes)",
         strlen(CONFIG));

    param_table pt;
    make_table(&pt, T_GOOD);
    memset(pt.data, 0, pt.total * sizeof(float));
    ckpt_load_params(&r, &pt);
    t_ok(memcmp(pt.data, ref.data, ref.total * sizeof(float)) == 0,
         "ckpt_load_params: every tensor bit for bit (%d tensors, %zu floats, -0, a subnormal, FLT_MAX)", pt.n,
         pt.total);
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)params_checksum(&ref));
    char *sum = h5a_get_str((hid_t)r.file, "params_checksum");
    t_ok(sum && strcmp(sum, want) == 0 && params_checksum(&pt) == params_checksum(&ref),
         "params_checksum attribute %s = params_checksum of the table written and of the table read", sum);
    free(sum);

    float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
    ckpt_load_optim(&r, &pt, m, v);
    t_ok(memcmp(m, m_ref, pt.total * sizeof(float)) == 0 && memcmp(v, v_ref, pt.total * sizeof(float)) == 0,
         "ckpt_load_optim: exp_avg and exp_avg_sq bit for bit");
    /* a shard: two ranges of the flat state into a compact array */
    dist_range rg[2] = {{2, 9, 0}, {20, 31, 7}};
    float ms[18], vs[18];
    ckpt_optim_part part = {ms, vs, 2, rg};
    ckpt_load_optim_part(&r, &pt, &part, MPI_COMM_NULL);
    t_ok(memcmp(ms, m_ref + 2, 7 * sizeof(float)) == 0 && memcmp(ms + 7, m_ref + 20, 11 * sizeof(float)) == 0 &&
             memcmp(vs, v_ref + 2, 7 * sizeof(float)) == 0 && memcmp(vs + 7, v_ref + 20, 11 * sizeof(float)) == 0,
         "ckpt_load_optim_part: the ranges [2,9) and [20,31) of the flat state");

    /* one tensor by name, into a table whose tensor has another name */
    int bi = params_find(&ref, "blocks.0.w");
    param_info other = ref.t[bi];
    snprintf(other.name, sizeof other.name, "blocks.1.w");
    float w[24];
    int got = ckpt_read_param(&r, "blocks.0.w", &other, w);
    t_ok(got == 1 && memcmp(w, params_data(&ref, bi), sizeof w) == 0,
         "ckpt_read_param: blocks.0.w into a tensor named blocks.1.w");
    t_ok(ckpt_read_param(&r, "blocks.9.w", &other, w) == 0, "ckpt_read_param: an absent tensor returns 0");
    t_ok(ckpt_param_dim(&r, "pos_embed", 3) == 2 && ckpt_param_dim(&r, "blocks.0.w", 0) == 6 &&
             ckpt_param_dim(&r, "blocks.0.w", 2) == -1 && ckpt_param_dim(&r, "nope", 0) == -1,
         "ckpt_param_dim: sizes of present axes, -1 for an absent axis or tensor");
    ckpt_close(&r);

    ckpt_open(&r, p5);
    memset(pt.data, 0, pt.total * sizeof(float));
    ckpt_load_params(&r, &pt);
    t_ok(r.step == 5 && !r.has_optim && memcmp(pt.data, ref.data, ref.total * sizeof(float)) == 0,
         "weights-only file: step 5, no optimizer state, the same tensors");
    ckpt_close(&r);

    free(m);
    free(v);
    free(m_ref);
    free(v_ref);
    params_free(&pt);
    params_free(&ref);
    free(p10);
    free(p5);
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* overwrite element i of a float dataset of file path */
static void poke(const char *path, const char *dset, hsize_t i, float value) {
    hid_t h = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(h, dset, H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    if (H5Sget_simple_extent_ndims(fs) == 1) {
        H5Sselect_elements(fs, H5S_SELECT_SET, 1, &i);
    } else { /* a 2-D tensor: element i in row-major order */
        hsize_t dims[2], c[2];
        H5Sget_simple_extent_dims(fs, dims, NULL);
        c[0] = i / dims[1], c[1] = i % dims[1];
        H5Sselect_elements(fs, H5S_SELECT_SET, 1, c);
    }
    H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &value);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(h);
}

/* flip the lowest mantissa bit of element i (the value stays finite: a silent change) */
static void flip(const char *path, const char *dset, hsize_t i) {
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(h, dset, H5P_DEFAULT);
    hid_t fs = H5Dget_space(ds);
    hsize_t n = (hsize_t)H5Sget_simple_extent_npoints(fs);
    float *x = xalloc_floats(n);
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(h);
    uint32_t b;
    memcpy(&b, &x[i], sizeof b);
    b ^= 1;
    float y;
    memcpy(&y, &b, sizeof y);
    poke(path, dset, i, y);
    free(x);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) fwrite(buf, 1, n, b);
    fclose(a);
    fclose(b);
}

static void test_errors(const char *dir) {
    char *p10 = xasprintf("%s/ckpt-00000010.h5", dir), *p5 = xasprintf("%s/ckpt-00000005.h5", dir);
    expect_exit(child_load_extra, p10, BEIT_EXIT_MISMATCH,
                "tensor params/extra.weight missing (the checkpoint is of another model: kind 'beit-pretrain')", p10,
                "ckpt_load_params: a tensor the file lacks");
    expect_exit(child_load_shape, p10, BEIT_EXIT_MISMATCH,
                "tensor params/blocks.0.w has shape [6,4], the model expects [4,6] (tensor blocks.0.w)", p10,
                "ckpt_load_params: a tensor of another shape");
    expect_exit(child_optim_order, p10, BEIT_EXIT_MISMATCH,
                "the optimizer state is laid out for another parameter table", p10,
                "ckpt_load_optim: the same tensors in another order");
    expect_exit(child_optim_good, p5, BEIT_EXIT_CHECKPOINT, "no optimizer state (weights-only file)", p5,
                "ckpt_load_optim: a weights-only file");
    char *p = t_path("nothere.h5");
    expect_exit(child_open, p, BEIT_EXIT_CHECKPOINT, "No such file or directory", p, "ckpt_open: a missing file");
    free(p);
    p = t_path("text.h5");
    FILE *f = fopen(p, "w");
    fprintf(f, "not a checkpoint\n");
    fclose(f);
    expect_exit(child_open, p, BEIT_EXIT_CHECKPOINT, "not an HDF5 file (or damaged)", p, "ckpt_open: a text file");
    free(p);
    p = t_path("store.h5");
    hid_t h = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5a_put_str(h, "format", "beit-store");
    H5Fclose(h);
    expect_exit(child_open, p, BEIT_EXIT_CHECKPOINT, "not a beit checkpoint (attribute 'format' is beit-store", p,
                "ckpt_open: an HDF5 file of another format");
    free(p);
    /* incomplete: the last attribute written is missing */
    p = t_path("incomplete.h5");
    copy_file(p10, p);
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(h, "complete");
    H5Fclose(h);
    expect_exit(child_open, p, BEIT_EXIT_CHECKPOINT, "incomplete checkpoint (no attribute 'complete'", p,
                "ckpt_open: a file without 'complete'");
    t_ok(ckpt_is_complete(p10) && ckpt_is_complete(p5) && !ckpt_is_complete(p),
         "ckpt_is_complete: 1 for the written files, 0 without 'complete'");
    free(p);
    /* a NaN in a parameter tensor, an Inf in the optimizer state: refused by name */
    p = t_path("nan.h5");
    copy_file(p10, p);
    poke(p, "params/blocks.0.w", 5, NAN);
    expect_exit(child_load_good, p, BEIT_EXIT_CHECKPOINT, "tensor params/blocks.0.w holds NaN at element 5", p,
                "ckpt_load_params: a NaN in a tensor");
    free(p);
    p = t_path("inf.h5");
    copy_file(p10, p);
    poke(p, "optim/exp_avg_sq_flat", 3, INFINITY);
    expect_exit(child_optim_good, p, BEIT_EXIT_CHECKPOINT, "tensor /optim/exp_avg_sq_flat holds Inf at element 3", p,
                "ckpt_load_optim: an Inf in the optimizer state");
    free(p);
    free(p10);
    free(p5);
}

/* ---- checksums (format 3) -------------------------------------------------------------------- */

static herr_t drop_checksum(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    (void)data;
    H5Adelete_by_name(g, name, "checksum", H5P_DEFAULT);
    return 0;
}

static void test_checksums(const char *dir) {
    float x[40];
    t_fill_normal(x, 40, 1.0f, 5);
    uint64_t whole = ckpt_checksum(x, 40, 0);
    uint64_t parts = ckpt_checksum(x + 17, 23, 17) + ckpt_checksum(x, 17, 0);
    float y[40];
    memcpy(y, x, sizeof y);
    y[39] = x[38], y[38] = x[39];
    t_ok(whole == parts && whole != ckpt_checksum(y, 40, 0),
         "ckpt_checksum: parts add up to the whole in any order; swapping two elements changes it");

    char *p10 = xasprintf("%s/ckpt-00000010.h5", dir);
    char *p = t_path("flip_param.h5");
    copy_file(p10, p);
    flip(p, "params/blocks.0.w", 7);
    expect_exit(child_load_good, p, BEIT_EXIT_CHECKPOINT, "tensor params/blocks.0.w: checksum mismatch (recorded", p,
                "ckpt_load_params: one flipped bit in a parameter");
    expect_exit(child_read_param, p, BEIT_EXIT_CHECKPOINT, "tensor params/blocks.0.w: checksum mismatch", p,
                "ckpt_read_param: one flipped bit in the tensor read");
    free(p);
    p = t_path("flip_m.h5");
    copy_file(p10, p);
    flip(p, "optim/exp_avg_flat", 12);
    expect_exit(child_optim_good, p, BEIT_EXIT_CHECKPOINT, "tensor exp_avg of head.weight: checksum mismatch", p,
                "ckpt_load_optim: one flipped bit in exp_avg");
    expect_exit(child_optim_part, p, BEIT_EXIT_CHECKPOINT, "tensor exp_avg of head.weight: checksum mismatch", p,
                "ckpt_load_optim_part: one flipped bit in a tensor the ranges cover whole");
    free(p);
    p = t_path("flip_v.h5");
    copy_file(p10, p);
    flip(p, "optim/exp_avg_sq_flat", 21); /* in blocks.0.w, which the part covers only partly */
    expect_exit(child_optim_good, p, BEIT_EXIT_CHECKPOINT, "tensor exp_avg_sq of blocks.0.w: checksum mismatch", p,
                "ckpt_load_optim: one flipped bit in exp_avg_sq");
    char msg[4096];
    int code = in_child(child_optim_part, p, msg, sizeof msg);
    t_ok(code == 0, "ckpt_load_optim_part (no communicator): a tensor read in part is not compared (exit %d)", code);
    free(p);

    /* format 2: no checksums; loads (even changed: nothing to verify) with one warning */
    p = t_path("format2.h5");
    copy_file(p10, p);
    flip(p, "params/blocks.0.w", 7);
    hid_t h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(h, "params", H5P_DEFAULT);
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, drop_checksum, NULL);
    H5Gclose(g);
    H5Ldelete(h, "optim/checksums", H5P_DEFAULT);
    H5Adelete(h, "format_version");
    h5a_put_i64(h, "format_version", 2);
    H5Fclose(h);
    code = in_child(child_load_all, p, msg, sizeof msg);
    const char *w = strstr(msg, "has no checksums: its tensors cannot be verified");
    t_ok(code == 0 && w && !strstr(w + 1, "has no checksums"),
         "format 2 (no checksums): parameters and optimizer state load with one warning per file (exit %d): %s", code,
         msg);
    /* format 3 with a checksum removed: damaged */
    copy_file(p10, p);
    h = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete_by_name(h, "params/head.bias", "checksum", H5P_DEFAULT);
    H5Fclose(h);
    expect_exit(child_load_good, p, BEIT_EXIT_CHECKPOINT, "tensor params/head.bias has no readable attribute 'checksum'",
                p, "ckpt_load_params: a format 3 tensor without its checksum");
    free(p);
    free(p10);
}

/* ---- run directories: --resume auto and rotation ------------------------------------------ */

static void test_run_dir(const char *dir) {
    char *p10 = xasprintf("%s/ckpt-00000010.h5", dir), *p5 = xasprintf("%s/ckpt-00000005.h5", dir);
    char *p20 = xasprintf("%s/ckpt-00000020.h5", dir), *p30 = xasprintf("%s/ckpt-00000030.h5", dir);
    char *tmp40 = xasprintf("%s/.ckpt-00000040.h5.tmp.12345", dir);
    /* newer than step 10: an incomplete file, a damaged one, and a complete file under a
     * temporary name (a write that was killed before its rename) */
    copy_file(p10, p20);
    hid_t h = H5Fopen(p20, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(h, "complete");
    H5Fclose(h);
    copy_file(p10, p30);
    FILE *f = fopen(p30, "r+b");
    fseek(f, 0, SEEK_SET);
    fputs("damaged", f);
    fclose(f);
    copy_file(p10, tmp40);

    char msg[4096], want[1200];
    int code = in_child(child_find_latest, dir, msg, sizeof msg);
    snprintf(want, sizeof want, "latest: %s\n", p10);
    t_ok(code == 0 && strstr(msg, want),
         "ckpt_find_latest: step 10, not the incomplete 20, damaged 30 or temporary 40");
    char w20[1200], w30[1200];
    snprintf(w20, sizeof w20, "ignoring %s: not a complete checkpoint", p20);
    snprintf(w30, sizeof w30, "ignoring %s: not a complete checkpoint", p30);
    t_ok(strstr(msg, w20) && strstr(msg, w30), "ckpt_find_latest: warns about the files it skips");
    if (!strstr(msg, want) || !strstr(msg, w20)) t_diag("stderr: %s", msg);

    code = in_child(child_rotate, dir, msg, sizeof msg);
    t_ok(code == 0 && exists(p10) && !exists(p5) && exists(p20) && exists(p30) && !exists(tmp40),
         "ckpt_rotate(keep 1): keeps step 10 and the newer incomplete files, removes step 5 and the temporary file");
    t_ok(strstr(msg, "left by an interrupted checkpoint write") != NULL, "ckpt_rotate: says it removed %s", tmp40);

    free(p10);
    free(p5);
    free(p20);
    free(p30);
    free(tmp40);
}

int main(void) {
    beit_h5_quiet();
    const char *dir = t_tmpdir("beit_test_checkpoint");
    char msg[4096];
    int code = in_child(child_write, dir, msg, sizeof msg);
    char *p10 = t_path("ckpt-00000010.h5"), *p5 = t_path("ckpt-00000005.h5");
    char *cmd = xasprintf("ls -A '%s' | grep -q tmp", dir);
    int tmp_left = system(cmd) == 0;
    t_ok(code == 0 && exists(p10) && exists(p5) && !tmp_left,
         "ckpt_write on 1 rank (MPI singleton): two files in place, no temporary file left (exit %d)", code);
    if (code != 0) t_diag("stderr: %s", msg);
    free(cmd);
    free(p10);
    free(p5);
    if (code == 0) {
        test_round_trip(dir);
        test_errors(dir);
        test_checksums(dir);
        test_run_dir(dir);
    }
    t_tmpdir_remove();
    return t_done();
}
