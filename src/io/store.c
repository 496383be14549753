/* The HDF5 dataset store, read side: validated read-only access (training, evaluation,
 * `beit data info`) with a block cache. Layout and attributes: include/beit/store.h; the
 * writer is store_writer.c. */
#include "beit/store.h"

#include "beit/h5attr.h"
#include "beit/error.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ======================================================================================== */
/* reader                                                                                   */
/* ======================================================================================== */

BEIT_NORETURN static void bad_store(beit_store *s, const char *fmt, ...) BEIT_PRINTF(2, 3);
static void bad_store(beit_store *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    beit_vfatal_user_in(BEIT_EXIT_DATA, s->path, fmt, ap);
}

static const char *SPLIT_NAMES_HINT = "groups holding 'images' and 'labels', e.g. /train and /test";

/* HDF5's own chunk cache is turned off for images: store_read keeps decompressed blocks. */
static hid_t dataset_open_uncached(hid_t group, const char *name) {
    hid_t dapl = H5_CHECK(H5Pcreate(H5P_DATASET_ACCESS));
    H5_CHECK(H5Pset_chunk_cache(dapl, 0, 0, 1.0));
    hid_t d = H5Dopen2(group, name, dapl);
    H5Pclose(dapl);
    return d;
}

/* Check dataset /<split>/<ds>: uint8 [count, dims...] (nd = 1 + number of dims, at most 4), and
 * return its block length: the chunk length, or ~1 MiB of samples for contiguous data (e.g.
 * written by h5py). `from` names the attributes the expected shape comes from. */
static int64_t check_u8_samples(beit_store *s, hid_t g, const char *split, const char *ds, int nd, int64_t count,
                                const int *dims_want, const char *from) {
    hid_t d = H5Dopen2(g, ds, H5P_DEFAULT);
    if (d < 0)
        bad_store(s, "dataset /%s/%s cannot be opened (expected uint8 [N,%s])", split, ds, nd == 4 ? "H,W,C" : "H,W");
    hid_t t = H5Dget_type(d), space = H5Dget_space(d);
    hsize_t dims[4] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == nd) H5Sget_simple_extent_dims(space, dims, NULL);
    if (H5Tget_class(t) != H5T_INTEGER || H5Tget_size(t) != 1 || H5Tget_sign(t) != H5T_SGN_NONE)
        bad_store(s, "dataset /%s/%s has the wrong type (expected uint8)", split, ds);
    int same = rank == nd && (int64_t)dims[0] == count;
    for (int k = 1; k < nd && same; k++) same = (int)dims[k] == dims_want[k - 1];
    if (!same) {
        char got[96] = "", want[96] = "";
        for (int k = 0; k < nd; k++) {
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", k ? "," : "", (unsigned long long)dims[k]);
            if (k == 0) snprintf(want, sizeof want, "%lld", (long long)count);
            else snprintf(want + strlen(want), sizeof want - strlen(want), ",%d", dims_want[k - 1]);
        }
        bad_store(s, "dataset /%s/%s has shape %s[%s] (expected [%s] from the %s)", split, ds,
                  rank == nd ? "" : "of wrong rank ", got, want, from);
    }
    size_t sample_bytes = 1;
    for (int k = 0; k < nd - 1; k++) sample_bytes *= (size_t)dims_want[k];
    int64_t bn = (int64_t)(STORE_CHUNK_TARGET_BYTES / sample_bytes);
    hid_t dcpl = H5Dget_create_plist(d);
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cd[4];
        if (H5Pget_chunk(dcpl, nd, cd) == nd) bn = (int64_t)cd[0];
    }
    H5Pclose(dcpl);
    H5Tclose(t);
    H5Sclose(space);
    H5Dclose(d);
    return bn < 1 ? 1 : bn;
}

