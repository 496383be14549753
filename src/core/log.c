/* Logging: rank 0 speaks for the job; beit_log_all for per-rank facts. */
#include "beit/core.h"

#include <stdarg.h>
#include <stdio.h>

void beit_log(const char *fmt, ...) {
    if (beit_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void beit_warn(const char *fmt, ...) {
    if (beit_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("beit: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void beit_log_all(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "[rank %d] ", beit_rank());
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}
