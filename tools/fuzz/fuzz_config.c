/* fuzz_config.c: libFuzzer target for the job-file reader (src/io/config_*.c). The input is a
 * job file, optionally followed by a NUL byte and `--set` lines: each line after the NUL (any
 * bytes, as argv may hold) is applied afterwards as `--set <line>`; without a NUL, each line of
 * the job that starts with "#set " (a YAML comment) is. The job is read both as a job file
 * and as a stored config. Any input
 * must give 0 or -1 with a message (no exit, no leak); a config that loads must survive the
 * round trip through config_to_yaml unchanged, as config.h promises. */
#include "beit/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Apply every line of text that starts with prefix (up to 8), as --set <rest of the line>.
 * A NUL in the line ends it (argv strings hold no NUL). */
static int apply_sets(beit_config *c, const char *text, size_t n, const char *prefix) {
    int bad = 0, count = 0;
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < n && count < 8; i++) {
        if ((i > 0 && text[i - 1] != '\n') || n - i < pl || memcmp(text + i, prefix, pl) != 0) continue;
        size_t end = i + pl;
        while (end < n && text[end] != '\n') end++;
        char *a = malloc(end - i - pl + 1);
        if (!a) abort();
        memcpy(a, text + i + pl, end - i - pl);
        a[end - i - pl] = 0;
        char err[4096];
        err[0] = 0;
        if (config_try_set(c, a, err, sizeof err) != 0) {
            if (!err[0]) abort(); /* an error must say what is wrong */
            bad = 1;
        }
        free(a);
        count++;
    }
    return bad;
}

static void round_trip(const beit_config *c) {
    char *y = config_to_yaml(c);
    beit_config *d = malloc(sizeof *d);
    if (!d) abort();
    char err[4096];
    if (config_parse_buffer(d, y, strlen(y), "resolved", 1, err, sizeof err) != 0) abort();
    memcpy(d->given, c->given, sizeof d->given); /* the resolved YAML gives every key */
    if (memcmp(c, d, sizeof *c) != 0) abort();
    free(d);
    free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data, *sets = text, *nul = memchr(text, 0, size);
    size_t n = size, nsets = size;
    const char *prefix = "#set ";
    if (nul) { /* job, NUL, --set lines */
        n = (size_t)(nul - text);
        sets = nul + 1;
        nsets = size - n - 1;
        prefix = "";
    }
    beit_config *c = malloc(sizeof *c);
    if (!c) abort();
    for (int stored = 0; stored <= 1; stored++) {
        char err[4096];
        err[0] = 0;
        if (config_parse_buffer(c, text, n, "job.yaml", stored, err, sizeof err) != 0) {
            if (!err[0]) abort();
            continue;
        }
        round_trip(c);
        if (apply_sets(c, sets, nsets, prefix) == 0) round_trip(c);
    }
    free(c);
    return 0;
}
