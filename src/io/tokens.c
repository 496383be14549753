/* The token store (include/beit/tokens.h): the collective parallel-HDF5 writer of
 * `beit tokenize` and the reader of pre-training.
 *
 *   /<split>/tokens  uint16 [N, K, h, h]    contiguous, uncompressed
 *   /<split>/crops   float32 [N, K, 5]      (y0, x0, h, w, flip)
 *   /<split>         attribute count = N
 *   /                format, format_version, vocab_size, grid, views, tokenizer_input,
 *                    image_height/width/channels, tokenizer_sha256, dataset_uuid,
 *                    dataset_path, config, created_by */
#define _POSIX_C_SOURCE 200809L
#include "beit/augment.h"
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/h5attr.h"
#include "beit/log.h"
#include "beit/tokens.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BEIT_VERSION
#define BEIT_VERSION "dev"
#endif

#define TOK_MAX_SPLITS 8

/* ======================================================================================== */
/* writer                                                                                   */
/* ======================================================================================== */

struct tokens_writer {
    MPI_Comm comm;
    int rank, size;
    char *final_path, *tmp_path;
    hid_t file, dxpl;
    int K, h;
    hid_t group, tok, crop; /* current split, -1 when none */
    int64_t count;
    int ok; /* this rank saw no failure */
};


/* Rank 0: remove ".<base>.tmp.*" beside final_path (what a killed run leaves behind). */
static void remove_stale_tmp(const char *final_path) {
    char *a = xstrdup(final_path), *b = xstrdup(final_path);
    const char *dir = dirname(a), *base = basename(b);
    char *prefix = xasprintf(".%s.tmp.", base);
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
            char *p = xasprintf("%s/%s", dir, e->d_name);
            if (unlink(p) == 0) beit_warn("removed %s (left by an interrupted run)", p);
            free(p);
        }
        closedir(d);
    }
    free(prefix);
    free(a);
    free(b);
}

static void bcast_string(MPI_Comm comm, char **s, int rank) {
    int n = rank == 0 ? (int)strlen(*s) + 1 : 0;
    MPI_CHECK(MPI_Bcast(&n, 1, MPI_INT, 0, comm));
    if (rank != 0) *s = xmalloc((size_t)n);
    MPI_CHECK(MPI_Bcast(*s, n, MPI_CHAR, 0, comm));
}

