/* Refusing to replace an existing output (include/beit/outfile.h). */
#include "beit/outfile.h"

#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/h5attr.h"
#include "beit/log.h"
#include "beit/store.h"
#include "beit/tokens.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* the root `format` of an HDF5 file beit wrote, with its uuid attribute (NULL when absent);
 * -1 when the file is not HDF5 */
static int h5_format(const char *path, char **fmt, char **uuid) {
    *fmt = *uuid = NULL;
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (f < 0) return -1;
    H5E_BEGIN_TRY {
        *fmt = h5a_get_str(f, "format");
        if (*fmt && !strcmp(*fmt, STORE_FORMAT)) *uuid = h5a_get_str(f, "uuid");
        else if (*fmt && !strcmp(*fmt, TOKENS_FORMAT)) *uuid = h5a_get_str(f, "dataset_uuid");
    }
    H5E_END_TRY;
    H5Fclose(f);
    return 0;
}

char *output_describe(const char *path, int *is_store) {
    if (is_store) *is_store = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return NULL;
    if (S_ISDIR(sb.st_mode)) return xstrdup("a directory");
    if (!S_ISREG(sb.st_mode)) return xstrdup("a file");
    char *fmt, *uuid, *d;
    if (h5_format(path, &fmt, &uuid) != 0) return xstrdup("a file");
    if (fmt && !strcmp(fmt, STORE_FORMAT)) {
        d = xasprintf("a beit dataset store (uuid %s)", uuid ? uuid : "missing");
        if (is_store) *is_store = 1;
    } else if (fmt && !strcmp(fmt, TOKENS_FORMAT)) {
        d = uuid ? xasprintf("a beit token store (of dataset uuid %s)", uuid) : xstrdup("a beit token store");
    } else if (fmt && !strcmp(fmt, "beit-checkpoint")) {
        d = xstrdup("a beit checkpoint");
    } else {
        d = xstrdup("an HDF5 file");
    }
    free(fmt);
    free(uuid);
    return d;
}

/* as beit_fatal_user words it, without ending the job (the caller agrees the exit first) */
static void report(const char *fmt, ...) BEIT_PRINTF(1, 2);
static void report(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (beit_nranks() > 1) fprintf(stderr, "beit[rank %d]: ", beit_rank());
    else fputs("beit: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void output_refuse_existing(const char *cmd, const char *path, int force, const char *advice, MPI_Comm comm) {
    int rank = 0, verdict = 0; /* 0: go on; else the exit code */
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    if (rank == 0) {
        int is_store = 0;
        char *what = output_describe(path, &is_store);
        if (what && !strcmp(what, "a directory")) {
            report("%s: %s is a directory (expected the path of the file to write)", cmd, path);
            verdict = BEIT_EXIT_USAGE;
        } else if (what && !force) {
            const char *tail = advice && is_store ? advice : "pass --force to replace it.";
            report("%s: %s already exists: %s. It was left untouched; %s", cmd, path, what, tail);
            verdict = BEIT_EXIT_USAGE;
        }
        free(what);
    }
    MPI_CHECK(MPI_Bcast(&verdict, 1, MPI_INT, 0, comm));
    if (verdict) beit_exit_all(verdict);
}