/* /<split>/masks uint8 [count, H, W] (stores with pixel_labels = 1) */
static void validate_masks(beit_store *s, hid_t g, const char *name, beit_store_split *sp) {
    if (H5Lexists(g, "masks", H5P_DEFAULT) <= 0)
        bad_store(s, "dataset /%s/masks is missing (expected uint8 [%lld,%d,%d]: the store has pixel_labels = 1)", name,
                  (long long)sp->count, s->height, s->width);
    const int hw[2] = {s->height, s->width};
    sp->mask_block_n = check_u8_samples(s, g, name, "masks", 3, sp->count, hw, "count, height and width attributes");
    sp->mask_nblocks = (sp->count + sp->mask_block_n - 1) / sp->mask_block_n;
    sp->block_mask = xcalloc((size_t)sp->mask_nblocks + 1, sizeof *sp->block_mask);
    sp->mask_used = xcalloc((size_t)sp->mask_nblocks + 1, sizeof *sp->mask_used);
    sp->masks = dataset_open_uncached(g, "masks");
    H5_CHECK(sp->masks);
}

static void validate_split(beit_store *s, hid_t g, const char *name, beit_store_split *sp) {
    snprintf(sp->name, sizeof sp->name, "%s", name);
    sp->images = sp->labels = sp->masks = -1;
    int64_t count = -1;
    if (h5a_get_int(g, "count", &count) != 0 || count < 0)
        bad_store(s, "group /%s: missing or invalid attribute 'count' (expected the split's sample count, int64)",
                  name);
    sp->count = count;

    /* images [count, H, W, C] uint8 */
    const int hwc[3] = {s->height, s->width, s->channels};
    sp->block_n = check_u8_samples(s, g, name, "images", 4, count, hwc, "count, height, width, channels attributes");
    sp->nblocks = (count + sp->block_n - 1) / sp->block_n;
    sp->block_img = xcalloc((size_t)sp->nblocks + 1, sizeof *sp->block_img);
    sp->block_lab = xcalloc((size_t)sp->nblocks + 1, sizeof *sp->block_lab);
    sp->block_used = xcalloc((size_t)sp->nblocks + 1, sizeof *sp->block_used);
    sp->images = dataset_open_uncached(g, "images");
    H5_CHECK(sp->images);

    /* labels [count] integer */
    if (H5Lexists(g, "labels", H5P_DEFAULT) <= 0)
        bad_store(s, "dataset /%s/labels is missing (expected integer [%lld])", name, (long long)count);
    sp->labels = H5Dopen2(g, "labels", H5P_DEFAULT);
    if (sp->labels < 0) bad_store(s, "dataset /%s/labels cannot be opened (expected integer [N])", name);
    hid_t t = H5Dget_type(sp->labels), space = H5Dget_space(sp->labels);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t ld = 0;
    if (rank == 1) H5Sget_simple_extent_dims(space, &ld, NULL);
    if (H5Tget_class(t) != H5T_INTEGER)
        bad_store(s, "dataset /%s/labels has the wrong type (expected uint8 or int32)", name);
    if (rank != 1 || (int64_t)ld != count)
        bad_store(s, "dataset /%s/labels has %s%llu entries (expected [%lld], the count attribute)", name,
                  rank == 1 ? "" : "the wrong rank or ", (unsigned long long)ld, (long long)count);
    H5Tclose(t);
    H5Sclose(space);
    if (s->pixel_labels) validate_masks(s, g, name, sp);
}

