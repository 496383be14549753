/* `beit data info`: any file beit writes, described for people. The kind is told by the root
 * attribute 'format' (include/beit/describe.h); the HDF5 layout and attribute printers are
 * shared by the three describers. */
#include "beit/describe.h"

#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/h5attr.h"
#include "beit/store.h"
#include "beit/tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const char *skip; /* an attribute not printed, or NULL */
} attr_ctx;

static herr_t print_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    const attr_ctx *ctx = data;
    FILE *f = ctx->f;
    const char *indent = ctx->indent;
    if (ctx->skip && !strcmp(name, ctx->skip)) return 0;
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
            else if (id == H5Z_FILTER_FLETCHER32)
                o += (size_t)snprintf(filters + o, sizeof filters - o, "%sfletcher32", i ? "+" : "");
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

void describe_layout(FILE *f, hid_t file) {
    fprintf(f, "\nlayout\n  %-18s group\n", "/");
    print_tree(f, file, "");
}

void describe_attrs(FILE *f, hid_t obj, const char *indent, const char *skip) {
    hsize_t idx = 0;
    attr_ctx actx = {f, indent, skip};
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr_cb, &actx);
}

int beit_describe(FILE *f, const char *path, int verify) {
    char *fmt = NULL;
    if (H5Fis_hdf5(path) > 0) {
        hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (h >= 0) {
            fmt = h5a_get_str(h, "format");
            H5Fclose(h);
        }
    }
    int rc;
    if (fmt && !strcmp(fmt, TOKENS_FORMAT)) rc = tokens_describe(f, path, verify);
    else if (fmt && !strcmp(fmt, CKPT_FORMAT)) rc = ckpt_describe(f, path, verify);
    else rc = store_describe(f, path, verify); /* a dataset store, or its error for anything else */
    free(fmt);
    return rc;
}
