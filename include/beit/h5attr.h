/* h5attr.h: HDF5 attribute helpers shared by the dataset store, the token store and
 * checkpoints. Strings are written variable-length UTF-8 (h5py reads them as str); readers
 * accept variable- or fixed-length strings. Writers return a negative value on failure (the
 * caller decides whether that is an I/O error of its file); readers return NULL / -1 when
 * the attribute is missing or of another kind. */
#ifndef BEIT_H5ATTR_H
#define BEIT_H5ATTR_H

#include <hdf5.h>
#include <stdint.h>

hid_t h5a_str_type(void); /* variable-length UTF-8; close with H5Tclose */
/* rank 0: scalar; rank 1: n elements */
herr_t h5a_put(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int rank, hsize_t n, const void *buf);
herr_t h5a_put_str(hid_t obj, const char *name, const char *value);
herr_t h5a_put_strs(hid_t obj, const char *name, const char *const *values, int n);
herr_t h5a_put_i32(hid_t obj, const char *name, int32_t v);
herr_t h5a_put_i64(hid_t obj, const char *name, int64_t v);
/* malloc'd string of a scalar (or 1-element) string attribute */
char *h5a_get_str(hid_t obj, const char *name);
/* malloc'd array of *n_out malloc'd strings */
char **h5a_get_strs(hid_t obj, const char *name, int *n_out);
/* n numeric elements read as double (converted by HDF5); 0 or -1 */
int h5a_get_f64s(hid_t obj, const char *name, double *v, int n);
/* an integer-valued numeric attribute; 0 or -1 */
int h5a_get_int(hid_t obj, const char *name, int64_t *v);

#endif
