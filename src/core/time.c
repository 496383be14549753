#define _POSIX_C_SOURCE 200809L
#include "beit/log.h"

#include <time.h>

double beit_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *beit_fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0)) s = 0;
    long t = (long)(s + 0.5);
    long h = t / 3600, m = (t / 60) % 60, sec = t % 60;
    if (h > 0) snprintf(buf, n, "%ldh%02ldm%02lds", h, m, sec);
    else if (m > 0) snprintf(buf, n, "%ldm%02lds", m, sec);
    else snprintf(buf, n, "%lds", sec);
    return buf;
}
