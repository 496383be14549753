/* error.h: exit codes, loud failure and the checked wrappers every module uses.
 *
 *  - exit codes (documented in README; scripts rely on them)
 *  - beit_fatal() prints "file:line: message" and ends the job (MPI_Abort when more than one
 *    rank runs, so no rank is left hanging in a collective)
 *  - checked wrappers: xmalloc/xcalloc, MPI_CHECK, H5_CHECK
 */
#ifndef BEIT_ERROR_H
#define BEIT_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- exit codes ---------------------------------------------------------------------- */
enum {
    BEIT_EXIT_OK = 0,
    BEIT_EXIT_FAILURE = 1,    /* internal or runtime error (a bug, a failed library call) */
    BEIT_EXIT_USAGE = 2,      /* bad command line or job file (config) */
    BEIT_EXIT_DATA = 3,       /* input data missing, unreadable or invalid */
    BEIT_EXIT_CHECKPOINT = 4, /* checkpoint missing, unreadable or invalid */
    BEIT_EXIT_MISMATCH = 5,   /* inputs are valid alone but disagree (shape, V, dataset id) */
    BEIT_EXIT_NONFINITE = 6,  /* NaN or Inf in loss or gradients */
    BEIT_EXIT_IO = 7,         /* an output could not be written (disk full, read-only) */
    BEIT_EXIT_PREEMPTED = 8,  /* stopped by a signal after writing a checkpoint */
};

/* ---- loud failure -------------------------------------------------------------------- */
#if defined(__GNUC__)
#define BEIT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define BEIT_NORETURN __attribute__((noreturn))
#else
#define BEIT_PRINTF(a, b)
#define BEIT_NORETURN
#endif

/* Print "beit: <file>:<line>: <message>" (rank-prefixed when several ranks run) and end
 * the job with exit code `code`. Use beit_fatal_user() for errors in user input, where the
 * message itself names the file/line/column at fault and the source location is noise. */
BEIT_NORETURN void beit_fatal_at(const char *file, int line, int code, const char *fmt, ...)
    BEIT_PRINTF(4, 5);
BEIT_NORETURN void beit_fatal_user(int code, const char *fmt, ...) BEIT_PRINTF(2, 3);
#define beit_fatal(code, ...) beit_fatal_at(__FILE__, __LINE__, (code), __VA_ARGS__)
/* beit_fatal_user of "<where>: <message>" for a variadic wrapper that names its subject (a
 * store path, a config key). The message is cut at 4 KiB. */
BEIT_NORETURN void beit_vfatal_user_in(int code, const char *where, const char *fmt, va_list ap) BEIT_PRINTF(3, 0);
/* End the job with `code` without printing (the message was printed already). */
BEIT_NORETURN void beit_exit(int code);

/* ---- allocation ---------------------------------------------------------------------- */
void *xmalloc_at(const char *file, int line, size_t n);
void *xcalloc_at(const char *file, int line, size_t count, size_t size);
void *xrealloc_at(const char *file, int line, void *p, size_t n);
char *xstrdup_at(const char *file, int line, const char *s);
#define xmalloc(n) xmalloc_at(__FILE__, __LINE__, (n))
#define xcalloc(c, s) xcalloc_at(__FILE__, __LINE__, (c), (s))
#define xrealloc(p, n) xrealloc_at(__FILE__, __LINE__, (p), (n))
#define xstrdup(s) xstrdup_at(__FILE__, __LINE__, (s))
/* 64-byte aligned, zeroed; free with free(). For flat parameter/activation buffers. */
float *xalloc_floats_at(const char *file, int line, size_t n);
#define xalloc_floats(n) xalloc_floats_at(__FILE__, __LINE__, (n))

/* For functions that report failure as -1 plus a one-line reason in a caller's buffer:
 * format into err (when err and errlen are set) and return -1. */
int beit_errf(char *err, size_t errlen, const char *fmt, ...) BEIT_PRINTF(3, 4);

/* printf into a fresh heap string */
char *xasprintf(const char *fmt, ...) BEIT_PRINTF(1, 2);

/* ---- MPI / HDF5 checks --------------------------------------------------------------- */
/* MPI_CHECK(MPI_Allreduce(...)); aborts with file:line and MPI's error string. */
void beit_mpi_check_at(const char *file, int line, int rc, const char *what);
#define MPI_CHECK(call) beit_mpi_check_at(__FILE__, __LINE__, (call), #call)
/* H5_CHECK(H5Dread(...)) -> value; negative values abort with file:line and HDF5's error
 * stack. For expected failures (a missing dataset named by the user) check with H5Lexists
 * etc. first and report with beit_fatal_user. */
long long beit_h5_check_at(const char *file, int line, long long rc, const char *what);
#define H5_CHECK(call) beit_h5_check_at(__FILE__, __LINE__, (long long)(call), #call)
/* Silence HDF5's automatic error printing (we print our own, with the stack, on failure). */
void beit_h5_quiet(void);
/* the system or MPI error message under the current HDF5 error stack, if it holds one
 * (errno is not reliable after a failed parallel write: MPI-IO's clean-up overwrites it);
 * returns 1 when found */
int beit_h5_error_cause(char *buf, size_t n);

#endif