beit_store *store_open(const char *path, MPI_Comm comm) {
    beit_store *s = xcalloc(1, sizeof *s);
    s->path = xstrdup(path);
    s->file = -1;
    s->cache_budget = STORE_CACHE_DEFAULT;
    struct stat st;
    if (stat(path, &st) != 0)
        bad_store(s, "cannot open: %s (expected a dataset store made by 'beit data import')", strerror(errno));
    if (!S_ISREG(st.st_mode)) bad_store(s, "not a regular file (expected an HDF5 dataset store)");
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) bad_store(s, "not an HDF5 file (expected a dataset store made by 'beit data import')");
    hid_t fapl = H5_CHECK(H5Pcreate(H5P_FILE_ACCESS));
    if (comm != MPI_COMM_NULL) {
        H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
        s->mpio = 1;
    }
    s->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (s->file < 0) bad_store(s, "cannot open as HDF5 (expected a readable dataset store)");

    char *fmt = h5a_get_str(s->file, "format");
    if (!fmt)
        bad_store(s,
                  "not a beit dataset store: no 'format' attribute (expected format = \"%s\"; "
                  "create stores with 'beit data import')",
                  STORE_FORMAT);
    if (strcmp(fmt, STORE_FORMAT) != 0)
        bad_store(s, "attribute 'format' is \"%s\" (expected \"%s\")", fmt, STORE_FORMAT);
    free(fmt);
    int64_t v;
    if (h5a_get_int(s->file, "format_version", &v) != 0)
        bad_store(s, "missing attribute 'format_version' (expected %d)", STORE_FORMAT_VERSION);
    if (v != STORE_FORMAT_VERSION)
        bad_store(s, "format_version %lld is not supported (expected %d)", (long long)v, STORE_FORMAT_VERSION);

    const char *ints[4] = {"height", "width", "channels", "num_classes"};
    int *dst[4] = {&s->height, &s->width, &s->channels, &s->num_classes};
    for (int i = 0; i < 4; i++) {
        if (h5a_get_int(s->file, ints[i], &v) != 0 || v < 1 || v > 1000000)
            bad_store(s, "missing or invalid attribute '%s' (expected a positive integer)", ints[i]);
        *dst[i] = (int)v;
    }
    if (s->channels > STORE_MAX_CHANNELS)
        bad_store(s, "attribute 'channels' is %d (expected 1..%d)", s->channels, STORE_MAX_CHANNELS);
    if (h5a_get_f64s(s->file, "mean", s->mean, s->channels) != 0)
        bad_store(s, "missing or invalid attribute 'mean' (expected float64[%d])", s->channels);
    if (h5a_get_f64s(s->file, "std", s->std, s->channels) != 0)
        bad_store(s, "missing or invalid attribute 'std' (expected float64[%d])", s->channels);
    /* the statistics every model input is normalised with: a NaN or a zero std would only show
     * up as "loss is NaN" at step 1 */
    for (int ch = 0; ch < s->channels; ch++) {
        if (!isfinite(s->mean[ch]) || s->mean[ch] < 0 || s->mean[ch] > 1)
            bad_store(s, "attribute 'mean'[%d] is %g (expected a finite pixel mean in [0, 1])", ch, s->mean[ch]);
        if (!isfinite(s->std[ch]) || s->std[ch] <= 0 || s->std[ch] > 1)
            bad_store(s, "attribute 'std'[%d] is %g (expected a finite pixel std in (0, 1])", ch, s->std[ch]);
    }
    char *uuid = h5a_get_str(s->file, "uuid");
    if (!uuid || !*uuid || strlen(uuid) >= sizeof s->uuid)
        bad_store(s, "missing or invalid attribute 'uuid' (expected the dataset's UUID string)");
    snprintf(s->uuid, sizeof s->uuid, "%s", uuid);
    free(uuid);
    s->source = h5a_get_str(s->file, "source");
    if (!s->source) s->source = xstrdup("");
    s->created_by = h5a_get_str(s->file, "created_by");
    if (!s->created_by) s->created_by = xstrdup("");
    s->stats_split = h5a_get_str(s->file, "stats_split");
    if (!s->stats_split) s->stats_split = xstrdup("train");
    int nn = 0;
    s->class_names = h5a_get_strs(s->file, "class_names", &nn);
    if (!s->class_names || nn != s->num_classes)
        bad_store(s, "attribute 'class_names' %s (expected %d strings, one per class)",
                  s->class_names ? "has the wrong length" : "is missing or not strings", s->num_classes);
    if (H5Aexists(s->file, "pixel_labels") > 0) {
        if (h5a_get_int(s->file, "pixel_labels", &v) != 0 || (v != 0 && v != 1))
            bad_store(s, "invalid attribute 'pixel_labels' (expected 1 = every split has masks, or 0)");
        s->pixel_labels = (int)v;
        if (s->pixel_labels && s->num_classes > 256)
            bad_store(s, "pixel_labels = 1 with %d classes (expected at most 256: masks are uint8)", s->num_classes);
    }

    /* splits: root groups, in name order */
    H5G_info_t gi;
    H5_CHECK(H5Gget_info(s->file, &gi));
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(s->file, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
            continue;
        hid_t obj = H5Oopen(s->file, name, H5P_DEFAULT);
        if (obj < 0) continue;
        if (H5Iget_type(obj) != H5I_GROUP) {
            H5Oclose(obj);
            continue;
        }
        int has_i = H5Lexists(obj, "images", H5P_DEFAULT) > 0, has_l = H5Lexists(obj, "labels", H5P_DEFAULT) > 0;
        if (!has_i && !has_l) {
            H5Oclose(obj);
            continue;
        }
        if (!has_i) bad_store(s, "group /%s has labels but no 'images' dataset (expected both)", name);
        if (s->nsplits == STORE_MAX_SPLITS || strlen(name) >= sizeof s->splits[0].name)
            bad_store(s, "too many splits or split name too long at /%s (expected at most %d splits)", name,
                      STORE_MAX_SPLITS);
        validate_split(s, obj, name, &s->splits[s->nsplits++]);
        H5Oclose(obj);
    }
    if (s->nsplits == 0) bad_store(s, "no splits (expected %s)", SPLIT_NAMES_HINT);
    /* "train" first, the rest in name order: the order info prints */
    for (int i = 1; i < s->nsplits; i++)
        if (!strcmp(s->splits[i].name, "train")) {
            beit_store_split t = s->splits[i];
            memmove(&s->splits[1], &s->splits[0], (size_t)i * sizeof t);
            s->splits[0] = t;
        }
    return s;
}

