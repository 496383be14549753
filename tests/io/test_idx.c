/* io/idx: IDX parsing of good and damaged .gz files (truncated, corrupted, wrong magic, extra
 * data, not gzip, missing): each rejected with the message the importer shows. The files are
 * written here with zlib from synth.h's formula. */
#include "beit/error.h"
#include "beit/idx.h"
#include "harness.h"
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int idx_fails_with(const char *path, int images, const char *needle, const char *what) {
    idx_array a;
    char err[512] = "";
    int rc = idx_read_gz(path, images, &a, err, sizeof err);
    int ok = rc == -1 && strstr(err, needle) != NULL;
    if (!ok) t_diag("%s: rc %d, message: %s", what, rc, err);
    return t_ok(ok, "idx: %s is rejected with \"%s\" (got: %s)", what, needle, err);
}

static void test_idx(void) {
    char *img = t_path("img.gz"), *lab = t_path("lab.gz");
    const uint32_t N = 50, R = 28, C = 28;
    t_ok(synth_write_idx_pair(img, lab, N, R, C, N) == 0, "idx: wrote synthetic gz pair");
    idx_array a, b;
    char err[512] = "";
    int rc = idx_read_gz(img, 1, &a, err, sizeof err);
    int ok = rc == 0 && a.count == N && a.rows == (int)R && a.cols == (int)C;
    for (uint32_t i = 0; ok && i < N; i++)
        for (uint32_t p = 0; p < R * C; p++) ok &= a.data[(size_t)i * R * C + p] == synth_pixel(i, p);
    t_ok(ok, "idx: good image file reads back %u images of %ux%u with the right bytes (%s)", N, R, C, err);
    rc = idx_read_gz(lab, 0, &b, err, sizeof err);
    ok = rc == 0 && b.count == N && b.rows == 0;
    for (uint32_t i = 0; ok && i < N; i++) ok &= b.data[i] == synth_label(i, 10);
    t_ok(ok, "idx: good label file reads back %u labels", N);
    if (a.data) idx_free(&a);
    if (b.data) idx_free(&b);

    idx_fails_with(lab, 1, "bad magic number 0x00000801 (a label file) (expected 0x00000803",
                   "label file read as images");
    idx_fails_with(img, 0, "bad magic number 0x00000803", "image file read as labels");

    long size = synth_file_size(img);
    char *cp = t_path("x.gz");
    /* truncated in the middle of the data */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, size / 2);
    idx_fails_with(cp, 1, "truncated", "gz cut at half its size");
    /* truncated inside the header (gzip header + a few deflate bytes) */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, 14);
    idx_fails_with(cp, 1, "truncated (unexpected end of file) in the header: 0 of 16 bytes",
                   "gz cut inside the IDX header");
    /* truncated just before the 8-byte trailer: all data there, the end is missing */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_truncate(cp, size - 8);
    idx_fails_with(cp, 1, "expected a clean end of the gzip stream", "gz without its CRC/length trailer");
    /* flipped bytes inside the deflate stream */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_flip(cp, size / 2, 16);
    idx_fails_with(cp, 1, "gzip stream corrupted (", "gz with 16 flipped bytes in the deflate stream");
    /* flipped CRC only: every data byte decodes, the check at the end must catch it */
    synth_write_idx_pair(cp, lab, N, R, C, N);
    synth_flip(cp, size - 8, 2);
    idx_fails_with(cp, 1, "corrupted (incorrect data check)", "gz with a damaged CRC-32");
    /* extra data after the declared count */
    uint8_t d[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 0};
    uint32_t dims[1] = {10};
    synth_write_idx_gz(cp, IDX_MAGIC_LABELS, 1, dims, d, 10, 7);
    idx_fails_with(cp, 0, "7 bytes of extra data after the 10 labels", "label file with 7 extra bytes");
    /* not gzip at all */
    FILE *f = fopen(cp, "wb");
    uint8_t raw[18] = {0, 0, 8, 1, 0, 0, 0, 10};
    fwrite(raw, 1, sizeof raw, f);
    fclose(f);
    idx_fails_with(cp, 0, "not a gzip file", "uncompressed IDX bytes");
    char *missing = t_path("missing.gz");
    idx_fails_with(missing, 0, "cannot open", "missing file");
    free(missing);
    free(cp);
    free(img);
    free(lab);
}

int main(void) {
    t_tmpdir("beit_test_idx");
    test_idx();
    t_tmpdir_remove();
    return t_done();
}