tokens_writer *tokens_create(const char *final_path, const tokens_meta *meta, MPI_Comm comm) {
    tokens_writer *w = xcalloc(1, sizeof *w);
    w->comm = comm;
    MPI_CHECK(MPI_Comm_rank(comm, &w->rank));
    MPI_CHECK(MPI_Comm_size(comm, &w->size));
    w->final_path = xstrdup(final_path);
    w->K = meta->views;
    w->h = meta->grid;
    w->group = w->tok = w->crop = -1;
    w->ok = 1;
    /* rank 0 prepares the directory and names the temporary file; everyone uses its name */
    int prep = 0;
    if (w->rank == 0) {
        char *a = xstrdup(final_path);
        if (beit_mkdir_p(dirname(a)) != 0) prep = errno ? errno : EIO;
        free(a);
        if (!prep) remove_stale_tmp(final_path);
        w->tmp_path = beit_tmp_path(final_path);
    }
    MPI_CHECK(MPI_Bcast(&prep, 1, MPI_INT, 0, comm));
    if (prep) beit_fatal_user(BEIT_EXIT_IO, "%s: cannot create its directory: %s", final_path, strerror(prep));
    bcast_string(comm, &w->tmp_path, w->rank);

    beit_tmp_guard_set(w->tmp_path);
    hid_t fapl = H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    w->file = H5Fcreate(w->tmp_path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w->file < 0) {
        beit_tmp_guard_clear();
        beit_fatal_user(BEIT_EXIT_IO, "%s: cannot create the token store (temporary file %s): not writable?",
                        final_path, w->tmp_path);
    }
    w->dxpl = H5_CHECK(H5Pcreate(H5P_DATASET_XFER));
    H5_CHECK(H5Pset_dxpl_mpio(w->dxpl, H5FD_MPIO_COLLECTIVE));

    /* attributes are metadata: every rank writes the same values */
    char *created = xasprintf("beit %s", BEIT_VERSION);
    hid_t f = w->file;
    int bad = 0;
    bad |= h5a_put_str(f, "format", TOKENS_FORMAT);
    bad |= h5a_put_i32(f, "format_version", TOKENS_FORMAT_VERSION);
    bad |= h5a_put_i32(f, "vocab_size", meta->vocab);
    bad |= h5a_put_i32(f, "grid", meta->grid);
    bad |= h5a_put_i32(f, "views", meta->views);
    bad |= h5a_put_i32(f, "tokenizer_input", meta->tokenizer_input);
    bad |= h5a_put_i32(f, "image_height", meta->image_height);
    bad |= h5a_put_i32(f, "image_width", meta->image_width);
    bad |= h5a_put_i32(f, "image_channels", meta->image_channels);
    bad |= h5a_put_str(f, "tokenizer_sha256", meta->tokenizer_sha256);
    bad |= h5a_put_str(f, "tokenizer_kind", meta->tokenizer_kind ? meta->tokenizer_kind : "");
    bad |= h5a_put_str(f, "tokenizer_checkpoint", meta->tokenizer_checkpoint ? meta->tokenizer_checkpoint : "");
    bad |= h5a_put_str(f, "tokenizer_resize", meta->tokenizer_resize ? meta->tokenizer_resize : "");
    bad |= h5a_put_str(f, "tokenizer_pixel_map", meta->tokenizer_pixel_map ? meta->tokenizer_pixel_map : "");
    bad |= h5a_put_str(f, "dataset_uuid", meta->dataset_uuid);
    bad |= h5a_put_str(f, "dataset_path", meta->dataset_path);
    bad |= h5a_put_str(f, "config", meta->config_yaml);
    bad |= h5a_put_str(f, "created_by", created);
    free(created);
    if (bad) w->ok = 0;
    return w;
}

const char *tokens_writer_tmp_path(const tokens_writer *w) { return w->tmp_path; }