void store_close(beit_store *s) {
    if (!s) return;
    for (int i = 0; i < s->nsplits; i++) {
        beit_store_split *sp = &s->splits[i];
        H5Dclose(sp->images);
        H5Dclose(sp->labels);
        if (sp->masks >= 0) H5Dclose(sp->masks);
        for (int64_t b = 0; b < sp->nblocks; b++) {
            free(sp->block_img[b]);
            free(sp->block_lab[b]);
        }
        for (int64_t b = 0; b < sp->mask_nblocks; b++) free(sp->block_mask[b]);
        free(sp->block_img);
        free(sp->block_lab);
        free(sp->block_used);
        free(sp->block_mask);
        free(sp->mask_used);
    }
    if (s->file >= 0) H5Fclose(s->file);
    for (int k = 0; k < s->num_classes && s->class_names; k++) free(s->class_names[k]);
    free(s->class_names);
    free(s->source);
    free(s->created_by);
    free(s->stats_split);
    free(s->loaded_split);
    free(s->loaded_kind);
    free(s->loaded_block);
    free(s->path);
    free(s);
}

static beit_store_split *find_split(const beit_store *s, const char *split) {
    for (int i = 0; i < s->nsplits; i++)
        if (strcmp(s->splits[i].name, split) == 0) return (beit_store_split *)&s->splits[i];
    return NULL;
}

static beit_store_split *need_split(const beit_store *s, const char *split) {
    beit_store_split *sp = find_split(s, split);
    if (!sp) {
        char have[512] = "";
        for (int i = 0; i < s->nsplits; i++) {
            strncat(have, i ? ", " : "", sizeof have - strlen(have) - 1);
            strncat(have, s->splits[i].name, sizeof have - strlen(have) - 1);
        }
        beit_fatal_user(BEIT_EXIT_DATA, "%s: no split '%s' (expected one of: %s)", s->path, split, have);
    }
    return sp;
}

