/* checkpoint.h: one checkpoint = one HDF5 file, written atomically (temporary name, fsync,
 * rename), so an interrupted write never leaves a file that looks complete.
 *
 * Layout:
 *   /                      attributes: format = "beit-checkpoint", format_version = 1,
 *                          kind ("dvae", "beit-pretrain", ...), step (optimizer steps done),
 *                          seed, nranks (of the run that wrote it), params_checksum (hex),
 *                          config (the resolved job, YAML), created_by
 *   /params/<name>         float32, the tensor's shape; <name> is the PyTorch state_dict
 *                          name (timm's for the encoder), e.g. blocks.0.attn.qkv.weight
 *   /optim/exp_avg/<name>, /optim/exp_avg_sq/<name>   AdamW state, same shapes (absent in
 *                          exported weights-only files)
 */
#ifndef BEIT_CHECKPOINT_H
#define BEIT_CHECKPOINT_H

#include "beit/dist.h"
#include "beit/params.h"

#include <stdint.h>

typedef struct {
    const char *kind;
    int64_t step;
    uint64_t seed;
    const char *config_yaml;
} ckpt_meta;

/* Rank 0 writes (parameters and optimizer state are identical on every rank); every rank
 * returns once the file is in place. m and v may be NULL (weights only). A failure (disk
 * full, read-only directory) removes the temporary file, leaves any previous checkpoint
 * untouched and ends the job with BEIT_EXIT_IO. */
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
} ckpt_reader;

/* Open and validate (format attribute); a missing or unreadable file, or one that is not a
 * beit checkpoint, ends the job with BEIT_EXIT_CHECKPOINT naming the path. */
void ckpt_open(ckpt_reader *r, const char *path);
/* Load every tensor of the table by name; a missing tensor or a shape that differs ends the
 * job with BEIT_EXIT_MISMATCH naming the tensor and both shapes. */
void ckpt_load_params(ckpt_reader *r, param_table *pt);
/* Read /params/<name> into dst (p gives the expected shape; p->name may differ from name,
 * e.g. a shared table copied into a per-block one). Returns 0 when the checkpoint has no such
 * tensor; a shape that differs ends the job with BEIT_EXIT_MISMATCH naming both. */
int ckpt_read_param(ckpt_reader *r, const char *name, const param_info *p, float *dst);
/* Size of axis `axis` of /params/<name>, or -1 when the tensor (or the axis) is absent. */
int64_t ckpt_param_dim(ckpt_reader *r, const char *name, int axis);
/* Load the AdamW state (BEIT_EXIT_CHECKPOINT if the file has none). */
void ckpt_load_optim(ckpt_reader *r, const param_table *pt, float *m, float *v);
void ckpt_close(ckpt_reader *r);

/* The newest complete checkpoint "ckpt-<step>.h5" in dir, or NULL (malloc'd path). */
char *ckpt_find_latest(const char *dir);
/* Remove all but the newest `keep` checkpoints in dir (rank 0 only). */
void ckpt_rotate(const char *dir, int keep);

#endif
