/* Checkpoints in HDF5 (layout in include/beit/checkpoint.h). */
#include "beit/checkpoint.h"

#include "beit/core.h"
#include "beit/h5attr.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_FORMAT "beit-checkpoint"
#define CKPT_VERSION 1

/* ---- writing: every HDF5 failure is an I/O failure of this file, not a bug ---- */
typedef struct {
    const char *tmp;
    int failed;
    char what[256];
} wctx;

#define W(ctx, call)                                                                    \
    do {                                                                                \
        if (!(ctx)->failed && (call) < 0) {                                             \
            (ctx)->failed = 1;                                                          \
            snprintf((ctx)->what, sizeof (ctx)->what, "%s", #call);                     \
        }                                                                               \
    } while (0)

static void attr_str(wctx *w, hid_t loc, const char *name, const char *val) {
    W(w, h5a_put_str(loc, name, val));
}

static void attr_i64(wctx *w, hid_t loc, const char *name, int64_t v) {
    W(w, h5a_put_i64(loc, name, v));
}

static void write_tensor(wctx *w, hid_t group, const param_info *p, const float *data) {
    if (w->failed) return;
    hsize_t dims[PARAM_MAX_DIMS];
    for (int d = 0; d < p->ndim; d++) dims[d] = (hsize_t)p->shape[d];
    hid_t s = H5Screate_simple(p->ndim, dims, NULL);
    hid_t ds = H5Dcreate2(group, p->name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    W(w, ds);
    if (ds >= 0) {
        W(w, H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data + p->offset));
        H5Dclose(ds);
    }
    H5Sclose(s);
}

static void write_all(wctx *w, const param_table *pt, const float *m, const float *v, const ckpt_meta *meta,
                      int nranks) {
    hid_t f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    W(w, f);
    if (f < 0) return;
    attr_str(w, f, "format", CKPT_FORMAT);
    attr_i64(w, f, "format_version", CKPT_VERSION);
    attr_str(w, f, "kind", meta->kind);
    attr_i64(w, f, "step", meta->step);
    attr_i64(w, f, "seed", (int64_t)meta->seed);
    attr_i64(w, f, "nranks", nranks);
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)params_checksum(pt));
    attr_str(w, f, "params_checksum", sum);
    attr_str(w, f, "config", meta->config_yaml ? meta->config_yaml : "");
    attr_str(w, f, "created_by", "beit " BEIT_VERSION);
    hid_t gp = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    W(w, gp);
    for (int i = 0; i < pt->n && gp >= 0; i++) write_tensor(w, gp, &pt->t[i], pt->data);
    if (gp >= 0) H5Gclose(gp);
    if (m && v) {
        hid_t go = H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        W(w, go);
        hid_t gm = go >= 0 ? H5Gcreate2(go, "exp_avg", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        hid_t gv = go >= 0 ? H5Gcreate2(go, "exp_avg_sq", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        W(w, gm);
        W(w, gv);
        for (int i = 0; i < pt->n && gm >= 0 && gv >= 0; i++) {
            write_tensor(w, gm, &pt->t[i], m);
            write_tensor(w, gv, &pt->t[i], v);
        }
        if (gm >= 0) H5Gclose(gm);
        if (gv >= 0) H5Gclose(gv);
        if (go >= 0) H5Gclose(go);
    }
    W(w, H5Fclose(f));
}

void ckpt_write(const char *path, const param_table *pt, const float *m, const float *v,
                const ckpt_meta *meta, const beit_dist *d) {
    int ok = 1;
    char msg[1024] = "";
    if (d->rank == 0) {
        char *tmp = beit_tmp_path(path);
        wctx w = {tmp, 0, ""};
        write_all(&w, pt, m, v, meta, d->size);
        if (!w.failed && beit_commit_file(tmp, path) != 0) {
            w.failed = 1;
            snprintf(w.what, sizeof w.what, "rename: %s", strerror(errno));
        }
        if (w.failed) {
            int e = errno;
            unlink(tmp);
            ok = 0;
            snprintf(msg, sizeof msg, "cannot write checkpoint %s (%s; %s); the previous checkpoint is kept",
                     path, w.what, e ? strerror(e) : "HDF5 error");
        }
        free(tmp);
    }
    if (!dist_all_ok(d, ok)) {
        if (d->rank == 0) beit_fatal_user(BEIT_EXIT_IO, "%s", msg);
        /* other ranks wait for rank 0's abort; exiting here could race its message */
        dist_barrier(d);
        beit_exit(BEIT_EXIT_IO);
    }
}

/* ---- reading ---- */
static int read_attr_str(hid_t f, const char *name, char **out) {
    *out = h5a_get_str(f, name);
    return *out ? 0 : -1;
}

static int read_attr_i64(hid_t f, const char *name, int64_t *v) { return h5a_get_int(f, name, v); }

void ckpt_open(ckpt_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    snprintf(r->path, sizeof r->path, "%s", path);
    if (access(path, R_OK) != 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "checkpoint %s: %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "checkpoint %s: not an HDF5 file (or damaged)", path);
    r->file = f;
    char *fmt = NULL, *kind = NULL;
    int64_t ver = 0, step = 0, seed = 0, nranks = 0;
    if (read_attr_str(f, "format", &fmt) != 0 || strcmp(fmt, CKPT_FORMAT) != 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: not a beit checkpoint (attribute 'format' is %s, expected '%s')",
                        path, fmt ? fmt : "missing", CKPT_FORMAT);
    if (read_attr_i64(f, "format_version", &ver) != 0 || ver != CKPT_VERSION)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: checkpoint format_version %lld, this beit reads %d", path,
                        (long long)ver, CKPT_VERSION);
    if (read_attr_str(f, "kind", &kind) != 0 || read_attr_i64(f, "step", &step) != 0 ||
        read_attr_i64(f, "seed", &seed) != 0 || read_attr_i64(f, "nranks", &nranks) != 0 ||
        read_attr_str(f, "config", &r->config_yaml) != 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: checkpoint attributes incomplete (kind, step, seed, nranks, config)", path);
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    r->step = step;
    r->seed = (uint64_t)seed;
    r->nranks = (int)nranks;
    r->has_optim = H5Lexists(f, "optim", H5P_DEFAULT) > 0;
    free(fmt);
    free(kind);
}

/* Read dataset `path` (group/name) into dst, checking its shape against p. Returns 0 if absent. */
static int read_tensor(ckpt_reader *r, const char *path, const param_info *p, float *dst) {
    char grp[PARAM_NAME_MAX + 64];
    snprintf(grp, sizeof grp, "%s", path);
    for (char *q = grp; (q = strchr(q + 1, '/'));) { /* every parent group must exist */
        *q = '\0';
        int ok = H5Lexists((hid_t)r->file, grp, H5P_DEFAULT) > 0;
        *q = '/';
        if (!ok) return 0;
    }
    if (H5Lexists((hid_t)r->file, path, H5P_DEFAULT) <= 0) return 0;
    hid_t ds = H5Dopen2((hid_t)r->file, path, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    int same = nd == p->ndim;
    if (nd > 0 && nd <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    for (int d = 0; same && d < nd; d++) same = dims[d] == (hsize_t)p->shape[d];
    if (!same) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < nd && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", d ? "," : "", (unsigned long long)dims[d]);
        for (int d = 0; d < p->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "", (long long)p->shape[d]);
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: tensor %s has shape [%s], the model expects [%s] (tensor %s)", r->path,
                        path, got, want, p->name);
    }
    H5Sclose(sp);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot read tensor %s (file damaged?)", r->path, path);
    H5Dclose(ds);
    return 1;
}

static void read_group(ckpt_reader *r, const char *group, const param_table *pt, float *dst) {
    for (int i = 0; i < pt->n; i++) {
        const param_info *p = &pt->t[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s/%s", group, p->name);
        if (!read_tensor(r, name, p, dst + p->offset))
            beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: tensor %s missing (the checkpoint is of another model: kind '%s')",
                            r->path, name, r->kind);
    }
}

int64_t ckpt_param_dim(ckpt_reader *r, const char *name, int axis) {
    char path[PARAM_NAME_MAX + 64];
    snprintf(path, sizeof path, "params/%s", name);
    if (H5Lexists((hid_t)r->file, "params", H5P_DEFAULT) <= 0 || H5Lexists((hid_t)r->file, path, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2((hid_t)r->file, path, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    int64_t out = -1;
    if (nd > axis && nd <= 8) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        out = (int64_t)dims[axis];
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return out;
}

int ckpt_read_param(ckpt_reader *r, const char *name, const param_info *p, float *dst) {
    char path[PARAM_NAME_MAX + 64];
    snprintf(path, sizeof path, "params/%s", name);
    return read_tensor(r, path, p, dst);
}

void ckpt_load_params(ckpt_reader *r, param_table *pt) { read_group(r, "params", pt, pt->data); }

void ckpt_load_optim(ckpt_reader *r, const param_table *pt, float *m, float *v) {
    if (!r->has_optim) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no optimizer state (weights-only file)", r->path);
    read_group(r, "optim/exp_avg", pt, m - 0);
    read_group(r, "optim/exp_avg_sq", pt, v);
}

void ckpt_close(ckpt_reader *r) {
    if (r->file > 0) H5Fclose((hid_t)r->file);
    free(r->config_yaml);
    memset(r, 0, sizeof *r);
}

/* ---- run directories ---- */
static int parse_ckpt_name(const char *name, long long *step) {
    char tail[8];
    return sscanf(name, "ckpt-%lld.h5%7s", step, tail) == 1 && strncmp(name, "ckpt-", 5) == 0;
}

char *ckpt_find_latest(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(dp))) {
        long long s;
        if (parse_ckpt_name(e->d_name, &s) && s > best) best = s;
    }
    closedir(dp);
    return best < 0 ? NULL : xasprintf("%s/ckpt-%08lld.h5", dir, best);
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

void ckpt_rotate(const char *dir, int keep) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    long long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 4096) {
        long long s;
        if (parse_ckpt_name(e->d_name, &s)) steps[n++] = s;
    }
    closedir(dp);
    qsort(steps, (size_t)n, sizeof steps[0], cmp_ll);
    for (int i = 0; i + keep < n; i++) {
        char *p = xasprintf("%s/ckpt-%08lld.h5", dir, steps[i]);
        unlink(p);
        free(p);
    }
}
