/* fuzz_config.c: libFuzzer target for the job-file reader (src/io/config_*.c). The input is a
 * job file; each line that starts with "#set " (a YAML comment) is also applied afterwards as
 * `--set <rest of line>`. The text is read both as a job file and as a stored config. Any input
 * must give 0 or -1 with a message (no exit, no leak); a config that loads must survive the
 * round trip through config_to_yaml unchanged, as config.h promises. */
#include "beit/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Apply every "#set key=value" line of the input (up to 8). */
static int apply_sets(beit_config *c, const char *text, size_t n) {
    int bad = 0, count = 0;
    for (size_t i = 0; i < n && count < 8; i++) {
        if ((i > 0 && text[i - 1] != '\n') || n - i < 5 || memcmp(text + i, "#set ", 5) != 0) continue;
        size_t end = i + 5;
        while (end < n && text[end] != '\n') end++;
        char *a = malloc(end - i - 4);
        if (!a) abort();
        memcpy(a, text + i + 5, end - i - 5);
        a[end - i - 5] = 0;
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
    beit_config *c = malloc(sizeof *c);
    if (!c) abort();
    for (int stored = 0; stored <= 1; stored++) {
        char err[4096];
        err[0] = 0;
        if (config_parse_buffer(c, (const char *)data, size, "job.yaml", stored, err, sizeof err) != 0) {
            if (!err[0]) abort();
            continue;
        }
        round_trip(c);
        if (apply_sets(c, (const char *)data, size) == 0) round_trip(c);
    }
    free(c);
    return 0;
}
