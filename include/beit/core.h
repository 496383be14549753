/* core.h: the pieces every module uses.
 *
 *  - exit codes (documented in README; scripts rely on them)
 *  - loud failure: beit_fatal() prints "file:line: message" and ends the job (MPI_Abort when
 *    more than one rank runs, so no rank is left hanging in a collective)
 *  - checked wrappers: xmalloc/xcalloc, MPI_CHECK, H5_CHECK
 *  - logging from rank 0
 *  - the counter-based RNG (Philox4x32-10): a draw is a pure function of
 *    (seed, purpose, a, b, counter), so a sample's noise never depends on ranks or threads
 *  - wall-clock timing
 */
#ifndef BEIT_CORE_H
#define BEIT_CORE_H

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

/* ---- process-wide rank info (set once by beit_mpi_init; read-only afterwards) ---------- */
/* These are the only process-wide values: the logger and beit_fatal need them and cannot
 * be handed a context in every call site. */
void beit_set_rank(int rank, int size);
int beit_rank(void);
int beit_nranks(void);

/* ---- logging (rank 0 only unless _all) ------------------------------------------------ */
void beit_log(const char *fmt, ...) BEIT_PRINTF(1, 2);     /* rank 0, stdout */
void beit_log_to_stderr(void); /* beit_log to stderr from now on (stdout carries a result) */
void beit_warn(const char *fmt, ...) BEIT_PRINTF(1, 2);    /* rank 0, stderr */
void beit_log_all(const char *fmt, ...) BEIT_PRINTF(1, 2); /* every rank, prefixed */

/* ---- counter-based RNG ----------------------------------------------------------------- */
/* Philox4x32-10 (Salmon et al., SC'11). key = (seed, purpose), counter = (a, b, c, d). */
void philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);

/* Purposes keep independent streams apart. */
enum {
    RNG_SHUFFLE = 1,
    RNG_MASK = 2,
    RNG_AUGMENT = 3,
    RNG_DROPPATH = 4,
    RNG_GUMBEL = 5,
    RNG_INIT = 6,
    RNG_VIEW = 7,
    RNG_SYNTH = 8,
    RNG_DROPOUT = 9,
    RNG_MOSAIC = 10,
    RNG_TEST = 100,
};

/* A stream: one (seed, purpose, a, b) identifies it; draws walk the counter. Cheap to
 * create on the stack, e.g. for sample i of epoch e: rng_stream(seed, RNG_MASK, e, i). */
typedef struct {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0], ctr[1] = a (64 bits), ctr[2] = b, ctr[3] = block counter */
    uint32_t buf[4];
    int used;        /* words of buf consumed (4 = empty) */
} rng_t;

rng_t rng_stream(uint64_t seed, uint32_t purpose, uint64_t a, uint32_t b);
/* The init stream of parameter tensor `name`: rng_stream(seed, RNG_INIT, fnv1a64(name), 0), so a
 * tensor's initial values depend only on (seed, name, shape), not on the table order. */
rng_t rng_init_stream(uint64_t seed, const char *name);
uint64_t beit_fnv1a64(const char *s); /* FNV-1a, 64 bit */
uint32_t rng_u32(rng_t *r);
uint64_t rng_u64(rng_t *r);
/* uniform in [0, 1) with 24 random bits (exact in float) */
float rng_uniform(rng_t *r);
/* uniform in [0, 1) with 53 random bits */
double rng_uniform_double(rng_t *r);
/* integer in [0, n) without modulo bias */
uint64_t rng_below(rng_t *r, uint64_t n);
/* standard normal (Box-Muller on doubles) */
float rng_normal(rng_t *r);
/* normal(0, std) truncated to [-2 std, 2 std] by rejection (timm's trunc_normal_ with a=-2,b=2
 * in units of std) */
float rng_trunc_normal(rng_t *r, float std);

/* ---- timing ------------------------------------------------------------------------------ */
double beit_now(void); /* seconds, monotonic */
/* "1h02m03s" style into buf */
const char *beit_fmt_duration(double seconds, char *buf, size_t n);

/* ---- small helpers ------------------------------------------------------------------------ */
/* SHA-256 of a file as 64 hex chars + NUL; returns 0 on success, -1 if unreadable. */
int beit_sha256_file(const char *path, char out_hex[65]);
void beit_sha256(const void *data, size_t n, uint8_t out[32]);
/* RFC 4122 version-4 UUID string from /dev/urandom (36 chars + NUL). */
void beit_uuid4(char out[37]);
/* Write atomically: callers write to beit_tmp_path(final) and then beit_commit_file(). */
char *beit_tmp_path(const char *final_path); /* "<dir>/.<base>.tmp.<pid>"; free() it */
/* fsync + rename tmp -> final; returns 0 or -1 with errno set */
int beit_commit_file(const char *tmp_path, const char *final_path);
/* While a temporary output is being written, SIGINT, SIGTERM and SIGHUP remove it before the
 * process dies (then the signal takes its default action). One guarded file per process at a
 * time: a signal handler gets no context, so the path is process-wide state (fsutil.c).
 * clear restores the previous handlers. */
void beit_tmp_guard_set(const char *tmp_path);
void beit_tmp_guard_clear(void);
/* Stop requests (preemption; the training loop, train.h). install: SIGUSR1 and SIGTERM only
 * record that they arrived (one volatile sig_atomic_t: async-signal-safe; SA_RESTART), the
 * previous handlers are saved; restore puts them back and forgets the request. While installed,
 * beit_tmp_guard_set leaves these two signals alone, so a stop request during a checkpoint write
 * neither kills the writer nor removes its file. beit_stop_signal: the first such signal since
 * install (SIGUSR1 or SIGTERM), or 0. Process-wide state (fsutil.c): a handler gets no context. */
void beit_stop_signals_install(void);
void beit_stop_signals_restore(void);
int beit_stop_signal(void);
/* End the job cleanly with `code` when EVERY rank calls it (an agreed stop): flush,
 * MPI_Finalize, exit(code). No MPI_Abort: mpirun and srun then report the code itself. */
BEIT_NORETURN void beit_exit_all(int code);
/* mkdir -p; returns 0 or -1 with errno set */
int beit_mkdir_p(const char *path);

#endif
