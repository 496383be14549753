/* `beit data info`: a dataset store described for people (layout, attributes, per-class
 * counts, mean/std, pixel-class frequencies), read through the validating reader (store.h). */
#include "beit/store.h"

#include "beit/error.h"

#include <stdio.h>
#include <stdlib.h>

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

static void print_attr_value(FILE *f, hid_t a) {
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int is_array = H5Sget_simple_extent_ndims(sp) > 0;
    H5T_class_t cls = H5Tget_class(t);
    const hssize_t max_show = 16;
    if (is_array) fprintf(f, "[");
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
        for (hssize_t i = 0; i < n && i < max_show; i++) fprintf(f, "%s\"%s\"", i ? ", " : "", v[i] ? v[i] : "");
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
            if (cls == H5T_INTEGER) fprintf(f, "%s%.0f", i ? ", " : "", v[i]);
            else fprintf(f, "%s%.6g", i ? ", " : "", v[i]);
        }
        free(v);
    } else {
        fprintf(f, "(unprintable)");
    }
    if (n > max_show) fprintf(f, ", ... (%lld values)", (long long)n);
    if (is_array) fprintf(f, "]");
    H5Tclose(t);
    H5Sclose(sp);
}

typedef struct {
    FILE *f;
    const char *indent;
} attr_ctx;

static herr_t print_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    const attr_ctx *ctx = data;
    FILE *f = ctx->f;
    const char *indent = ctx->indent;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 0;
    char tn[32];
    hid_t t = H5Aget_type(a);
    type_name(t, tn, sizeof tn);
    H5Tclose(t);
    fprintf(f, "%s%-16s %-8s ", indent, name, tn);
    print_attr_value(f, a);
    fprintf(f, "\n");
    H5Aclose(a);
    return 0;
}

static void print_dataset_line(FILE *f, hid_t d, const char *path) {
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
    fprintf(f, "  %-18s %-7s %-20s %-22s %-16s %s -> %s on disk", path, tn, dims, chunk, filters, raw, disk);
    if (disk_b > 0) fprintf(f, " (%.1fx)", raw_b / disk_b);
    fprintf(f, "\n");
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(sp);
}

/* Walk groups in name order and print each object; attributes of non-root objects inline. */
static void print_tree(FILE *f, hid_t g, const char *prefix) {
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) return;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
        char *path = xasprintf("%s/%s", prefix, name);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o >= 0) {
            if (H5Iget_type(o) == H5I_GROUP) {
                fprintf(f, "  %-18s group", path);
                int64_t count;
                if (H5Aexists(o, "count") > 0) {
                    hid_t a = H5Aopen(o, "count", H5P_DEFAULT);
                    if (H5Aread(a, H5T_NATIVE_INT64, &count) >= 0) fprintf(f, "   count = %lld", (long long)count);
                    H5Aclose(a);
                }
                fprintf(f, "\n");
                print_tree(f, o, path);
            } else if (H5Iget_type(o) == H5I_DATASET) {
                print_dataset_line(f, o, path);
            }
            H5Oclose(o);
        }
        free(path);
    }
}

/* Samples per class of every split; returns 1 when some label is outside [0, num_classes). */
static int print_class_counts(FILE *f, beit_store *s) {
    fprintf(f, "\nsamples per class\n  %-4s %-20s", "#", "class");
    int64_t **counts = xcalloc((size_t)s->nsplits, sizeof *counts);
    int64_t *bad = xcalloc((size_t)s->nsplits, sizeof *bad);
    for (int i = 0; i < s->nsplits; i++) {
        fprintf(f, " %10s", s->splits[i].name);
        counts[i] = xcalloc((size_t)s->num_classes, sizeof **counts);
        int32_t *lab = xmalloc((size_t)(s->splits[i].count + 1) * sizeof *lab);
        store_read_labels(s, s->splits[i].name, lab);
        for (int64_t j = 0; j < s->splits[i].count; j++) {
            if (lab[j] >= 0 && lab[j] < s->num_classes) counts[i][lab[j]]++;
            else bad[i]++;
        }
        free(lab);
    }
    fprintf(f, "\n");
    for (int k = 0; k < s->num_classes; k++) {
        fprintf(f, "  %-4d %-20s", k, s->class_names[k]);
        for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10lld", (long long)counts[i][k]);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-4s %-20s", "", "total");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10lld", (long long)s->splits[i].count);
    fprintf(f, "\n");
    int any_bad = 0;
    for (int i = 0; i < s->nsplits; i++) {
        if (bad[i]) {
            fprintf(f, "  warning: split %s has %lld labels outside 0..%d\n", s->splits[i].name, (long long)bad[i],
                    s->num_classes - 1);
            any_bad = 1;
        }
        free(counts[i]);
    }
    free(counts);
    free(bad);
    return any_bad;
}

/* Per-class pixel frequencies of every split of a store with masks: every mask is read (and
 * so checked by store_read_masks). */
static void print_pixel_freqs(FILE *f, beit_store *s) {
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
    fprintf(f, "\npixels per class (%% of the split's pixels)\n  %-4s %-20s", "#", "class");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10s", s->splits[i].name);
    fprintf(f, "\n");
    for (int k = 0; k < s->num_classes; k++) {
        fprintf(f, "  %-4d %-20s", k, s->class_names[k]);
        for (int i = 0; i < s->nsplits; i++) fprintf(f, " %9.3f%%", freq[i][k]);
        fprintf(f, "\n");
    }
    for (int i = 0; i < s->nsplits; i++) free(freq[i]);
    free(freq);
    free(idx);
    free(m);
}

int store_describe(FILE *f, const char *path) {
    beit_store *s = store_open(path, MPI_COMM_NULL); /* validates; errors exit 3 */
    int C = s->channels;

    fprintf(f, "%s: beit dataset store (format %s, version %d)\n", path, STORE_FORMAT, STORE_FORMAT_VERSION);
    fprintf(f, "  source       %s\n", s->source);
    fprintf(f, "  uuid         %s\n", s->uuid);
    fprintf(f, "  created_by   %s\n", s->created_by);
    fprintf(f, "  images       %d x %d x %d (height x width x channels), uint8\n", s->height, s->width, C);
    fprintf(f, "  classes      %d\n", s->num_classes);
    if (store_has_masks(s))
        fprintf(f, "  masks        %d x %d per-pixel class, uint8 (pixel_labels = 1)\n", s->height, s->width);
    fprintf(f, "  splits      ");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %s (%lld)", s->splits[i].name, (long long)s->splits[i].count);
    fprintf(f, "\n  mean         [");
    for (int k = 0; k < C; k++) fprintf(f, "%s%.6f", k ? ", " : "", s->mean[k]);
    fprintf(f, "]  (per channel, pixels scaled to [0,1], over split %s)\n  std          [", s->stats_split);
    for (int k = 0; k < C; k++) fprintf(f, "%s%.6f", k ? ", " : "", s->std[k]);
    fprintf(f, "]\n\nlayout\n  %-18s group\n", "/");
    print_tree(f, s->file, "");

    fprintf(f, "\nattributes of /\n");
    hsize_t idx = 0;
    attr_ctx actx = {f, "  "};
    H5Aiterate2(s->file, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr_cb, &actx);

    int any_bad = print_class_counts(f, s);
    if (store_has_masks(s)) print_pixel_freqs(f, s);
    fflush(f);
    int nk = s->num_classes;
    store_close(s);
    if (any_bad) beit_fatal_user(BEIT_EXIT_DATA, "%s: labels outside [0, num_classes) (expected 0..%d)", path, nk - 1);
    return 0;
}
