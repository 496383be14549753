/* replay.c: the fuzz targets of tools/fuzz/ without libFuzzer. Linked with one target
 * (fuzz_config.c, fuzz_idx.c or fuzz_image.c), it calls that target's LLVMFuzzerTestOneInput on
 * every file of each directory given (the kept corpus, the crashers found so far) and prints
 * TAP: one line per directory with its count. An input that crashes the target, or that the
 * target rejects (abort), ends the program without a plan, so the test fails; the last
 * "# <file>" line names the input.
 *   replay DIR...   */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The whole file; NULL if unreadable. */
static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len == cap) buf = realloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

/* Replay every regular file of dir (sorted by name); returns the count, -1 if unreadable. */
static int replay_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue; /* ., .., and .gitkeep */
        if (n == cap) names = realloc(names, (size_t)(cap = 2 * cap + 64) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_names);
    int done = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        snprintf(path, len, "%s/%s", dir, names[i]);
        size_t size = 0;
        uint8_t *data = slurp(path, &size);
        if (data) {
            printf("# %s\n", path);
            fflush(stdout);
            LLVMFuzzerTestOneInput(data, size);
            free(data);
            done++;
        } else {
            t_diag("cannot read %s", path);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return done == n ? n : -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        int n = replay_dir(argv[i]);
        t_ok(n >= 0, "%s: %d inputs replayed", argv[i], n);
    }
    return t_done();
}