void tokens_begin_split(tokens_writer *w, const char *split, int64_t count) {
    if (w->tok >= 0) tokens_end_split(w);
    w->count = count;
    w->group = H5Gcreate2(w->file, split, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (w->group < 0) beit_fatal(BEIT_EXIT_FAILURE, "%s: cannot create group /%s", w->tmp_path, split);
    if (h5a_put_i64(w->group, "count", count) != 0) w->ok = 0;
    hid_t dcpl = H5_CHECK(H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
    H5_CHECK(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY));
    H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); /* every element is written once */
    hsize_t td[4] = {(hsize_t)count, (hsize_t)w->K, (hsize_t)w->h, (hsize_t)w->h};
    hsize_t cd[3] = {(hsize_t)count, (hsize_t)w->K, 5};
    hid_t ts = H5_CHECK(H5Screate_simple(4, td, NULL)), cs = H5_CHECK(H5Screate_simple(3, cd, NULL));
    w->tok = H5Dcreate2(w->group, "tokens", H5T_STD_U16LE, ts, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    w->crop = H5Dcreate2(w->group, "crops", H5T_IEEE_F32LE, cs, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Sclose(ts);
    H5Sclose(cs);
    H5Pclose(dcpl);
    if (w->tok < 0 || w->crop < 0) w->ok = 0;
}

/* One collective write of rows [row0, row0+n) of ds; n = 0 selects nothing. */
static int write_rows(tokens_writer *w, hid_t ds, hid_t mtype, int64_t row0, int n, const void *buf) {
    if (ds < 0) return -1;
    hid_t fs = H5Dget_space(ds);
    if (fs < 0) return -1;
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[4], start[4] = {0, 0, 0, 0}, count[4];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    hid_t ms;
    static const uint32_t dummy[1] = {0}; /* some MPI-IO paths dislike a NULL buffer */
    if (n > 0) {
        start[0] = (hsize_t)row0;
        count[0] = (hsize_t)n;
        for (int d = 1; d < nd; d++) count[d] = dims[d];
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        ms = H5Screate_simple(nd, count, NULL);
    } else {
        H5Sselect_none(fs);
        hsize_t one = 1;
        ms = H5Screate_simple(1, &one, NULL);
        H5Sselect_none(ms);
        buf = dummy;
    }
    herr_t rc = H5Dwrite(ds, mtype, ms, fs, w->dxpl, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return rc < 0 ? -1 : 0;
}

int tokens_write_rows(tokens_writer *w, int64_t row0, int n, const uint16_t *tokens, const float *crops) {
    if (n > 0 && (row0 < 0 || row0 + n > w->count))
        beit_fatal(BEIT_EXIT_FAILURE, "tokens_write_rows: rows [%lld, %lld) outside [0, %lld)", (long long)row0,
                   (long long)(row0 + n), (long long)w->count);
    int rc = 0;
    if (write_rows(w, w->tok, H5T_NATIVE_UINT16, row0, n, tokens) != 0) rc = -1;
    if (write_rows(w, w->crop, H5T_NATIVE_FLOAT, row0, n, crops) != 0) rc = -1;
    if (rc) w->ok = 0;
    return rc;
}

void tokens_end_split(tokens_writer *w) {
    if (w->tok >= 0 && H5Dclose(w->tok) < 0) w->ok = 0;
    if (w->crop >= 0 && H5Dclose(w->crop) < 0) w->ok = 0;
    if (w->group >= 0 && H5Gclose(w->group) < 0) w->ok = 0;
    w->tok = w->crop = w->group = -1;
}

static void writer_free(tokens_writer *w) {
    beit_tmp_guard_clear();
    free(w->final_path);
    free(w->tmp_path);
    free(w);
}

int tokens_commit(tokens_writer *w) {
    tokens_end_split(w);
    H5Pclose(w->dxpl);
    if (H5Fclose(w->file) < 0) w->ok = 0; /* collective: flushes the metadata */
    int ok = w->ok;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_LAND, w->comm));
    int err = 0;
    if (w->rank == 0) {
        if (ok && beit_commit_file(w->tmp_path, w->final_path) != 0) err = errno ? errno : EIO;
        if (!ok || err) unlink(w->tmp_path);
        if (!ok)
            fprintf(stderr, "beit: %s: writing the token store failed (disk full or not writable?); removed %s\n",
                    w->final_path, w->tmp_path);
        else if (err)
            fprintf(stderr, "beit: %s: cannot rename %s to it: %s\n", w->final_path, w->tmp_path, strerror(err));
    }
    MPI_CHECK(MPI_Bcast(&err, 1, MPI_INT, 0, w->comm));
    writer_free(w);
    return ok && !err ? 0 : BEIT_EXIT_IO;
}

void tokens_abort(tokens_writer *w) {
    tokens_end_split(w);
    H5Pclose(w->dxpl);
    H5Fclose(w->file);
    MPI_CHECK(MPI_Barrier(w->comm));
    if (w->rank == 0) unlink(w->tmp_path);
    writer_free(w);
}

/* ======================================================================================== */
/* reader                                                                                   */
/* ======================================================================================== */

typedef struct {
    char name[64];
    int64_t count;
    hid_t tok, crop;
    uint16_t *mem_tok; /* [count, K, h, h] when the split is cached */
    float *mem_crop;   /* [count, K, 5] */
    int tried;         /* cache attempted (loaded or did not fit) */
} tok_split;

struct token_store {
    char *path;
    hid_t file;
    int vocab, grid, views, input, H, W, C;
    char *uuid, *sha;
    int nsplits;
    tok_split splits[TOK_MAX_SPLITS];
    size_t budget, cached;
};

static BEIT_NORETURN void bad_tokens(const token_store *t, const char *fmt, ...) BEIT_PRINTF(2, 3);
static void bad_tokens(const token_store *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    beit_vfatal_user_in(BEIT_EXIT_DATA, t->path, fmt, ap);
}

/* The dataset's dims must be {count, K, h, h} (tokens) or {count, K, 5} (crops). */
static void check_dataset(const token_store *t, hid_t g, const char *split, const char *name, int nd_want,
                          const hsize_t *tail, hid_t *ds_out, int64_t *count_out) {
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        bad_tokens(t, "split /%s has no '%s' dataset (expected a token store written by 'beit tokenize')", split, name);
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0) bad_tokens(t, "cannot open /%s/%s", split, name);
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[8] = {0};
    if (nd > 0 && nd <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    int ok = nd == nd_want;
    for (int d = 1; ok && d < nd; d++) ok = dims[d] == tail[d - 1];
    if (!ok) {
        char want[64] = "N";
        for (int d = 1; d < nd_want; d++) snprintf(want + strlen(want), sizeof want - strlen(want), ", %llu",
                                                   (unsigned long long)tail[d - 1]);
        bad_tokens(t, "/%s/%s has %d dimensions or the wrong shape (expected [%s] from the root attributes)", split,
                   name, nd, want);
    }
    int tok = nd_want == 4;
    H5T_class_t cls = H5Tget_class(ty);
    size_t sz = H5Tget_size(ty);
    if (tok ? (cls != H5T_INTEGER || sz != 2 || H5Tget_sign(ty) != H5T_SGN_NONE) : (cls != H5T_FLOAT || sz != 4))
        bad_tokens(t, "/%s/%s has the wrong type (expected %s)", split, name, tok ? "uint16" : "float32");
    H5Tclose(ty);
    H5Sclose(sp);
    *ds_out = ds;
    *count_out = (int64_t)dims[0];
}

token_store *tokens_open(const char *path, MPI_Comm comm) {
    token_store *t = xcalloc(1, sizeof *t);
    t->path = xstrdup(path);
    t->file = -1;
    t->budget = TOKENS_CACHE_DEFAULT;
    struct stat st;
    if (stat(path, &st) != 0)
        bad_tokens(t, "cannot open the token store: %s (expected a file written by 'beit tokenize')", strerror(errno));
    if (H5Fis_hdf5(path) <= 0) bad_tokens(t, "not an HDF5 file (expected a token store written by 'beit tokenize')");
    hid_t fapl = H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
    if (comm != MPI_COMM_NULL) H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    t->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (t->file < 0) bad_tokens(t, "cannot open as HDF5 (expected a readable token store)");
    char *fmt = h5a_get_str(t->file, "format");
    if (!fmt || strcmp(fmt, TOKENS_FORMAT) != 0)
        bad_tokens(t, "attribute 'format' is %s%s%s (expected \"%s\": a token store written by 'beit tokenize')",
                   fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "", TOKENS_FORMAT);
    free(fmt);
    int64_t v;
    if (h5a_get_int(t->file, "format_version", &v) != 0 || v != TOKENS_FORMAT_VERSION)
        bad_tokens(t, "format_version is missing or not %d", TOKENS_FORMAT_VERSION);
    const char *names[7] = {"vocab_size", "grid", "views", "tokenizer_input", "image_height", "image_width",
                            "image_channels"};
    int *dst[7] = {&t->vocab, &t->grid, &t->views, &t->input, &t->H, &t->W, &t->C};
    for (int i = 0; i < 7; i++) {
        if (h5a_get_int(t->file, names[i], &v) != 0 || v < 1 || v > 65536)
            bad_tokens(t, "missing or invalid attribute '%s' (expected a positive integer)", names[i]);
        *dst[i] = (int)v;
    }
    if (t->vocab > 65535) bad_tokens(t, "vocab_size %d does not fit uint16 tokens (expected <= 65535)", t->vocab);
    t->uuid = h5a_get_str(t->file, "dataset_uuid");
    t->sha = h5a_get_str(t->file, "tokenizer_sha256");
    if (!t->uuid || !t->sha) bad_tokens(t, "missing attribute 'dataset_uuid' or 'tokenizer_sha256'");

    H5G_info_t gi;
    H5_CHECK(H5Gget_info(t->file, &gi));
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(t->file, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
            continue;
        hid_t g = H5Oopen(t->file, name, H5P_DEFAULT);
        if (g < 0) continue;
        if (H5Iget_type(g) != H5I_GROUP || H5Lexists(g, "tokens", H5P_DEFAULT) <= 0) {
            H5Oclose(g);
            continue;
        }
        if (t->nsplits == TOK_MAX_SPLITS || strlen(name) >= sizeof t->splits[0].name)
            bad_tokens(t, "too many splits or split name too long at /%s (at most %d)", name, TOK_MAX_SPLITS);
        tok_split *s = &t->splits[t->nsplits++];
        snprintf(s->name, sizeof s->name, "%s", name);
        hsize_t ttail[3] = {(hsize_t)t->views, (hsize_t)t->grid, (hsize_t)t->grid}, ctail[2] = {(hsize_t)t->views, 5};
        int64_t nc;
        check_dataset(t, g, name, "tokens", 4, ttail, &s->tok, &s->count);
        check_dataset(t, g, name, "crops", 3, ctail, &s->crop, &nc);
        if (nc != s->count)
            bad_tokens(t, "/%s/crops has %lld rows, /%s/tokens %lld (expected the same)", name, (long long)nc, name,
                       (long long)s->count);
        int64_t ac = -1;
        if (h5a_get_int(g, "count", &ac) != 0 || ac != s->count)
            bad_tokens(t, "/%s: attribute 'count' is %lld, its datasets hold %lld rows (expected the same)", name,
                       (long long)ac, (long long)s->count);
        H5Oclose(g);
    }
    if (t->nsplits == 0) bad_tokens(t, "no splits (expected groups holding 'tokens' and 'crops')");
    return t;
}

void tokens_close(token_store *t) {
    if (!t) return;
    for (int i = 0; i < t->nsplits; i++) {
        H5Dclose(t->splits[i].tok);
        H5Dclose(t->splits[i].crop);
        free(t->splits[i].mem_tok);
        free(t->splits[i].mem_crop);
    }
    if (t->file >= 0) H5Fclose(t->file);
    free(t->uuid);
    free(t->sha);
    free(t->path);
    free(t);
}

int tokens_vocab(const token_store *t) { return t->vocab; }
int tokens_grid(const token_store *t) { return t->grid; }
int tokens_views(const token_store *t) { return t->views; }
int tokens_input_size(const token_store *t) { return t->input; }
int tokens_image_height(const token_store *t) { return t->H; }
int tokens_image_width(const token_store *t) { return t->W; }
int tokens_image_channels(const token_store *t) { return t->C; }
const char *tokens_dataset_uuid(const token_store *t) { return t->uuid; }
const char *tokens_tokenizer_sha256(const token_store *t) { return t->sha; }
void tokens_set_cache_budget(token_store *t, size_t bytes) { t->budget = bytes; }

static tok_split *find_split(token_store *t, const char *split) {
    for (int i = 0; i < t->nsplits; i++)
        if (!strcmp(t->splits[i].name, split)) return &t->splits[i];
    return NULL;
}

int64_t tokens_count(const token_store *t, const char *split) {
    tok_split *s = find_split((token_store *)t, split);
    return s ? s->count : -1;
}

static void check_values(const token_store *t, const tok_split *s, const uint16_t *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (v[i] >= t->vocab)
            bad_tokens(t, "/%s/tokens holds %u, outside the vocabulary [0, %d)", s->name, v[i], t->vocab);
}

/* Load the whole split when it fits in what is left of the budget. */
static void try_cache(token_store *t, tok_split *s) {
    s->tried = 1;
    const size_t P = (size_t)t->grid * t->grid, rows = (size_t)s->count * t->views;
    const size_t bytes = rows * P * sizeof(uint16_t) + rows * 5 * sizeof(float);
    if (t->cached + bytes > t->budget) return;
    s->mem_tok = xmalloc(rows * P * sizeof(uint16_t) + 1);
    s->mem_crop = xmalloc(rows * 5 * sizeof(float) + 1);
    if (rows && (H5Dread(s->tok, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->mem_tok) < 0 ||
                 H5Dread(s->crop, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->mem_crop) < 0))
        bad_tokens(t, "cannot read /%s (file damaged or truncated?)", s->name);
    check_values(t, s, s->mem_tok, rows * P);
    t->cached += bytes;
}

typedef struct {
    int64_t row; /* index * K + view */
    int pos;     /* position in the request */
} req;

static int cmp_req(const void *a, const void *b) {
    const req *x = a, *y = b;
    return x->row < y->row ? -1 : x->row > y->row ? 1 : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The requested rows straight from the file: sorted, deduplicated, one hyperslab union per
 * dataset (HDF5 returns a union in file order, hence the sort). */
static void read_rows(token_store *t, tok_split *s, const req *r, int n, int32_t *tokens, crop_box *crops) {
    const int K = t->views, P = t->grid * t->grid;
    int64_t *rows = xmalloc((size_t)n * sizeof(int64_t));
    int *slot = xmalloc((size_t)n * sizeof(int)); /* r[j] is unique row slot[j] */
    int m = 0;
    for (int j = 0; j < n; j++) {
        if (m == 0 || rows[m - 1] != r[j].row) rows[m++] = r[j].row;
        slot[j] = m - 1;
    }
    uint16_t *tb = xmalloc((size_t)m * P * sizeof(uint16_t));
    float *cb = xmalloc((size_t)m * 5 * sizeof(float));
    hid_t dss[2] = {s->tok, s->crop};
    for (int k = 0; k < 2; k++) {
        hid_t fs = H5_CHECK(H5Dget_space(dss[k]));
        for (int j = 0; j < m; j++) {
            hsize_t start[4] = {(hsize_t)(rows[j] / K), (hsize_t)(rows[j] % K), 0, 0};
            hsize_t cnt[4] = {1, 1, (hsize_t)t->grid, (hsize_t)t->grid};
            if (k == 1) cnt[2] = 5;
            H5_CHECK(H5Sselect_hyperslab(fs, j ? H5S_SELECT_OR : H5S_SELECT_SET, start, NULL, cnt, NULL));
        }
        hsize_t mn = (hsize_t)m * (k == 0 ? (hsize_t)P : 5);
        hid_t ms = H5_CHECK(H5Screate_simple(1, &mn, NULL));
        herr_t rc = H5Dread(dss[k], k == 0 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT,
                            k == 0 ? (void *)tb : (void *)cb);
        H5Sclose(ms);
        H5Sclose(fs);
        if (rc < 0) bad_tokens(t, "cannot read /%s/%s (file damaged or truncated?)", s->name, k ? "crops" : "tokens");
    }
    check_values(t, s, tb, (size_t)m * P);
    for (int j = 0; j < n; j++) {
        const uint16_t *src = tb + (size_t)slot[j] * P;
        int32_t *dst = tokens + (size_t)r[j].pos * P;
        for (int p = 0; p < P; p++) dst[p] = src[p];
        if (crops) {
            const float *c = cb + (size_t)slot[j] * 5;
            crops[r[j].pos] = (crop_box){c[0], c[1], c[2], c[3], c[4] != 0.0f};
        }
    }
    free(rows);
    free(slot);
    free(tb);
    free(cb);
}

void tokens_read(token_store *t, const char *split, const int64_t *indices, const int *views, int n, int32_t *tokens,
                 crop_box *crops) {
    tok_split *s = find_split(t, split);
    if (!s) bad_tokens(t, "no split '%s' in the token store (tokenize the dataset store that has it)", split);
    const int K = t->views, P = t->grid * t->grid;
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= s->count || views[i] < 0 || views[i] >= K)
            beit_fatal(BEIT_EXIT_FAILURE, "tokens_read: (index %lld, view %d) outside [0, %lld) x [0, %d) of /%s",
                       (long long)indices[i], views[i], (long long)s->count, K, s->name);
    if (n <= 0) return;
    if (!s->tried) try_cache(t, s);
    if (s->mem_tok) {
        for (int i = 0; i < n; i++) {
            size_t row = (size_t)indices[i] * K + (size_t)views[i];
            const uint16_t *src = s->mem_tok + row * P;
            for (int p = 0; p < P; p++) tokens[(size_t)i * P + p] = src[p];
            if (crops) {
                const float *c = s->mem_crop + row * 5;
                crops[i] = (crop_box){c[0], c[1], c[2], c[3], c[4] != 0.0f};
            }
        }
        return;
    }
    req *r = xmalloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = (req){indices[i] * K + views[i], i};
    qsort(r, (size_t)n, sizeof *r, cmp_req);
    read_rows(t, s, r, n, tokens, crops);
    free(r);
}
