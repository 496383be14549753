/* Checkpoints in HDF5 (layout in include/beit/checkpoint.h). */
#include "beit/checkpoint.h"

#include "beit/error.h"
#include "beit/log.h"
#include "beit/fsutil.h"
#include "beit/h5attr.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_VERSION 3     /* written: 3 = per-tensor checksums */
#define CKPT_VERSION_MIN 1 /* read: 1 = per-tensor optimizer groups, no 'complete' attribute */
#define CKPT_VERSION_SUMS 3 /* the first version with checksums */

/* splitmix64's finaliser: every input bit flips about half of the output bits */
static inline uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ckpt_checksum(const float *x, size_t n, size_t first) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &x[i], sizeof b);
        s += mix64(((uint64_t)(first + i) << 32) | b);
    }
    return s;
}

/* Tensor of the table holding flat float `pos` (offsets ascend with the index). */
static int tensor_at(const param_table *pt, size_t pos) {
    int lo = 0, hi = pt->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (pt->t[mid].offset <= pos) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* Per-tensor partial checksums of the ranges of o: sums[2i] of m, sums[2i+1] of v, and
 * cover[i] = floats of tensor i inside the ranges (added to what the arrays hold). */
static void optim_sums(const param_table *pt, const ckpt_optim_part *o, uint64_t *sums, uint64_t *cover) {
    for (int j = 0; j < o->n; j++) {
        size_t pos = o->r[j].lo;
        while (pos < o->r[j].hi) {
            int i = tensor_at(pt, pos);
            const param_info *p = &pt->t[i];
            size_t end = p->offset + p->numel < o->r[j].hi ? p->offset + p->numel : o->r[j].hi;
            size_t at = o->r[j].off + (pos - o->r[j].lo);
            sums[2 * i] += ckpt_checksum(o->m + at, end - pos, pos - p->offset);
            sums[2 * i + 1] += ckpt_checksum(o->v + at, end - pos, pos - p->offset);
            if (cover) cover[i] += end - pos;
            pos = end;
        }
    }
}

/* The table's layout as text, one "name offset numel" line per tensor: stored with the flat
 * optimizer state and compared on load (the flat state only fits the same layout). */
static char *layout_string(const param_table *pt) {
    size_t cap = 64, n = 0;
    for (int i = 0; i < pt->n; i++) cap += strlen(pt->t[i].name) + 48;
    char *s = xmalloc(cap);
    s[0] = '\0';
    for (int i = 0; i < pt->n; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s %zu %zu\n", pt->t[i].name, pt->t[i].offset, pt->t[i].numel);
    return s;
}

/* ---- writing: every HDF5 failure is an I/O failure of this file, not a bug ---- */
typedef struct {
    const char *tmp;
    int failed;
    int err; /* errno at the first failure (0: none known) */
    char what[256];
    char cause[256]; /* MPI's or the system's message under HDF5's error stack, if any */
} wctx;

/* WD(ctx, call, "what failed", ...): remember the first failure with its description */
#define WD(ctx, call, ...)                                                              \
    do {                                                                                \
        if ((call) < 0 && !(ctx)->failed) {                                             \
            (ctx)->failed = 1;                                                          \
            (ctx)->err = errno;                                                         \
            beit_h5_error_cause((ctx)->cause, sizeof (ctx)->cause);                     \
            snprintf((ctx)->what, sizeof (ctx)->what, __VA_ARGS__);                    \
        }                                                                               \
    } while (0)
#define W(ctx, call) WD(ctx, call, "%s", #call)

/* Rank that writes tensor p: the one whose even share [total*r/R, total*(r+1)/R) holds the
 * tensor's first float, so the parameter bytes are spread over the ranks. */
static int tensor_writer(const param_info *p, size_t total, int R) {
    if (total == 0) return 0;
    int r = (int)((double)p->offset * R / (double)total);
    if (r >= R) r = R - 1;
    while (r > 0 && total * (size_t)r / (size_t)R > p->offset) r--;
    while (r + 1 < R && total * (size_t)(r + 1) / (size_t)R <= p->offset) r++;
    return r;
}

/* errno is stale after a failed MPI-IO call (Open MPI's clean-up overwrites it; a short
 * write is not even an error to HDF5's driver, just "file write failed"), so the cause is
 * asked of the file system directly: create the file (create=1), or append 1 MiB of zeros
 * to it and cut it back. Returns the errno of the first failing call, 0 if all succeeded. */
static int probe_errno(const char *path, int create) {
    int fd = open(path, create ? O_WRONLY | O_CREAT | O_EXCL : O_WRONLY, 0644);
    if (fd < 0) return errno;
    int err = 0;
    if (create) {
        close(fd);
        unlink(path);
        return 0;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    enum { PROBE = 1 << 20 };
    char *zeros = xcalloc(PROBE, 1);
    size_t done = 0;
    while (end >= 0 && done < PROBE) {
        ssize_t k = pwrite(fd, zeros + done, PROBE - done, end + (off_t)done);
        if (k < 0) {
            err = errno;
            break;
        }
        if (k == 0) { /* no progress and no errno: report it as what it amounts to */
            err = ENOSPC;
            break;
        }
        done += (size_t)k;
    }
    if (end >= 0 && ftruncate(fd, end) != 0 && !err) err = errno;
    free(zeros);
    close(fd);
    return err;
}

/* Parallel-HDF5 calls below are collective (every rank calls them in the same order with the
 * same arguments) except the parameter writes, which are independent. A failure on one rank
 * never makes it skip a collective call: it is remembered and agreed on with the others. */
static hid_t create_dataset(wctx *w, hid_t group, const char *name, int ndim, const hsize_t *dims) {
    hid_t s = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(group, name, H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    WD(w, ds, "creating dataset %s", name);
    H5Sclose(s);
    return ds;
}

/* select the ranges in a 1-D file space of `total` floats and a 1-D memory space */
static void select_ranges(hid_t fs, hid_t ms, const ckpt_optim_part *o) {
    if (o->n == 0) {
        H5Sselect_none(fs);
        H5Sselect_none(ms);
        return;
    }
    for (int i = 0; i < o->n; i++) {
        hsize_t a = o->r[i].lo, n = o->r[i].hi - o->r[i].lo, m = o->r[i].off;
        H5Sselect_hyperslab(fs, i ? H5S_SELECT_OR : H5S_SELECT_SET, &a, NULL, &n, NULL);
        H5Sselect_hyperslab(ms, i ? H5S_SELECT_OR : H5S_SELECT_SET, &m, NULL, &n, NULL);
    }
}

static hsize_t mem_extent(const ckpt_optim_part *o) {
    hsize_t e = 1;
    for (int i = 0; i < o->n; i++)
        if (o->r[i].off + (o->r[i].hi - o->r[i].lo) > e) e = o->r[i].off + (o->r[i].hi - o->r[i].lo);
    return e;
}

static void write_all(wctx *w, const param_table *pt, const ckpt_optim_part *opt, const ckpt_meta *meta,
                      const beit_dist *d) {
    hid_t fapl = H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK(H5Pset_fapl_mpio(fapl, d->comm, MPI_INFO_NULL));
    /* every rank does the same metadata operations here (creates, attributes): let HDF5 do
     * the metadata reads they need once and broadcast them, not once per rank. Not set:
     * H5Pset_coll_metadata_write (one collective metadata flush), which hangs the ranks when
     * one of them fails a write (full disk: tests/faults/disk.sh) instead of reporting it */
    H5_CHECK(H5Pset_all_coll_metadata_ops(fapl, 1));
    hid_t f = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    WD(w, f, "creating the file");
    if (f < 0) {
        int e = probe_errno(w->tmp, 1);
        if (e) snprintf(w->cause, sizeof w->cause, "%s", strerror(e));
    }
    if (!dist_all_ok(d, f >= 0)) {
        /* not closed: H5Fclose is collective and some ranks have no file; the job ends */
        if (!w->failed) {
            w->failed = 1;
            snprintf(w->what, sizeof w->what, "creating the file failed on another rank");
        }
        return;
    }
    /* attributes are metadata: every rank writes the same values */
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)params_checksum(pt));
    W(w, h5a_put_str(f, "format", CKPT_FORMAT));
    W(w, h5a_put_i64(f, "format_version", CKPT_VERSION));
    W(w, h5a_put_str(f, "kind", meta->kind));
    W(w, h5a_put_i64(f, "step", meta->step));
    W(w, h5a_put_i64(f, "seed", (int64_t)meta->seed));
    W(w, h5a_put_i64(f, "nranks", d->size));
    W(w, h5a_put_str(f, "params_checksum", sum));
    W(w, h5a_put_str(f, "config", meta->config_yaml ? meta->config_yaml : ""));
    W(w, h5a_put_str(f, "created_by", "beit " BEIT_VERSION));
    if (meta->norm && meta->norm->chans > 0) {
        W(w, h5a_put(f, "input_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)meta->norm->chans, meta->norm->mean));
        W(w, h5a_put(f, "input_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, (hsize_t)meta->norm->chans, meta->norm->std));
    }

    /* per-tensor checksums: each rank sums the tensors it writes, the sum over ranks is the
     * value every rank records (attributes are collective) */
    uint64_t *psum = xcalloc((size_t)pt->n + 1, sizeof *psum);
    for (int i = 0; i < pt->n; i++)
        if (tensor_writer(&pt->t[i], pt->total, d->size) == d->rank)
            psum[i] = ckpt_checksum(pt->data + pt->t[i].offset, pt->t[i].numel, 0);
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, psum, pt->n, MPI_UINT64_T, MPI_SUM, d->comm));

    /* the parameters, once: tensor by tensor, each written by one rank (independent I/O) */
    hid_t gp = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    W(w, gp);
    for (int i = 0; i < pt->n && gp >= 0; i++) {
        const param_info *p = &pt->t[i];
        hsize_t dims[PARAM_MAX_DIMS];
        for (int k = 0; k < p->ndim; k++) dims[k] = (hsize_t)p->shape[k];
        hid_t ds = create_dataset(w, gp, p->name, p->ndim, dims);
        if (ds >= 0)
            WD(w, h5a_put(ds, "checksum", H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, 1, &psum[i]),
               "writing the checksum of /params/%s", p->name);
        if (ds >= 0 && tensor_writer(p, pt->total, d->size) == d->rank)
            WD(w, H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, pt->data + p->offset),
               "writing /params/%s", p->name);
        if (ds >= 0) H5Dclose(ds);
    }
    if (gp >= 0) H5Gclose(gp);
    free(psum);

    /* the AdamW state: two flat datasets in the table's float order; each rank writes the
     * ranges it holds in one collective write per dataset */
    if (opt && opt->m && opt->v) {
        /* the moments' per-tensor checksums: every rank sums its ranges, the sum over ranks
         * covers each float once */
        uint64_t *osum = xcalloc(2 * (size_t)pt->n + 1, sizeof *osum);
        optim_sums(pt, opt, osum, NULL);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, osum, 2 * pt->n, MPI_UINT64_T, MPI_SUM, d->comm));
        hid_t go = H5Gcreate2(f, "optim", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        W(w, go);
        hid_t dm = -1, dv = -1;
        if (go >= 0) {
            hsize_t cd[2] = {(hsize_t)pt->n, 2};
            hid_t cs = H5Screate_simple(2, cd, NULL);
            hid_t dc = H5Dcreate2(go, "checksums", H5T_STD_U64LE, cs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            WD(w, dc, "creating dataset checksums");
            H5Sclose(cs);
            if (dc >= 0 && d->rank == 0 && pt->n > 0) /* small: one rank writes it (independent I/O) */
                WD(w, H5Dwrite(dc, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, osum), "writing /optim/checksums");
            if (dc >= 0) H5Dclose(dc);
            char *layout = layout_string(pt);
            W(w, h5a_put_str(go, "layout", "flat"));
            W(w, h5a_put_i64(go, "total", (int64_t)pt->total));
            W(w, h5a_put_str(go, "tensors", layout));
            W(w, h5a_put_i64(go, "writers", d->size));
            free(layout);
            hsize_t n = pt->total;
            dm = create_dataset(w, go, "exp_avg_flat", 1, &n);
            dv = create_dataset(w, go, "exp_avg_sq_flat", 1, &n);
        }
        /* a collective write needs every rank: go ahead only if all have their datasets */
        if (dist_all_ok(d, go >= 0 && dm >= 0 && dv >= 0)) {
            hid_t dxpl = H5_CHECK(H5Pcreate(H5P_DATASET_XFER));
            H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
            hsize_t n = pt->total, me = mem_extent(opt);
            hid_t fs = H5Screate_simple(1, &n, NULL), ms = H5Screate_simple(1, &me, NULL);
            select_ranges(fs, ms, opt);
            WD(w, H5Dwrite(dm, H5T_NATIVE_FLOAT, ms, fs, dxpl, opt->m), "writing /optim/exp_avg_flat");
            WD(w, H5Dwrite(dv, H5T_NATIVE_FLOAT, ms, fs, dxpl, opt->v), "writing /optim/exp_avg_sq_flat");
            H5Sclose(fs);
            H5Sclose(ms);
            H5Pclose(dxpl);
        } else if (!w->failed) {
            w->failed = 1;
            snprintf(w->what, sizeof w->what, "creating /optim failed on another rank");
        }
        if (dm >= 0) H5Dclose(dm);
        if (dv >= 0) H5Dclose(dv);
        if (go >= 0) H5Gclose(go);
        free(osum);
    }
    /* written last: a file at a checkpoint's name without it is incomplete */
    W(w, h5a_put_i64(f, "complete", 1));
    WD(w, H5Fclose(f), "closing (flushing) the file"); /* collective: flushes metadata and data */
}

void ckpt_write_part(const char *path, const param_table *pt, const ckpt_optim_part *opt, const ckpt_meta *meta,
                     const beit_dist *d) {
    /* one temporary name for all ranks (rank 0's pid) */
    char *tmp = NULL;
    int len = 0;
    if (d->rank == 0) {
        tmp = beit_tmp_path(path);
        len = (int)strlen(tmp) + 1;
    }
    MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, d->comm));
    if (d->rank != 0) tmp = xmalloc((size_t)len);
    MPI_CHECK(MPI_Bcast(tmp, len, MPI_CHAR, 0, d->comm));

    beit_tmp_guard_set(tmp);
    wctx w = {tmp, 0, 0, "", ""};
    errno = 0;
    write_all(&w, pt, opt, meta, d);
    int ok = dist_all_ok(d, !w.failed);
    if (ok && d->rank == 0 && beit_commit_file(tmp, path) != 0) {
        w.failed = 1;
        w.err = errno;
        snprintf(w.what, sizeof w.what, "rename to the final name");
    }
    ok = dist_all_ok(d, !w.failed);
    beit_tmp_guard_clear();
    if (!ok && w.failed && !w.cause[0] && strcmp(w.what, "rename to the final name") != 0) {
        int e = probe_errno(tmp, 0);
        if (e) w.err = e;
        else snprintf(w.cause, sizeof w.cause, "cause unknown: errno %d (%s) is not reliable here, and a probe "
                      "write of 1 MiB to the file succeeded", w.err, w.err ? strerror(w.err) : "none");
    }
    if (!ok) {
        /* the first failing rank tells what failed */
        int who = w.failed ? d->rank : d->size;
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &who, 1, MPI_INT, MPI_MIN, d->comm));
        char msg[512];
        if (w.cause[0]) snprintf(msg, sizeof msg, "%s: %s", w.what, w.cause);
        else snprintf(msg, sizeof msg, "%s%s%s", w.what, w.err ? ": " : "", w.err ? strerror(w.err) : "");
        MPI_CHECK(MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, who, d->comm));
        if (d->rank == 0) {
            unlink(tmp);
            beit_fatal_user(BEIT_EXIT_IO, "cannot write checkpoint %s (rank %d: %s; temporary file %s removed); the "
                            "previous checkpoint is kept", path, who, msg, tmp);
        }
        /* other ranks wait for rank 0's abort; exiting here could race its message */
        dist_barrier(d);
        beit_exit(BEIT_EXIT_IO);
    }
    free(tmp);
}