int store_has_split(const beit_store *s, const char *split) { return find_split(s, split) != NULL; }
int64_t store_split_count(const beit_store *s, const char *split) { return need_split(s, split)->count; }
int store_height(const beit_store *s) { return s->height; }
int store_width(const beit_store *s) { return s->width; }
int store_channels(const beit_store *s) { return s->channels; }
int store_num_classes(const beit_store *s) { return s->num_classes; }
size_t store_image_bytes(const beit_store *s) { return (size_t)s->height * s->width * s->channels; }
const char *store_uuid(const beit_store *s) { return s->uuid; }
const char *store_class_name(const beit_store *s, int k) {
    return k >= 0 && k < s->num_classes ? s->class_names[k] : "?";
}
const double *store_mean(const beit_store *s) { return s->mean; }
const double *store_std(const beit_store *s) { return s->std; }
int store_has_masks(const beit_store *s) { return s->pixel_labels; }

/* Cache entries are blocks of one of two kinds: images + labels (kind 0, block_n samples)
 * or masks (kind 1, mask_block_n samples). */
enum { KIND_IMAGES = 0, KIND_MASKS = 1 };

static size_t block_bytes(const beit_store *s, const beit_store_split *sp, int kind, int64_t b) {
    int64_t bn = kind == KIND_MASKS ? sp->mask_block_n : sp->block_n;
    int64_t n = sp->count - b * bn < bn ? sp->count - b * bn : bn;
    if (kind == KIND_MASKS) return (size_t)n * s->height * s->width;
    return (size_t)n * (store_image_bytes(s) + sizeof(int32_t));
}

static uint64_t entry_used(const beit_store *s, int i) {
    const beit_store_split *sp = &s->splits[s->loaded_split[i]];
    return s->loaded_kind[i] == KIND_MASKS ? sp->mask_used[s->loaded_block[i]] : sp->block_used[s->loaded_block[i]];
}

/* Drop least recently used blocks (of any split and kind) until `need` more bytes fit the
 * budget. */
static void cache_make_room(beit_store *s, size_t need) {
    while (s->nloaded > 0 && s->cache_bytes + need > s->cache_budget) {
        int victim = 0;
        for (int i = 1; i < s->nloaded; i++)
            if (entry_used(s, i) < entry_used(s, victim)) victim = i;
        beit_store_split *vs = &s->splits[s->loaded_split[victim]];
        int64_t vb = s->loaded_block[victim];
        int kind = s->loaded_kind[victim];
        s->cache_bytes -= block_bytes(s, vs, kind, vb);
        if (kind == KIND_MASKS) {
            free(vs->block_mask[vb]);
            vs->block_mask[vb] = NULL;
        } else {
            free(vs->block_img[vb]);
            free(vs->block_lab[vb]);
            vs->block_img[vb] = NULL;
            vs->block_lab[vb] = NULL;
        }
        s->nloaded--;
        s->loaded_split[victim] = s->loaded_split[s->nloaded];
        s->loaded_kind[victim] = s->loaded_kind[s->nloaded];
        s->loaded_block[victim] = s->loaded_block[s->nloaded];
    }
}

static void cache_add(beit_store *s, beit_store_split *sp, int kind, int64_t b) {
    s->cache_bytes += block_bytes(s, sp, kind, b);
    if (s->nloaded == s->loaded_cap) {
        s->loaded_cap = s->loaded_cap ? 2 * s->loaded_cap : 64;
        s->loaded_split = xrealloc(s->loaded_split, (size_t)s->loaded_cap * sizeof *s->loaded_split);
        s->loaded_kind = xrealloc(s->loaded_kind, (size_t)s->loaded_cap * sizeof *s->loaded_kind);
        s->loaded_block = xrealloc(s->loaded_block, (size_t)s->loaded_cap * sizeof *s->loaded_block);
    }
    s->loaded_split[s->nloaded] = (int)(sp - s->splits);
    s->loaded_kind[s->nloaded] = kind;
    s->loaded_block[s->nloaded] = b;
    s->nloaded++;
}

