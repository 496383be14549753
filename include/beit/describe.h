/* describe.h: `beit data info [--verify] FILE`: one command for any file beit writes. The
 * root attribute 'format' tells the kind: a dataset store (store_describe, store.h), a token
 * store (tokens_describe, tokens.h) or a checkpoint (ckpt_describe, checkpoint.h). */
#ifndef BEIT_DESCRIBE_H
#define BEIT_DESCRIBE_H

#include <hdf5.h>
#include <stdio.h>

/* Describe the file at path to f; verify = 1 also reads all of it and checks every invariant
 * (see each describer). A bad dataset or token store ends the job with BEIT_EXIT_DATA, a bad
 * checkpoint with BEIT_EXIT_CHECKPOINT, naming the file and the dataset or tensor. A file of
 * no known format gets the dataset store's error (exit 3). Returns 0. */
int beit_describe(FILE *f, const char *path, int verify);

/* The shared printers: the "layout" section (groups and datasets with shape, type, chunks,
 * filters, size on disk, in name order) of file, and the attributes of obj, one a line
 * (but the one named skip, when not NULL). */
void describe_layout(FILE *f, hid_t file);
void describe_attrs(FILE *f, hid_t obj, const char *indent, const char *skip);

#endif
