/* log.h: the process-wide rank info, logging from rank 0, wall-clock timing. */
#ifndef BEIT_LOG_H
#define BEIT_LOG_H

#include "beit/error.h"

#include <stddef.h>

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

/* ---- timing ------------------------------------------------------------------------------ */
double beit_now(void); /* seconds, monotonic */
/* "1h02m03s" style into buf */
const char *beit_fmt_duration(double seconds, char *buf, size_t n);

#endif