/* Read the hyperslab off[rank], cnt[rank] of dataset ds (/<split>/<what>; dim 0 = samples) into
 * buf. Callers pass whole chunks, so HDF5 inflates each chunk exactly once. */
static void read_samples(const beit_store *s, const beit_store_split *sp, hid_t ds, const char *what, hid_t mtype,
                         int rank, const hsize_t *off, const hsize_t *cnt, void *buf) {
    hid_t fs = H5_CHECK(H5Dget_space(ds));
    H5_CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL));
    hid_t ms = H5_CHECK(H5Screate_simple(rank, cnt, NULL));
    if (H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, buf) < 0) {
        H5Eprint2(H5E_DEFAULT, stderr);
        beit_fatal_user(BEIT_EXIT_DATA, "%s: cannot read /%s/%s samples %lld..%lld (expected a readable store)",
                        s->path, sp->name, what, (long long)off[0], (long long)(off[0] + cnt[0] - 1));
    }
    H5Sclose(ms);
    H5Sclose(fs);
}

/* Read block b of a split (images and labels). */
static void load_block(beit_store *s, beit_store_split *sp, int64_t b) {
    size_t ib = store_image_bytes(s);
    int64_t start = b * sp->block_n, n = sp->count - start < sp->block_n ? sp->count - start : sp->block_n;
    cache_make_room(s, block_bytes(s, sp, KIND_IMAGES, b));
    uint8_t *img = xmalloc((size_t)n * ib);
    int32_t *lab = xmalloc((size_t)n * sizeof *lab);
    hsize_t off[4] = {(hsize_t)start, 0, 0, 0};
    hsize_t cnt[4] = {(hsize_t)n, (hsize_t)s->height, (hsize_t)s->width, (hsize_t)s->channels};
    read_samples(s, sp, sp->images, "images", H5T_NATIVE_UINT8, 4, off, cnt, img);
    read_samples(s, sp, sp->labels, "labels", H5T_NATIVE_INT32, 1, off, cnt, lab);
    for (int64_t i = 0; i < n; i++)
        if (lab[i] < 0 || lab[i] >= s->num_classes) {
            int bad = lab[i];
            free(img); /* the job ends here: nothing is left allocated behind the message */
            free(lab);
            beit_fatal_user(BEIT_EXIT_DATA, "%s: dataset /%s/labels: label %d at index %lld (expected 0..%d)", s->path,
                            sp->name, bad, (long long)(start + i), s->num_classes - 1);
        }
    sp->block_img[b] = img;
    sp->block_lab[b] = lab;
    cache_add(s, sp, KIND_IMAGES, b);
}

/* Read mask block b of a split (one chunk-aligned hyperslab) and check every pixel label. */
static void load_mask_block(beit_store *s, beit_store_split *sp, int64_t b) {
    size_t mb = (size_t)s->height * s->width;
    int64_t start = b * sp->mask_block_n;
    int64_t n = sp->count - start < sp->mask_block_n ? sp->count - start : sp->mask_block_n;
    cache_make_room(s, block_bytes(s, sp, KIND_MASKS, b));
    uint8_t *m = xmalloc((size_t)n * mb);
    hsize_t off[3] = {(hsize_t)start, 0, 0};
    hsize_t cnt[3] = {(hsize_t)n, (hsize_t)s->height, (hsize_t)s->width};
    read_samples(s, sp, sp->masks, "masks", H5T_NATIVE_UINT8, 3, off, cnt, m);
    for (int64_t i = 0; i < n; i++)
        for (size_t p = 0; p < mb; p++) {
            int v = m[(size_t)i * mb + p];
            if (v >= s->num_classes) {
                free(m); /* the job ends here: nothing is left allocated behind the message */
                beit_fatal_user(BEIT_EXIT_DATA,
                                "%s: /%s/masks sample %lld has pixel label %d outside [0, %d) at row %d, column %d "
                                "(expected a class index of class_names)",
                                s->path, sp->name, (long long)(start + i), v, s->num_classes, (int)(p / s->width),
                                (int)(p % s->width));
            }
        }
    sp->block_mask[b] = m;
    cache_add(s, sp, KIND_MASKS, b);
}

