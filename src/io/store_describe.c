/* `beit data info`: a dataset store described for people (layout, attributes, per-class
 * counts, mean/std, pixel-class frequencies), read through the validating reader (store.h). */
#include "beit/store.h"

#include "beit/describe.h"
#include "beit/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Samples per class of every split; returns 1 when some label is outside [0, num_classes). */
static int print_class_counts(FILE *f, beit_store *s) {
    fprintf(f, "\nsamples per class\n  %-4s %-20s", "#", "class");
    int64_t **counts = xcalloc((size_t)s->nsplits, sizeof *counts);
    int64_t *bad = xcalloc((size_t)s->nsplits, sizeof *bad);
    for (int i = 0; i < s->nsplits; i++) {
        fprintf(f, " %10s", s->splits[i].name);
        counts[i] = xcalloc((size_t)s->num_classes, sizeof **counts);
        int32_t *lab = xmalloc((size_t)(s->splits[i].count + 1) * sizeof *lab);
        store_read_labels(s, s->splits[i].name, lab);
        for (int64_t j = 0; j < s->splits[i].count; j++) {
            if (lab[j] >= 0 && lab[j] < s->num_classes) counts[i][lab[j]]++;
            else bad[i]++;
        }
        free(lab);
    }
    fprintf(f, "\n");
    for (int k = 0; k < s->num_classes; k++) {
        fprintf(f, "  %-4d %-20s", k, s->class_names[k]);
        for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10lld", (long long)counts[i][k]);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-4s %-20s", "", "total");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10lld", (long long)s->splits[i].count);
    fprintf(f, "\n");
    int any_bad = 0;
    for (int i = 0; i < s->nsplits; i++) {
        if (bad[i]) {
            fprintf(f, "  warning: split %s has %lld labels outside 0..%d\n", s->splits[i].name, (long long)bad[i],
                    s->num_classes - 1);
            any_bad = 1;
        }
        free(counts[i]);
    }
    free(counts);
    free(bad);
    return any_bad;
}

/* Per-class pixel frequencies of every split of a store with masks: every mask is read (and
 * so checked by store_read_masks). */
static void print_pixel_freqs(FILE *f, beit_store *s) {
    enum { RB = 1024 };
    size_t mb = (size_t)s->height * s->width;
    int64_t *idx = xmalloc(RB * sizeof *idx);
    uint8_t *m = xmalloc(RB * mb);
    double **freq = xcalloc((size_t)s->nsplits, sizeof *freq);
    for (int i = 0; i < s->nsplits; i++) {
        int64_t cnt[256] = {0};
        for (int64_t j0 = 0; j0 < s->splits[i].count; j0 += RB) {
            int nb = (int)(s->splits[i].count - j0 < RB ? s->splits[i].count - j0 : RB);
            for (int j = 0; j < nb; j++) idx[j] = j0 + j;
            store_read_masks(s, s->splits[i].name, idx, nb, m);
            for (size_t p = 0; p < (size_t)nb * mb; p++) cnt[m[p]]++;
        }
        freq[i] = xcalloc((size_t)s->num_classes, sizeof **freq);
        double tot = (double)s->splits[i].count * (double)mb;
        for (int k = 0; k < s->num_classes; k++) freq[i][k] = tot > 0 ? 100.0 * (double)cnt[k] / tot : 0;
    }
    fprintf(f, "\npixels per class (%% of the split's pixels)\n  %-4s %-20s", "#", "class");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %10s", s->splits[i].name);
    fprintf(f, "\n");
    for (int k = 0; k < s->num_classes; k++) {
        fprintf(f, "  %-4d %-20s", k, s->class_names[k]);
        for (int i = 0; i < s->nsplits; i++) fprintf(f, " %9.3f%%", freq[i][k]);
        fprintf(f, "\n");
    }
    for (int i = 0; i < s->nsplits; i++) free(freq[i]);
    free(freq);
    free(idx);
    free(m);
}

/* --verify: every image block read (a damaged chunk fails its read: exit 3) and the mean/std
 * recomputed over the stats split exactly as the writer did (per-channel histograms) */
