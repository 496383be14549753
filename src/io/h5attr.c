/* HDF5 attribute helpers (include/beit/h5attr.h). */
#include "beit/h5attr.h"

#include "beit/error.h"

#include <math.h>
#include <stdlib.h>

hid_t h5a_str_type(void) {
    hid_t t = H5_CHECK(H5Tcopy(H5T_C_S1));
    H5_CHECK(H5Tset_size(t, H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
    return t;
}

herr_t h5a_put(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int rank, hsize_t n, const void *buf) {
    hid_t sp = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    if (sp < 0) return -1;
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, mtype, buf);
    if (a >= 0 && H5Aclose(a) < 0) rc = -1;
    H5Sclose(sp);
    return rc;
}

herr_t h5a_put_str(hid_t obj, const char *name, const char *value) {
    hid_t t = h5a_str_type();
    herr_t rc = h5a_put(obj, name, t, t, 0, 1, &value);
    H5Tclose(t);
    return rc;
}

herr_t h5a_put_strs(hid_t obj, const char *name, const char *const *values, int n) {
    hid_t t = h5a_str_type();
    herr_t rc = h5a_put(obj, name, t, t, 1, (hsize_t)n, values);
    H5Tclose(t);
    return rc;
}

herr_t h5a_put_i32(hid_t obj, const char *name, int32_t v) {
    return h5a_put(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, 0, 1, &v);
}

/* The attribute `name` of obj opened, or -1 if it is missing or cannot be opened. */
static hid_t open_attr(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return -1;
    return H5Aopen(obj, name, H5P_DEFAULT);
}

/* Memory type that reads fixed-length strings of len bytes as len + 1, NUL-terminated. */
static hid_t fixed_str_type(size_t len) {
    hid_t m = H5Tcopy(H5T_C_S1);
    H5Tset_size(m, len + 1);
    H5Tset_strpad(m, H5T_STR_NULLTERM);
    return m;
}

/* Read a string attribute (variable or fixed length) into a malloc'd string; NULL if the
 * attribute is missing or not a (scalar or 1-element) string. */
char *h5a_get_str(hid_t obj, const char *name) {
    hid_t a = open_attr(obj, name);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char *out = NULL;
    if (t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(t) > 0) {
            hid_t m = h5a_str_type();
            char *p = NULL;
            if (H5Aread(a, m, &p) >= 0 && p) {
                out = xstrdup(p);
                H5free_memory(p);
            }
            H5Tclose(m);
        } else {
            size_t n = H5Tget_size(t);
            hid_t m = fixed_str_type(n);
            out = xcalloc(n + 2, 1);
            if (H5Aread(a, m, out) < 0) {
                free(out);
                out = NULL;
            }
            H5Tclose(m);
        }
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return out;
}

/* String array attribute -> malloc'd array of n malloc'd strings; NULL on any mismatch. */
char **h5a_get_strs(hid_t obj, const char *name, int *n_out) {
    *n_out = 0;
    hid_t a = open_attr(obj, name);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    char **out = NULL;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (t >= 0 && n > 0 && H5Tget_class(t) == H5T_STRING) {
        out = xcalloc((size_t)n, sizeof *out);
        int ok = 0;
        if (H5Tis_variable_str(t) > 0) {
            hid_t m = h5a_str_type();
            char **p = xcalloc((size_t)n, sizeof *p);
            if (H5Aread(a, m, p) >= 0) {
                ok = 1;
                for (hssize_t i = 0; i < n; i++) {
                    out[i] = xstrdup(p[i] ? p[i] : "");
                    if (p[i]) H5free_memory(p[i]);
                }
            }
            free(p);
            H5Tclose(m);
        } else {
            size_t len = H5Tget_size(t);
            hid_t m = fixed_str_type(len);
            char *buf = xcalloc((size_t)n, len + 1);
            if (H5Aread(a, m, buf) >= 0) {
                ok = 1;
                for (hssize_t i = 0; i < n; i++) out[i] = xstrdup(buf + (size_t)i * (len + 1));
            }
            free(buf);
            H5Tclose(m);
        }
        if (!ok) {
            for (hssize_t i = 0; i < n; i++) free(out[i]);
            free(out);
            out = NULL;
        } else {
            *n_out = (int)n;
        }
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return out;
}

/* Numeric attribute with n elements read as double (converted by HDF5). Returns 0 / -1. */
int h5a_get_f64s(hid_t obj, const char *name, double *v, int n) {
    hid_t a = open_attr(obj, name);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && sp >= 0 && H5Sget_simple_extent_npoints(sp) == n)
        rc = H5Aread(a, H5T_NATIVE_DOUBLE, v) < 0 ? -1 : 0;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int h5a_get_int(hid_t obj, const char *name, int64_t *v) {
    double d;
    if (h5a_get_f64s(obj, name, &d, 1) != 0 || d != floor(d)) return -1;
    *v = (int64_t)d;
    return 0;
}

herr_t h5a_put_i64(hid_t obj, const char *name, int64_t v) {
    return h5a_put(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, 1, &v);
}
