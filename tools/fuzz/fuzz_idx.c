/* fuzz_idx.c: libFuzzer target for the IDX reader (src/io/idx.c): the input is a gzip file,
 * read as an image file and as a label file. Any input must give 0 or -1 with a message. */
#include "beit/idx.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
    return 0;
}
