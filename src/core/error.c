/* Loud failure and checked library calls. */
#include "beit/error.h"
#include "beit/log.h"
#include "beit/fsutil.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int g_rank = 0, g_size = 1; /* written once by beit_set_rank at start-up */

void beit_set_rank(int rank, int size) { g_rank = rank; g_size = size; }
int beit_rank(void) { return g_rank; }
int beit_nranks(void) { return g_size; }

void beit_exit(int code) {
    fflush(stdout);
    fflush(stderr);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) {
        if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, code); /* never leave a peer in a collective */
        MPI_Finalize();
    }
    exit(code);
}

void beit_exit_all(int code) {
    fflush(stdout);
    fflush(stderr);
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Finalize();
    exit(code);
}

static void vreport(const char *file, int line, const char *fmt, va_list ap) {
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (g_size > 1) fprintf(stderr, "beit[rank %d]: ", g_rank);
    else fprintf(stderr, "beit: ");
    if (file) fprintf(stderr, "%s:%d: ", file, line);
    fprintf(stderr, "%s\n", msg);
}

void beit_fatal_at(const char *file, int line, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(file, line, fmt, ap);
    va_end(ap);
    beit_exit(code);
}

void beit_fatal_user(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(NULL, 0, fmt, ap);
    va_end(ap);
    beit_exit(code);
}

void beit_vfatal_user_in(int code, const char *where, const char *fmt, va_list ap) {
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    beit_fatal_user(code, "%s: %s", where, msg);
}

void beit_mpi_check_at(const char *file, int line, int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char err[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, err, &len);
    beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "%s failed: %s", what, err);
}

void beit_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* H5Ewalk2 visits the most specific record first (H5E_WALK_UPWARD): keep the first one that
 * carries a message from below HDF5 (the MPI-IO driver puts MPI's error string there) */
typedef struct {
    char *buf;
    size_t n;
    int found;
} h5_cause_walk;

static herr_t h5_cause_cb(unsigned k, const H5E_error2_t *e, void *data) {
    (void)k;
    h5_cause_walk *w = data;
    if (w->found || !e->desc || !e->desc[0]) return 0;
    if (e->min_num == H5E_MPIERRSTR || e->min_num == H5E_SYSERRSTR) {
        snprintf(w->buf, w->n, "%s", e->desc);
        w->found = 1;
    }
    return 0;
}

int beit_h5_error_cause(char *buf, size_t n) {
    h5_cause_walk w = {buf, n, 0};
    if (n) buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_cause_cb, &w);
    return w.found;
}

long long beit_h5_check_at(const char *file, int line, long long rc, const char *what) {
    if (rc >= 0) return rc;
    H5Eprint2(H5E_DEFAULT, stderr);
    beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "HDF5 call failed: %s", what);
}
