/* store.h: the HDF5 dataset store (import -> store -> training): reading (src/io/store.c),
 * describing (store_describe.c) and writing (store_writer.c). The batch reader over a store
 * is reader.h; the importers that write stores are import.h; the IDX files are idx.h.
 *
 * Store layout (format "beit-dataset", format_version 1):
 *   /<split>/images   uint8 [N, H, W, C]  chunked [min(N, K), H, W, C] with K = 1024 images or
 *                     fewer so that a chunk is <= 1 MiB; filters shuffle + deflate level 4
 *   /<split>/labels   uint8 [N] (int32 when num_classes > 256), chunked, shuffle + deflate 4
 *   /<split>/masks    uint8 [N, H, W]  optional per-pixel labels (segmentation stores such as
 *                     `beit data mosaic`): the class in [0, num_classes) of every pixel; chunked
 *                     [chunk length of images, H, W], shuffle + deflate 4. Present in every split
 *                     exactly when the root attribute pixel_labels = 1.
 *   /<split>          attribute count (int64) = N
 *   splits: "train" and "test" for Fashion-MNIST; any group holding images + labels is a split.
 *   root attributes:
 *     format          string  "beit-dataset"
 *     format_version  int32   1
 *     source          string  what was imported, e.g. "fashion-mnist /usr/share/datasets/fashion-mnist"
 *     class_names     string[num_classes]
 *     num_classes, height, width, channels   int32
 *     mean, std       float64[channels]: per-channel mean and population std (ddof 0) of the
 *                     pixels scaled to [0, 1], over the statistics split (train)
 *     stats_split     string  the split mean/std were computed on
 *     uuid            string  random v4 UUID: the identity of this imported dataset
 *     created_by      string  "beit <version>"
 *     pixel_labels    int32   optional: 1 = every split has /<split>/masks (num_classes <= 256);
 *                     0 or absent = no masks (a masks dataset is then ignored). Stores without
 *                     it are the format_version 1 stores written before masks existed.
 * Strings are variable-length UTF-8 (h5py reads them as str).
 */
#ifndef BEIT_STORE_H
#define BEIT_STORE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#define STORE_FORMAT "beit-dataset"
#define STORE_FORMAT_VERSION 1
#define STORE_MAX_SPLITS 8
#define STORE_MAX_CHANNELS 4
/* chunks hold about this many bytes of samples (images or masks): the writer's chunk length,
 * and the reader's block length for a dataset that is not chunked */
#define STORE_CHUNK_TARGET_BYTES ((size_t)1 << 20)

/* ---- reading ------------------------------------------------------------------------------ */
/* A split's images are read a block at a time (a block = one HDF5 chunk of images, the unit
 * the file is compressed in) and decompressed blocks are kept in memory, least recently used
 * evicted first, within the store's cache budget. */
typedef struct {
    char name[64];
    int64_t count;
    hid_t images, labels; /* open datasets */
    hid_t masks;          /* open /<split>/masks when the store has pixel labels, else -1 */
    int64_t block_n;      /* images per block (the dataset's chunk length) */
    int64_t nblocks;
    uint8_t **block_img;  /* [nblocks] decompressed images of block b, NULL if not loaded */
    int32_t **block_lab;  /* [nblocks] its labels */
    uint64_t *block_used; /* [nblocks] last use (LRU clock) */
    /* masks are cached in their own blocks (the masks' chunk length), loaded only when asked */
    int64_t mask_block_n, mask_nblocks;
    uint8_t **block_mask;  /* [mask_nblocks] decompressed masks [n, H, W], NULL if not loaded */
    uint64_t *mask_used;   /* [mask_nblocks] last use (LRU clock) */
} beit_store_split;

/* Read-only view of a store. Fields are filled by store_open and must not be changed. */
typedef struct {
    char *path;
    hid_t file;
    int mpio; /* opened with the MPI-IO driver */
    int height, width, channels, num_classes;
    int pixel_labels; /* 1: every split has masks */
    double mean[STORE_MAX_CHANNELS], std[STORE_MAX_CHANNELS];
    char uuid[64];
    char *source, *created_by, *stats_split;
    char **class_names; /* [num_classes] */
    int nsplits;
    beit_store_split splits[STORE_MAX_SPLITS];
    size_t cache_budget, cache_bytes; /* decompressed blocks kept in memory: limit, current */
    uint64_t clock;
    int nloaded, loaded_cap; /* the loaded blocks, as (split, kind, block): eviction scans these */
    int *loaded_split;
    int *loaded_kind; /* 0: images + labels, 1: masks */
    int64_t *loaded_block;
} beit_store;

/* Open read-only and validate (format attribute and version, required attributes, every
 * split's dataset shapes and types against height/width/channels and its count attribute).
 * When the root attribute pixel_labels is 1, every split must hold /<split>/masks, uint8
 * [count, H, W] (num_classes <= 256); any other pixel_labels value than 0/1 is an error.
 * comm == MPI_COMM_NULL: serial HDF5 (sec2 driver). Otherwise the file is opened with the
 * MPI-IO driver on comm (collective over comm: every rank of comm must call it) and each rank
 * later reads only the samples it asks for (independent I/O).
 * Any problem: beit_fatal_user(BEIT_EXIT_DATA, "<path>: ... (expected ...)") naming the
 * dataset or attribute at fault. */
beit_store *store_open(const char *path, MPI_Comm comm);
void store_close(beit_store *s);