static void verify_images(FILE *f, beit_store *s) {
    enum { RB = 256 };
    const int C = s->channels;
    const size_t ib = (size_t)s->height * s->width * C;
    int64_t *idx = xmalloc(RB * sizeof *idx), hist[STORE_MAX_CHANNELS][256];
    memset(hist, 0, sizeof hist);
    uint8_t *img = xmalloc(RB * ib);
    store_set_cache_budget(s, 0); /* one pass: nothing to keep */
    for (int i = 0; i < s->nsplits; i++) {
        int stats = !strcmp(s->splits[i].name, s->stats_split);
        for (int64_t j0 = 0; j0 < s->splits[i].count; j0 += RB) {
            int nb = (int)(s->splits[i].count - j0 < RB ? s->splits[i].count - j0 : RB);
            for (int j = 0; j < nb; j++) idx[j] = j0 + j;
            store_read(s, s->splits[i].name, idx, nb, img, NULL);
            if (stats)
                for (size_t p = 0; p < (size_t)nb * ib; p += (size_t)C)
                    for (int k = 0; k < C; k++) hist[k][img[p + (size_t)k]]++;
        }
    }
    for (int k = 0; k < C; k++) { /* the writer's formula (store_writer.c store_commit) */
        double n = 0, sum = 0, v = 0;
        for (int b = 0; b < 256; b++) {
            n += (double)hist[k][b];
            sum += (double)hist[k][b] * (b / 255.0);
        }
        double m = n > 0 ? sum / n : 0;
        for (int b = 0; b < 256; b++) v += (double)hist[k][b] * (b / 255.0 - m) * (b / 255.0 - m);
        double sd = n > 0 ? sqrt(v / n) : 0;
        if (fabs(m - s->mean[k]) > 1e-9 || fabs(sd - s->std[k]) > 1e-9)
            beit_fatal_user(BEIT_EXIT_DATA, "%s: attributes 'mean'[%d] = %.9g, 'std'[%d] = %.9g, but the images of split "
                            "%s give %.9g, %.9g (the store changed after it was written)", s->path, k, s->mean[k], k,
                            s->std[k], s->stats_split, m, sd);
    }
    fprintf(f, "\nverified: every image%s block read; labels in [0, %d); mean/std match the images of "
               "split %s\n", store_has_masks(s) ? ", label and mask" : " and label", s->num_classes, s->stats_split);
    free(idx);
    free(img);
}

int store_describe(FILE *f, const char *path, int verify) {
    beit_store *s = store_open(path, MPI_COMM_NULL); /* validates; errors exit 3 */
    int C = s->channels;

    fprintf(f, "%s: beit dataset store (format %s, version %d)\n", path, STORE_FORMAT, STORE_FORMAT_VERSION);
    fprintf(f, "  source       %s\n", s->source);
    fprintf(f, "  uuid         %s\n", s->uuid);
    fprintf(f, "  created_by   %s\n", s->created_by);
    fprintf(f, "  images       %d x %d x %d (height x width x channels), uint8\n", s->height, s->width, C);
    fprintf(f, "  classes      %d\n", s->num_classes);
    if (store_has_masks(s))
        fprintf(f, "  masks        %d x %d per-pixel class, uint8 (pixel_labels = 1)\n", s->height, s->width);
    fprintf(f, "  splits      ");
    for (int i = 0; i < s->nsplits; i++) fprintf(f, " %s (%lld)", s->splits[i].name, (long long)s->splits[i].count);
    fprintf(f, "\n  mean         [");
    for (int k = 0; k < C; k++) fprintf(f, "%s%.6f", k ? ", " : "", s->mean[k]);
    fprintf(f, "]  (per channel, pixels scaled to [0,1], over split %s)\n  std          [", s->stats_split);
    for (int k = 0; k < C; k++) fprintf(f, "%s%.6f", k ? ", " : "", s->std[k]);
    fprintf(f, "]\n");
    describe_layout(f, s->file);

    fprintf(f, "\nattributes of /\n");
    describe_attrs(f, s->file, "  ", NULL);

    int any_bad = print_class_counts(f, s);
    if (store_has_masks(s)) print_pixel_freqs(f, s);
    if (verify && !any_bad) verify_images(f, s);
    fflush(f);
    int nk = s->num_classes;
    store_close(s);
    if (any_bad) beit_fatal_user(BEIT_EXIT_DATA, "%s: labels outside [0, num_classes) (expected 0..%d)", path, nk - 1);
    return 0;
}