void ckpt_write(const char *path, const param_table *pt, const float *m, const float *v,
                const ckpt_meta *meta, const beit_dist *d) {
    /* replicated state: each rank writes an even share */
    dist_range r = {pt->total * (size_t)d->rank / (size_t)d->size, pt->total * (size_t)(d->rank + 1) / (size_t)d->size, 0};
    r.off = r.lo;
    ckpt_optim_part o = {(float *)m, (float *)v, r.hi > r.lo ? 1 : 0, &r};
    ckpt_write_part(path, pt, m && v ? &o : NULL, meta, d);
}

/* ---- reading ---- */
static int read_attr_str(hid_t f, const char *name, char **out) {
    *out = h5a_get_str(f, name);
    return *out ? 0 : -1;
}

static int read_attr_i64(hid_t f, const char *name, int64_t *v) { return h5a_get_int(f, name, v); }

/* number of elements of a root attribute, -1 when absent or unreadable */
static int64_t attr_len(hid_t f, const char *name) {
    if (H5Aexists(f, name) <= 0) return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return (int64_t)n;
}

/* input_mean / input_std: both or neither, 1..4 channels each, finite, std > 0 */
static void read_norm(ckpt_reader *r, hid_t f) {
    int64_t nm = attr_len(f, "input_mean"), ns = attr_len(f, "input_std");
    if (nm < 0 && ns < 0) return;
    ckpt_norm *n = &r->norm;
    int ok = nm == ns && nm >= 1 && nm <= CKPT_NORM_MAX_CHANS && h5a_get_f64s(f, "input_mean", n->mean, (int)nm) == 0 &&
             h5a_get_f64s(f, "input_std", n->std, (int)ns) == 0;
    for (int k = 0; ok && k < nm; k++) ok = isfinite(n->mean[k]) && isfinite(n->std[k]) && n->std[k] > 0;
    if (!ok)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: attributes input_mean and input_std must both hold 1..%d finite "
                        "values, one per channel, std > 0 (found %lld and %lld values)", r->path, CKPT_NORM_MAX_CHANS,
                        (long long)nm, (long long)ns);
    n->chans = (int)nm;
}

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
    if (read_attr_i64(f, "format_version", &ver) != 0 || ver < CKPT_VERSION_MIN || ver > CKPT_VERSION)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: checkpoint format_version %lld, this beit reads %d..%d", path,
                        (long long)ver, CKPT_VERSION_MIN, CKPT_VERSION);
    int64_t complete = 0;
    if (ver >= 2 && (read_attr_i64(f, "complete", &complete) != 0 || complete != 1))
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: incomplete checkpoint (no attribute 'complete': its write did not "
                        "finish); use an older one", path);
    if (read_attr_str(f, "kind", &kind) != 0 || read_attr_i64(f, "step", &step) != 0 ||
        read_attr_i64(f, "seed", &seed) != 0 || read_attr_i64(f, "nranks", &nranks) != 0 ||
        read_attr_str(f, "config", &r->config_yaml) != 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: checkpoint attributes incomplete (kind, step, seed, nranks, config)", path);
    snprintf(r->kind, sizeof r->kind, "%s", kind);
    r->step = step;
    r->seed = (uint64_t)seed;
    r->nranks = (int)nranks;
    r->has_optim = H5Lexists(f, "optim", H5P_DEFAULT) > 0;
    r->version = (int)ver;
    read_norm(r, f);
    if (ver < CKPT_VERSION_SUMS)
        beit_warn("%s: checkpoint format_version %lld has no checksums: its tensors cannot be verified (format %d "
                  "and later can)", path, (long long)ver, CKPT_VERSION_SUMS);
    free(fmt);
    free(kind);
}

