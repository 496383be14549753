/* idx.h: IDX files (src/io/idx.c), the format of the MNIST/Fashion-MNIST distribution. */
#ifndef BEIT_IDX_H
#define BEIT_IDX_H

#include <stddef.h>
#include <stdint.h>

/* An IDX array of unsigned bytes, as in the MNIST/Fashion-MNIST distribution:
 *   images: magic 0x00000803, big-endian dims count, rows, cols, then count*rows*cols bytes
 *   labels: magic 0x00000801, big-endian dim count, then count bytes */
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
typedef struct {
    int64_t count;
    int rows, cols; /* 0 for labels */
    uint8_t *data;  /* [count, rows, cols] or [count] */
} idx_array;

/* Read a gzip-compressed IDX file (zlib gzread). `images` selects the expected magic.
 * Checks: a gzip file (not plain bytes), the magic number, plausible dimensions, every data
 * byte present (a short read or a zlib error such as a bad deflate block or CRC/length
 * mismatch in the trailer is an error), and nothing after the data (no extra bytes, a clean
 * end of the gzip stream). Returns 0, or -1 with "<what is wrong> (expected ...)" in err; the
 * caller prefixes the path. */
int idx_read_gz(const char *path, int images, idx_array *out, char *err, size_t errlen);
/* The same from n bytes of a gzip file in memory (the fuzz target). */
int idx_read_gz_buffer(const void *buf, size_t n, int images, idx_array *out, char *err, size_t errlen);
void idx_free(idx_array *a);

#endif
