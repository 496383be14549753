/* Synthetic data shared by the store tests (io/) and the data generators of the script tests
 * (data/gen_idx.c, data/gen_images.c): deterministic pixel and label patterns
 * (so a reader of the store can be checked against the formula, independently of the
 * writer) and gzip-compressed IDX files written with zlib. */
#ifndef BEIT_TEST_SYNTH_H
#define BEIT_TEST_SYNTH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

/* pixel p (flat index within the image) of sample i: a hash, so every sample differs and
 * the deflate stream is not trivially compressible */
static inline uint8_t synth_pixel(int64_t i, int64_t p) {
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (uint32_t)(p * 40503u + 17u);
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    return (uint8_t)x;
}
static inline int synth_label(int64_t i, int num_classes) { return (int)((i * 7 + 3) % num_classes); }

static inline void be32_put(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write an IDX file compressed with gzip: magic, dims, then the data (n bytes) and `extra`
 * bytes of junk after it. Returns 0 on success. */
static inline int synth_write_idx_gz(const char *path, uint32_t magic, int ndims, const uint32_t *dims,
                                     const uint8_t *data, size_t n, size_t extra) {
    gzFile f = gzopen(path, "wb6");
    if (!f) return -1;
    uint8_t hdr[16];
    be32_put(hdr, magic);
    for (int d = 0; d < ndims; d++) be32_put(hdr + 4 + 4 * d, dims[d]);
    int ok = gzwrite(f, hdr, (unsigned)(4 + 4 * ndims)) == 4 + 4 * ndims;
    if (n) ok &= gzwrite(f, data, (unsigned)n) == (int)n;
    for (size_t i = 0; i < extra && ok; i++) ok &= gzputc(f, (int)(i & 0xff)) != -1;
    return (gzclose(f) == Z_OK && ok) ? 0 : -1;
}

/* The synthetic images/labels of an IDX pair: count images of rows x cols, labels 0..9. */
static inline int synth_write_idx_pair(const char *img_path, const char *lab_path, uint32_t count, uint32_t rows,
                                       uint32_t cols, uint32_t label_count) {
    size_t n = (size_t)count * rows * cols;
    uint8_t *img = (uint8_t *)malloc(n ? n : 1), *lab = (uint8_t *)malloc(label_count ? label_count : 1);
    for (uint32_t i = 0; i < count; i++)
        for (size_t p = 0; p < (size_t)rows * cols; p++) img[(size_t)i * rows * cols + p] = synth_pixel(i, (int64_t)p);
    for (uint32_t i = 0; i < label_count; i++) lab[i] = (uint8_t)synth_label(i, 10);
    uint32_t idims[3] = {count, rows, cols}, ldims[1] = {label_count};
    int rc = synth_write_idx_gz(img_path, 0x00000803u, 3, idims, img, n, 0);
    rc |= synth_write_idx_gz(lab_path, 0x00000801u, 1, ldims, lab, label_count, 0);
    free(img);
    free(lab);
    return rc;
}

/* File surgery for the damage tests. */
static inline long synth_file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}
static inline int synth_truncate(const char *path, long keep) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char *buf = (char *)malloc((size_t)keep);
    size_t got = fread(buf, 1, (size_t)keep, f);
    fclose(f);
    f = fopen(path, "wb");
    if (!f) {
        free(buf);
        return -1;
    }
    fwrite(buf, 1, got, f);
    fclose(f);
    free(buf);
    return 0;
}
/* XOR 0xff into `len` bytes at offset `at` */
static inline int synth_flip(const char *path, long at, long len) {
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    for (long i = 0; i < len; i++) {
        fseek(f, at + i, SEEK_SET);
        int c = fgetc(f);
        fseek(f, at + i, SEEK_SET);
        fputc((c ^ 0xff) & 0xff, f);
    }
    fclose(f);
    return 0;
}

#endif
