/* Logging: rank 0 speaks for the job; beit_log_all for per-rank facts. */
#include "beit/log.h"

#include <stdarg.h>
#include <stdio.h>

/* where beit_log writes: stdout, or stderr for commands whose stdout is a result (beit eval) */
static FILE *g_log_stream;

void beit_log_to_stderr(void) { g_log_stream = stderr; }

void beit_log(const char *fmt, ...) {
    if (beit_rank() != 0) return;
    FILE *f = g_log_stream ? g_log_stream : stdout;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
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
