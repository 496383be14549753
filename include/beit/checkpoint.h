/* checkpoint.h: one checkpoint = one HDF5 file, written by all ranks in parallel (parallel
 * HDF5, MPI-IO) to a temporary name and renamed only after every rank succeeded, so an
 * interrupted or failed write never leaves a file that looks complete.
 *
 * Layout (format_version 3):
 *   /                      attributes: format = "beit-checkpoint", format_version = 3,
 *                          kind ("dvae", "beit-pretrain", ...), step (optimizer steps done),
 *                          seed, nranks (of the run that wrote it), params_checksum (hex),
 *                          config (the resolved job, YAML), created_by, and LAST
 *                          complete = 1 (a file without it is incomplete: never resumed from);
 *                          optional input_mean, input_std (float64 [C]): the input
 *                          normalisation the weights expect (ckpt_norm below)
 *   /params/<name>         float32, the tensor's shape; <name> is the PyTorch state_dict
 *                          name (timm's for the encoder), e.g. blocks.0.attn.qkv.weight.
 *                          Each tensor is written once, by one rank (independent I/O).
 *                          Attribute checksum (uint64) = ckpt_checksum(tensor, numel, 0).
 *   /optim/exp_avg_flat, /optim/exp_avg_sq_flat
 *                          float32 [total]: the AdamW state in the parameter table's flat
 *                          order (tensor by tensor, each row-major, as /params). Each rank
 *                          writes the ranges it holds (its ZeRO-1 shard, or with a replicated
 *                          optimizer the chunks it owns in the gradient reduction) in one
 *                          collective write per dataset; together the ranks write every float
 *                          once. Attributes of /optim: layout = "flat", total (floats),
 *                          tensors ("<name> <offset> <numel>" per line: a loader with another
 *                          table refuses the state), writers (ranks that wrote it).
 *   /optim/checksums       uint64 [ntensors][2]: ckpt_checksum of each tensor's exp_avg and
 *                          exp_avg_sq, in the table's order (as 'tensors').
 *                          /optim is absent in weights-only files.
 *   The layout does not depend on the rank count: any number of ranks reads any ranges of it
 *   (elastic resume re-shards by reading).
 *
 * Every load verifies the checksums of what it reads (exit BEIT_EXIT_CHECKPOINT, "checksum
 * mismatch", naming the file and the tensor). format_version 2 (still read, with one warning
 * per opened file that it cannot be verified): the same without the checksums.
 * format_version 1 (still read, idem): /optim/exp_avg/<name>, /optim/exp_avg_sq/<name> per tensor,
 * no 'complete' attribute (those files were only ever renamed into place complete).
 */
#ifndef BEIT_CHECKPOINT_H
#define BEIT_CHECKPOINT_H

#include "beit/comm.h"
#include "beit/params.h"

#include <stdint.h>
#include <stdio.h>

#define CKPT_FORMAT "beit-checkpoint" /* the root attribute 'format' */

/* Per-tensor checksum, order-independent and split-combinable: the sum mod 2^64 over the
 * elements i of x [n] of mix64((first + i) << 32 | float bits of x[i]), mix64 = splitmix64's
 * finaliser; first = the index of x[0] in its tensor. The checksums of the parts of a tensor
 * add up (mod 2^64) to the tensor's, whichever ranks read or wrote which parts. */
uint64_t ckpt_checksum(const float *x, size_t n, size_t first);

/* The input normalisation a model's weights expect: x = (pixel / 255 - mean[c]) / std[c] per
 * channel. Recorded with the weights (root attributes input_mean, input_std) by training (the
 * statistics it used) and by tools/import_torch.py; chans = 0: none recorded (files from
 * before the record: the data store's statistics apply). */
#define CKPT_NORM_MAX_CHANS 4
typedef struct {
    int chans;
    double mean[CKPT_NORM_MAX_CHANS], std[CKPT_NORM_MAX_CHANS];
} ckpt_norm;

typedef struct {
    const char *kind;
    int64_t step;
    uint64_t seed;
    const char *config_yaml;
    const ckpt_norm *norm; /* NULL or chans 0: no record written */
} ckpt_meta;

/* This rank's part of the AdamW state: the float ranges [r[i].lo, r[i].hi) of the flat table
 * live at m + r[i].off and v + r[i].off. Ranges ascend in lo and in off. For a write, the
 * ranges of all ranks together cover [0, total) exactly once. */
typedef struct {
    float *m, *v;
    int n;
    const dist_range *r;
} ckpt_optim_part;

