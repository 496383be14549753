/* prof.c: per-category step timers and step records (include/beit/prof.h).
 *
 * The one process-wide state of the profiler lives here (why: prof.h). Exclusive timing with
 * a stack of open regions: on every enter and leave, the time since the last event is charged
 * to the innermost open region's category, so nested regions are not counted twice. */
#include "beit/prof.h"

#include "beit/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROF_MAX_DEPTH 16

int beit_prof_ops = 0;

static struct {
    int recording, started, max_steps, nsteps;
    prof_step *steps;
    long rss_init_kb, hwm_kb;
    int hwm_reset;
    /* running totals since the process started (per-op timers) */
    double cat_s[PROF_NCAT], cat_flops[PROF_NCAT];
    int64_t cat_calls[PROF_NCAT];
    /* open regions */
    int depth;
    prof_cat stack[PROF_MAX_DEPTH];
    double last;
    /* the current step */
    int in_step;
    double step_t0;
    prof_step snap; /* totals at prof_step_begin */
} P;

static const char *NAMES[PROF_NCAT] = {"gemm",     "attn_gemm", "softmax", "attention", "layernorm",
                                       "gelu",     "residual",  "loss",    "embed",     "conv",
                                       "optimizer", "data",     "comm"};

const char *prof_cat_name(prof_cat c) { return c >= 0 && c < PROF_NCAT ? NAMES[c] : "?"; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void prof_begin(prof_cat c) {
    double t = now_s();
    if (P.depth > 0) P.cat_s[P.stack[P.depth - 1]] += t - P.last;
    if (P.depth == PROF_MAX_DEPTH) beit_fatal(BEIT_EXIT_FAILURE, "profiler: regions nested deeper than %d", PROF_MAX_DEPTH);
    P.stack[P.depth++] = c;
    P.cat_calls[c]++;
    P.last = t;
}

void prof_end(prof_cat c) {
    double t = now_s();
    if (P.depth == 0 || P.stack[P.depth - 1] != c)
        beit_fatal(BEIT_EXIT_FAILURE, "profiler: end of region '%s' but the innermost open region is '%s'",
                   prof_cat_name(c), P.depth ? prof_cat_name(P.stack[P.depth - 1]) : "(none)");
    P.cat_s[c] += t - P.last;
    P.depth--;
    P.last = t;
}

void prof_add_flops(prof_cat c, double flops) { P.cat_flops[c] += flops; }

int prof_read_rss(long *rss_kb, long *hwm_kb) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, f)) {
        long v;
        if (sscanf(line, "VmRSS: %ld", &v) == 1) {
            if (rss_kb) *rss_kb = v;
            got |= 1;
        } else if (sscanf(line, "VmHWM: %ld", &v) == 1) {
            if (hwm_kb) *hwm_kb = v;
            got |= 2;
        }
    }
    fclose(f);
    return got == 3 ? 0 : -1;
}

int prof_reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : -1;
}

void prof_record_steps(int max_steps, int ops) {
    free(P.steps);
    memset(&P, 0, sizeof P);
    P.recording = 1;
    P.max_steps = max_steps > 0 ? max_steps : 1;
    P.steps = xcalloc((size_t)P.max_steps, sizeof *P.steps);
    beit_prof_ops = ops != 0;
}

void prof_loop_start(void) {
    if (!P.recording) return;
    P.started = 1;
    P.nsteps = 0;
    P.hwm_reset = prof_reset_hwm() == 0;
    prof_read_rss(&P.rss_init_kb, &P.hwm_kb);
}

void prof_step_begin(void) {
    if (!P.started) return;
    P.in_step = 1;
    memcpy(P.snap.cat_s, P.cat_s, sizeof P.cat_s);
    memcpy(P.snap.cat_flops, P.cat_flops, sizeof P.cat_flops);
    memcpy(P.snap.cat_calls, P.cat_calls, sizeof P.cat_calls);
    P.step_t0 = now_s();
}

void prof_step_end(void) {
    if (!P.started || !P.in_step) return;
    double t = now_s();
    P.in_step = 0;
    if (P.nsteps >= P.max_steps) return; /* keep the first max_steps */
    prof_step *s = &P.steps[P.nsteps++];
    s->seconds = t - P.step_t0;
    for (int c = 0; c < PROF_NCAT; c++) {
        s->cat_s[c] = P.cat_s[c] - P.snap.cat_s[c];
        s->cat_flops[c] = P.cat_flops[c] - P.snap.cat_flops[c];
        s->cat_calls[c] = P.cat_calls[c] - P.snap.cat_calls[c];
    }
    prof_read_rss(&s->rss_kb, &P.hwm_kb);
}

prof_record prof_get_record(void) {
    prof_record r = {P.nsteps, P.steps, P.rss_init_kb, P.hwm_kb, P.hwm_reset, beit_prof_ops};
    return r;
}