void store_set_cache_budget(beit_store *s, size_t bytes) {
    s->cache_budget = bytes;
    cache_make_room(s, 0);
}

typedef struct {
    int64_t idx;
    int pos;
} idx_pos;

static int cmp_idx_pos(const void *a, const void *b) {
    const idx_pos *x = a, *y = b;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    return x->pos - y->pos;
}

/* Start a read of n samples: tick the cache clock and return the requested indices (each
 * checked to lie in the split; `fn` names the caller in the error) with their positions, sorted
 * by index, so that the caller loads each needed block once per call even when it cannot stay
 * cached. Free the result. */
static idx_pos *begin_read(beit_store *s, const char *fn, const beit_store_split *sp, const char *split,
                           const int64_t *indices, int n) {
    idx_pos *ord = xmalloc((size_t)n * sizeof *ord);
    for (int i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= sp->count)
            beit_fatal(BEIT_EXIT_FAILURE, "%s: index %lld outside split %s [0, %lld)", fn, (long long)indices[i],
                       split, (long long)sp->count);
        ord[i].idx = indices[i];
        ord[i].pos = i;
    }
    qsort(ord, (size_t)n, sizeof *ord, cmp_idx_pos);
    s->clock++;
    return ord;
}

void store_read(beit_store *s, const char *split, const int64_t *indices, int n, uint8_t *images, int32_t *labels) {
    beit_store_split *sp = need_split(s, split);
    if (n <= 0) return;
    size_t ib = store_image_bytes(s);
    idx_pos *ord = begin_read(s, "store_read", sp, split, indices, n);
    for (int i = 0; i < n; i++) {
        int64_t b = ord[i].idx / sp->block_n, k = ord[i].idx - b * sp->block_n;
        if (!sp->block_img[b]) load_block(s, sp, b);
        sp->block_used[b] = s->clock;
        if (images) memcpy(images + (size_t)ord[i].pos * ib, sp->block_img[b] + (size_t)k * ib, ib);
        if (labels) labels[ord[i].pos] = sp->block_lab[b][k];
    }
    free(ord);
}

void store_read_masks(beit_store *s, const char *split, const int64_t *indices, int n, uint8_t *masks) {
    beit_store_split *sp = need_split(s, split);
    if (!s->pixel_labels)
        beit_fatal(BEIT_EXIT_FAILURE, "store_read_masks: %s has no masks (pixel_labels = 0)", s->path);
    if (n <= 0) return;
    size_t mb = (size_t)s->height * s->width;
    idx_pos *ord = begin_read(s, "store_read_masks", sp, split, indices, n);
    for (int i = 0; i < n; i++) {
        int64_t b = ord[i].idx / sp->mask_block_n, k = ord[i].idx - b * sp->mask_block_n;
        if (!sp->block_mask[b]) load_mask_block(s, sp, b);
        sp->mask_used[b] = s->clock;
        memcpy(masks + (size_t)ord[i].pos * mb, sp->block_mask[b] + (size_t)k * mb, mb);
    }
    free(ord);
}

void store_read_labels(beit_store *s, const char *split, int32_t *labels) {
    beit_store_split *sp = need_split(s, split);
    if (sp->count == 0) return;
    if (H5Dread(sp->labels, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels) < 0) {
        H5Eprint2(H5E_DEFAULT, stderr);
        beit_fatal_user(BEIT_EXIT_DATA, "%s: cannot read /%s/labels (a damaged chunk fails its checksum; expected a "
                        "readable store)", s->path, split);
    }
}