/* Collective (every rank, same path, table and meta; parameters identical on every rank):
 * writes the file described above; opt may be NULL (weights only). Every rank returns once
 * the file is in place. A failure on any rank (disk full, read-only directory) is agreed on
 * by all; the temporary file is removed, any previous checkpoint is untouched and the job
 * ends with BEIT_EXIT_IO and a message naming the file, the failing rank and the call. */
void ckpt_write_part(const char *path, const param_table *pt, const ckpt_optim_part *opt, const ckpt_meta *meta,
                     const beit_dist *d);
/* The same with a replicated optimizer state: m, v [total] identical on every rank (or both
 * NULL: weights only); each rank writes an even share of them. */
void ckpt_write(const char *path, const param_table *pt, const float *m, const float *v,
                const ckpt_meta *meta, const beit_dist *d);

typedef struct {
    long long file; /* hid_t */
    char path[1024];
    char kind[64];
    int64_t step;
    uint64_t seed;
    int nranks;
    char *config_yaml; /* malloc'd */
    int has_optim;
    int version; /* format_version: checksums from 3 on */
    ckpt_norm norm; /* the recorded input normalisation (chans 0: none) */
} ckpt_reader;

/* Open and validate (format, format_version 1..3, complete = 1 from version 2 on; input_mean and
 * input_std, when present, as two float64 arrays of 1..4 finite values, std > 0); a missing
 * or unreadable file, one that is not a beit checkpoint, or an incomplete one ends the job
 * with BEIT_EXIT_CHECKPOINT naming the path. A file of version 1 or 2 gets one warning (it
 * cannot be verified). Serial HDF5: any rank may open any checkpoint. */
void ckpt_open(ckpt_reader *r, const char *path);
/* Load every tensor of the table by name; a missing tensor or a shape that differs ends the
 * job with BEIT_EXIT_MISMATCH naming the tensor and both shapes. Every tensor loaded (here and
 * in ckpt_read_param) is checked: a NaN/Inf or, from format 3, a checksum that differs from
 * the recorded one ends the job with BEIT_EXIT_CHECKPOINT naming the file and the tensor. */
void ckpt_load_params(ckpt_reader *r, param_table *pt);
/* Read /params/<name> into dst (p gives the expected shape; p->name may differ from name,
 * e.g. a shared table copied into a per-block one). Returns 0 when the checkpoint has no such
 * tensor; a shape that differs ends the job with BEIT_EXIT_MISMATCH naming both. */
int ckpt_read_param(ckpt_reader *r, const char *name, const param_info *p, float *dst);
/* Size of axis `axis` of /params/<name>, or -1 when the tensor (or the axis) is absent. */
int64_t ckpt_param_dim(ckpt_reader *r, const char *name, int axis);
/* Load the whole AdamW state into m, v [total] (BEIT_EXIT_CHECKPOINT if the file has none;
 * BEIT_EXIT_MISMATCH if it was written for another parameter layout). */
void ckpt_load_optim(ckpt_reader *r, const param_table *pt, float *m, float *v);
/* Load only the ranges of o (a ZeRO-1 shard): whatever rank count wrote the file. With comm
 * != MPI_COMM_NULL the call is collective over comm, whose ranks' ranges together cover the
 * state once: the checksums of their parts are added across ranks and every tensor is
 * verified. With MPI_COMM_NULL only the tensors the ranges cover whole are verified (locally).
 * ckpt_load_optim verifies every tensor locally. */
void ckpt_load_optim_part(ckpt_reader *r, const param_table *pt, const ckpt_optim_part *o, MPI_Comm comm);
void ckpt_close(ckpt_reader *r);

/* `beit data info` of a checkpoint (src/io/checkpoint_describe.c): kind, step, seed, ranks,
 * format version, created_by, a summary of the stored config, the tensors (name, shape,
 * recorded checksum) and the optimizer state. verify = 1 loads every tensor and the whole
 * optimizer state as a resume does: a NaN/Inf or a checksum that differs ends the job with
 * BEIT_EXIT_CHECKPOINT naming the file and the tensor. Errors of ckpt_open as there. Returns 0. */
int ckpt_describe(FILE *f, const char *path, int verify);

/* 1 iff path is a readable beit checkpoint that is complete (format_version 1, or 2 with
 * complete = 1). */
int ckpt_is_complete(const char *path);
/* The newest complete checkpoint "ckpt-<step>.h5" in dir, or NULL (malloc'd path). Newer
 * files that are not complete are skipped with a warning; temporary files
 * (".ckpt-<step>.h5.tmp.<pid>") never match. */
char *ckpt_find_latest(const char *dir);
/* Keep the newest `keep` complete checkpoints in dir and remove the older ones (complete or
 * not), and remove temporary checkpoint files left by killed runs (rank 0 only, right after
 * a successful write). */
void ckpt_rotate(const char *dir, int keep);

#endif
