/* Checked allocation: an out-of-memory is reported where it happened, with the size. */
#include "beit/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void *xmalloc_at(const char *file, int line, size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc_at(const char *file, int line, size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "out of memory allocating %zu x %zu bytes",
                      count, size);
    return p;
}

void *xrealloc_at(const char *file, int line, void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "out of memory reallocating %zu bytes", n);
    return q;
}

char *xstrdup_at(const char *file, int line, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc_at(file, line, n);
    memcpy(p, s, n);
    return p;
}

float *xalloc_floats_at(const char *file, int line, size_t n) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        beit_fatal_at(file, line, BEIT_EXIT_FAILURE, "out of memory allocating %zu floats", n);
    memset(p, 0, bytes);
    return p;
}

char *xasprintf(const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) beit_fatal(BEIT_EXIT_FAILURE, "bad format string: %s", fmt);
    char *s = xmalloc((size_t)n + 1);
    if ((size_t)n < sizeof small) {
        memcpy(s, small, (size_t)n + 1);
        return s;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int beit_errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