/* Read dataset `path` (group/name) into dst, checking its shape against p. Returns 0 if absent. */
/* A NaN or Inf in a loaded tensor: a damaged file or a run that diverged. Training would go on
 * from it and eval would print a meaningless accuracy, so refuse it by name (index = the
 * element's position in the tensor, counting from `first`). */
static void refuse_nonfinite(const ckpt_reader *r, const char *what, const float *x, size_t n, size_t first) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: tensor %s holds %s at element %zu (a damaged checkpoint, or "
                            "one written by a run that diverged)", r->path, what, isnan(x[i]) ? "NaN" : "Inf",
                            first + i);
}

static BEIT_NORETURN void checksum_mismatch(const ckpt_reader *r, const char *what, uint64_t recorded,
                                            uint64_t computed) {
    beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: tensor %s: checksum mismatch (recorded %016llx, computed %016llx): the "
                    "file changed after it was written (damaged or partly copied)", r->path, what,
                    (unsigned long long)recorded, (unsigned long long)computed);
}

/* format >= 3: the dataset's attribute 'checksum' against the tensor as read (whole) */
static void verify_tensor(const ckpt_reader *r, hid_t ds, const char *what, const float *x, size_t n) {
    if (r->version < CKPT_VERSION_SUMS) return;
    uint64_t rec = 0;
    hid_t a = H5Aexists(ds, "checksum") > 0 ? H5Aopen(ds, "checksum", H5P_DEFAULT) : -1;
    if (a < 0 || H5Aread(a, H5T_NATIVE_UINT64, &rec) < 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: tensor %s has no readable attribute 'checksum' (every tensor of a "
                        "format %d checkpoint has one: file damaged?)", r->path, what, r->version);
    H5Aclose(a);
    uint64_t got = ckpt_checksum(x, n, 0);
    if (got != rec) checksum_mismatch(r, what, rec, got);
}

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
    refuse_nonfinite(r, path, dst, (size_t)p->numel, 0);
    verify_tensor(r, ds, path, dst, (size_t)p->numel);
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

/* format 2: the flat datasets, the ranges of o */
/* format >= 3: the moments' checksums of the tensors the ranges cover whole (over comm's ranks
 * when comm is not MPI_COMM_NULL) against /optim/checksums [ntensors][2] */
static void verify_flat(ckpt_reader *r, hid_t go, const param_table *pt, const ckpt_optim_part *o, MPI_Comm comm) {
    if (r->version < CKPT_VERSION_SUMS) return;
    size_t n = (size_t)pt->n;
    uint64_t *rec = xcalloc(2 * n + 1, sizeof *rec), *sums = xcalloc(3 * n + 1, sizeof *sums);
    hid_t dc = H5Lexists(go, "checksums", H5P_DEFAULT) > 0 ? H5Dopen2(go, "checksums", H5P_DEFAULT) : -1;
    hsize_t dims[2] = {0, 0};
    if (dc >= 0) {
        hid_t sp = H5Dget_space(dc);
        if (H5Sget_simple_extent_ndims(sp) == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
    }
    if (dc < 0 || dims[0] != n || dims[1] != 2 || (n && H5Dread(dc, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, rec) < 0))
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: /optim/checksums missing or not [%zu][2] (every format %d checkpoint "
                        "with optimizer state has it: file damaged?)", r->path, n, r->version);
    H5Dclose(dc);
    optim_sums(pt, o, sums, sums + 2 * n);
    if (comm != MPI_COMM_NULL)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, (int)(3 * n), MPI_UINT64_T, MPI_SUM, comm));
    for (size_t i = 0; i < n; i++) {
        if (sums[2 * n + i] != pt->t[i].numel) continue; /* not read whole: nothing to compare */
        for (int k = 0; k < 2; k++) {
            if (sums[2 * i + k] == rec[2 * i + k]) continue;
            char what[PARAM_NAME_MAX + 64];
            snprintf(what, sizeof what, "%s of %s", k ? "exp_avg_sq" : "exp_avg", pt->t[i].name);
            checksum_mismatch(r, what, rec[2 * i + k], sums[2 * i + k]);
        }
    }
    free(rec);
    free(sums);
}