int store_has_split(const beit_store *s, const char *split);
/* Number of samples of a split; a missing split is a user error (BEIT_EXIT_DATA). */
int64_t store_split_count(const beit_store *s, const char *split);
int store_height(const beit_store *s);
int store_width(const beit_store *s);
int store_channels(const beit_store *s);
int store_num_classes(const beit_store *s);
size_t store_image_bytes(const beit_store *s); /* height * width * channels */
const char *store_uuid(const beit_store *s);
const char *store_class_name(const beit_store *s, int k);
const double *store_mean(const beit_store *s); /* [channels], pixels scaled to [0, 1] */
const double *store_std(const beit_store *s);  /* [channels] */

/* Read the n listed samples of a split (any order, repeats allowed):
 *   images [n, H, W, C] uint8 (may be NULL), labels [n] int32 (may be NULL).
 * Samples are served from the block cache; a missing block is read with one chunk-aligned
 * hyperslab (independent I/O: a rank reads only the blocks holding its samples). Requests
 * are processed in block order, so a small budget still reads each block once per call.
 * A label outside [0, num_classes) in a block read is bad data (BEIT_EXIT_DATA).
 * An index outside [0, count) is a caller bug (beit_fatal). n may be 0. */
void store_read(beit_store *s, const char *split, const int64_t *indices, int n, uint8_t *images, int32_t *labels);
/* Memory for decompressed blocks, over all splits (default STORE_CACHE_DEFAULT). At least one
 * block is always kept. A budget below the split's size makes random access re-read blocks. */
#define STORE_CACHE_DEFAULT ((size_t)512 << 20)
void store_set_cache_budget(beit_store *s, size_t bytes);
/* All labels of a split into labels [count] (statistics, evaluation). */
void store_read_labels(beit_store *s, const char *split, int32_t *labels);

/* 1 when the store has per-pixel labels (root attribute pixel_labels = 1), else 0. */
int store_has_masks(const beit_store *s);
/* Read the masks of the n listed samples of a split (any order, repeats allowed) into
 * masks [n, H, W] uint8. Same block cache and I/O as store_read (masks have their own blocks:
 * one chunk-aligned hyperslab each, independent I/O under the MPI-IO driver, sharing the
 * cache budget). Every value of a block read is checked: a pixel label >= num_classes is bad
 * data, beit_fatal_user(BEIT_EXIT_DATA, "<path>: /<split>/masks sample <i> has pixel label
 * <v> outside [0, <num_classes>) ..."). A store without masks or an index outside [0, count)
 * is a caller bug (beit_fatal). n may be 0. */
void store_read_masks(beit_store *s, const char *split, const int64_t *indices, int n, uint8_t *masks);

/* ---- describing (`beit data info`, src/io/store_describe.c) ------------------------------ */
/* Open the store at path (serial; validated as store_open does: problems exit BEIT_EXIT_DATA)
 * and print to f its header (source, uuid, shape, classes, masks, splits, mean/std), its
 * layout (groups and datasets with shape, type, chunks, filters, size on disk), the root
 * attributes, the samples per class of every split and, with masks, the per-class pixel
 * frequencies of every split (every mask read and checked). Labels outside [0, num_classes)
 * are listed, then end the job with BEIT_EXIT_DATA. verify = 1 (`--verify`) also reads every
 * image block (a damaged chunk fails its read) and recomputes the per-channel mean/std over
 * the stats split as the writer did: a difference ends the job with BEIT_EXIT_DATA naming the
 * attribute. Returns 0. */
int store_describe(FILE *f, const char *path, int verify);

/* ---- writing (importers, tests) ------------------------------------------------------------ */
typedef struct {
    const char *source;
    int height, width, channels, num_classes;
    const char *const *class_names; /* [num_classes] */
    const char *stats_split;        /* mean/std are computed over this split, e.g. "train" */
    int pixel_labels;               /* 1: every split also gets masks (store_append_masks);
                                       needs num_classes <= 256 */
} beit_store_meta;

typedef struct beit_store_writer beit_store_writer;

/* Create the store at beit_tmp_path(final_path) with serial HDF5 (the default file driver).
 * Nothing appears at final_path until store_commit. While a writer is open, SIGINT, SIGTERM
 * and SIGHUP remove the temporary file before the process dies (previous handlers are
 * restored by commit/abort). HDF5 write failures remove the temporary file and end the job
 * with BEIT_EXIT_IO. One writer at a time per process. */
beit_store_writer *store_create(const char *final_path, const beit_store_meta *meta);
/* Start a split of exactly `count` samples. */
void store_begin_split(beit_store_writer *w, const char *split, int64_t count);
/* Append n samples: images [n, H, W, C], labels [n] in [0, num_classes) (checked; a label
 * outside is a caller bug: the importers validate labels before appending). */
void store_append(beit_store_writer *w, const uint8_t *images, const int32_t *labels, int64_t n);
/* Stores with pixel_labels = 1: append the masks [n, H, W] (values in [0, num_classes),
 * checked: a value outside is a caller bug) of the next n samples of the current split.
 * Masks and images/labels are counted separately, so they may be appended in any
 * interleaving (e.g. store_append then store_append_masks per batch). */
void store_append_masks(beit_store_writer *w, const uint8_t *masks, int64_t n);
/* End the split; the appended count (of samples and, with pixel_labels, of masks) must equal
 * the announced one. */
void store_end_split(beit_store_writer *w);
/* Write the root attributes (a fresh uuid, mean/std of the stats split), close, fsync and
 * rename to the final path. Frees w. */
void store_commit(beit_store_writer *w);
/* Close and delete the temporary file. Frees w. Safe to call at any point. */
void store_abort(beit_store_writer *w);
const char *store_writer_final_path(const beit_store_writer *w);

#endif
