/* outfile.h: the outputs a command names (a dataset store, a token store) are never replaced
 * by accident. Before any work, a command that writes OUT asks output_refuse_existing: an
 * existing OUT is left untouched and the job ends, unless the user passed --force (then the
 * writer replaces it atomically: temporary file + rename, fsutil.h). */
#ifndef BEIT_OUTFILE_H
#define BEIT_OUTFILE_H

#include <mpi.h>

/* What is at path, for messages (malloc'd): "a beit dataset store (uuid U)", "a beit token
 * store (of dataset uuid U)", "a beit checkpoint", "an HDF5 file", "a directory", "a file";
 * NULL when nothing is there. Reads the root attribute `format` of an HDF5 file (serial,
 * read-only). *is_store (may be NULL) is set to 1 for a dataset store, else 0. */
char *output_describe(const char *path, int *is_store);

/* The check every command does before it reads its inputs. Collective over comm: rank 0
 * looks, broadcasts the verdict, and on a refusal rank 0 prints the message and every rank
 * exits with BEIT_EXIT_USAGE (beit_exit_all; no rank is left waiting). Refused:
 *   - path is a directory (even with --force: a file cannot replace it):
 *     "cmd: PATH is a directory (expected the path of the file to write)";
 *   - path exists and force is 0:
 *     "cmd: PATH already exists: WHAT. It was left untouched; ADVICE"
 *     WHAT from output_describe; ADVICE is `advice` when given (used only when the file is a
 *     dataset store: e.g. adding a split), else "pass --force to replace it.".
 * Returns when path does not exist, or exists and force is set. comm holds every rank of the
 * job (MPI_COMM_WORLD): a refusal ends the job. */
void output_refuse_existing(const char *cmd, const char *path, int force, const char *advice, MPI_Comm comm);

#endif