static void read_flat(ckpt_reader *r, const param_table *pt, const ckpt_optim_part *o, MPI_Comm comm) {
    hid_t f = (hid_t)r->file;
    hid_t go = H5Gopen2(f, "optim", H5P_DEFAULT);
    if (go < 0) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot open /optim (file damaged?)", r->path);
    int64_t total = -1;
    char *layout = h5a_get_str(go, "tensors"), *mine = layout_string(pt);
    if (h5a_get_int(go, "total", &total) != 0 || !layout)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: /optim lacks its attributes 'total' and 'tensors'", r->path);
    if (total != (int64_t)pt->total || strcmp(layout, mine) != 0)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: the optimizer state is laid out for another parameter table (%lld "
                        "floats; this model has %zu, or its tensors differ in order or size)", r->path, (long long)total,
                        pt->total);
    free(layout);
    free(mine);
    const char *names[2] = {"exp_avg_flat", "exp_avg_sq_flat"};
    float *dst[2] = {o->m, o->v};
    for (int k = 0; k < 2; k++) {
        hid_t ds = H5Dopen2(go, names[k], H5P_DEFAULT);
        if (ds < 0) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: /optim/%s missing (file damaged?)", r->path, names[k]);
        hsize_t n = pt->total, me = mem_extent(o), have = 0;
        hid_t fsp = H5Dget_space(ds);
        if (H5Sget_simple_extent_ndims(fsp) != 1 || (H5Sget_simple_extent_dims(fsp, &have, NULL), have != n))
            beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: /optim/%s is not [%zu]", r->path, names[k], pt->total);
        H5Sclose(fsp);
        hid_t fs = H5Screate_simple(1, &n, NULL), ms = H5Screate_simple(1, &me, NULL);
        select_ranges(fs, ms, o);
        if (o->n > 0 && H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, dst[k]) < 0)
            beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: cannot read /optim/%s (file damaged?)", r->path, names[k]);
        for (int j = 0; j < o->n; j++) {
            char what[64];
            snprintf(what, sizeof what, "/optim/%s", names[k]);
            refuse_nonfinite(r, what, dst[k] + o->r[j].off, o->r[j].hi - o->r[j].lo, o->r[j].lo);
        }
        H5Sclose(fs);
        H5Sclose(ms);
        H5Dclose(ds);
    }
    verify_flat(r, go, pt, o, comm);
    H5Gclose(go);
}

