/* fuzz_idx.c: libFuzzer target for the IDX reader (src/io/idx.c), read as an image file and as a
 * label file. An input that starts like a gzip file (1f 8b) is read as is (zlib's framing and
 * damage); any other input is first gzip-compressed here, so that the mutations reach the IDX
 * header and sizes behind an intact stream. Any input must give 0 or -1 with a message. */
#include "beit/idx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a one-member gzip stream (malloc'd; *n its length) */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *n) {
    z_stream z = {0};
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    size_t cap = deflateBound(&z, (uLong)size) + 64;
    uint8_t *out = malloc(cap);
    if (!out) abort();
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    *n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *packed = NULL;
    if (!(size >= 2 && data[0] == 0x1f && data[1] == 0x8b)) {
        data = packed = gzip(data, size, &size);
    }
    for (int images = 0; images <= 1; images++) {
        idx_array a;
        char err[512];
        err[0] = 0;
        if (idx_read_gz_buffer(data, size, images, &a, err, sizeof err) == 0) {
            /* touch every byte, so a short buffer shows under ASan */
            size_t n = (size_t)a.count * (images ? (size_t)a.rows * (size_t)a.cols : 1), sum = 0;
            for (size_t i = 0; i < n; i++) sum += a.data[i];
            if (sum == (size_t)-1) abort();
            idx_free(&a);
        } else if (!err[0]) {
            abort(); /* an error must say what is wrong */
        }
    }
    free(packed);
    return 0;
}