void ckpt_load_optim_part(ckpt_reader *r, const param_table *pt, const ckpt_optim_part *o, MPI_Comm comm) {
    if (!r->has_optim) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no optimizer state (weights-only file)", r->path);
    if (H5Lexists((hid_t)r->file, "optim/exp_avg_flat", H5P_DEFAULT) > 0) {
        read_flat(r, pt, o, comm);
        return;
    }
    /* format 1: per-tensor groups, read whole, then the ranges */
    float *m = xalloc_floats(pt->total), *v = xalloc_floats(pt->total);
    read_group(r, "optim/exp_avg", pt, m);
    read_group(r, "optim/exp_avg_sq", pt, v);
    for (int i = 0; i < o->n; i++) {
        size_t n = o->r[i].hi - o->r[i].lo;
        memcpy(o->m + o->r[i].off, m + o->r[i].lo, n * sizeof(float));
        memcpy(o->v + o->r[i].off, v + o->r[i].lo, n * sizeof(float));
    }
    free(m);
    free(v);
}

void ckpt_load_optim(ckpt_reader *r, const param_table *pt, float *m, float *v) {
    dist_range all = {0, pt->total, 0};
    ckpt_optim_part o = {m, v, pt->total > 0 ? 1 : 0, &all};
    ckpt_load_optim_part(r, pt, &o, MPI_COMM_NULL);
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

int ckpt_is_complete(const char *path) {
    if (access(path, R_OK) != 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    char *fmt = h5a_get_str(f, "format");
    int64_t ver = 0, complete = 0;
    int ok = fmt && strcmp(fmt, CKPT_FORMAT) == 0 && h5a_get_int(f, "format_version", &ver) == 0 &&
             ver >= CKPT_VERSION_MIN && ver <= CKPT_VERSION &&
             (ver == 1 || (h5a_get_int(f, "complete", &complete) == 0 && complete == 1));
    free(fmt);
    H5Fclose(f);
    return ok;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* the steps of the ckpt-<step>.h5 names in dir, ascending (malloc'd; NULL when none) */
static long long *list_steps(const char *dir, int *n_out) {
    *n_out = 0;
    DIR *dp = opendir(dir);
    if (!dp) return NULL;
    int n = 0, cap = 0;
    long long *steps = NULL;
    struct dirent *e;
    while ((e = readdir(dp))) {
        long long s;
        if (!parse_ckpt_name(e->d_name, &s)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            steps = xrealloc(steps, (size_t)cap * sizeof *steps);
        }
        steps[n++] = s;
    }
    closedir(dp);
    if (n) qsort(steps, (size_t)n, sizeof steps[0], cmp_ll);
    *n_out = n;
    return steps;
}

char *ckpt_find_latest(const char *dir) {
    int n;
    long long *steps = list_steps(dir, &n);
    char *out = NULL;
    for (int i = n - 1; i >= 0 && !out; i--) {
        char *p = xasprintf("%s/ckpt-%08lld.h5", dir, steps[i]);
        if (ckpt_is_complete(p)) out = p;
        else {
            beit_warn("ignoring %s: not a complete checkpoint (its write did not finish, or the file is damaged)", p);
            free(p);
        }
    }
    free(steps);
    return out;
}

void ckpt_rotate(const char *dir, int keep) {
    int n;
    long long *steps = list_steps(dir, &n);
    int kept = 0;
    for (int i = n - 1; i >= 0; i--) { /* newest first: keep `keep` complete ones */
        char *p = xasprintf("%s/ckpt-%08lld.h5", dir, steps[i]);
        if (kept < keep) {
            if (ckpt_is_complete(p)) kept++;
        } else {
            unlink(p);
        }
        free(p);
    }
    free(steps);
    /* temporary files of checkpoints (".ckpt-<step>.h5.tmp.<pid>") left by a killed run: no
     * write is in progress now (the caller just finished one) */
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        long long s;
        if (strncmp(e->d_name, ".ckpt-", 6) != 0 || !strstr(e->d_name, ".h5.tmp.") ||
            sscanf(e->d_name, ".ckpt-%lld.h5.tmp.", &s) != 1)
            continue;
        char *p = xasprintf("%s/%s", dir, e->d_name);
        if (unlink(p) == 0) beit_warn("removed %s (left by an interrupted checkpoint write)", p);
        free(p);
    }
    closedir(dp);
}
