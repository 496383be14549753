/* fuzz_image.c: libFuzzer target for the PNG/JPEG decoders (src/io/image.c): probe, then decode
 * to gray and to RGB. Any input must give 0 or -1 with a message. Images the probe says are
 * over 2^24 pixels are not decoded: their buffers are legitimately large (up to 65536^2 x 3),
 * which the fuzzer would report as out-of-memory rather than as a bug. */
#include "beit/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    err[0] = 0;
    int h = 0, w = 0, gray = 0;
    if (image_probe_buffer(data, size, &h, &w, &gray, err, sizeof err) != 0) {
        if (!err[0]) abort();
        return 0;
    }
    if ((int64_t)h * w > ((int64_t)1 << 24)) return 0;
    for (int c = 1; c <= 3; c += 2) {
        beit_image im;
        err[0] = 0;
        if (image_load_buffer(data, size, c, &im, err, sizeof err) == 0) {
            size_t n = (size_t)im.h * (size_t)im.w * (size_t)im.c, sum = 0;
            if (im.c != c || im.h < 1 || im.w < 1) abort();
            for (size_t i = 0; i < n; i++) sum += im.pix[i];
            if (sum == (size_t)-1) abort();
            image_free(&im);
        } else if (!err[0]) {
            abort();
        }
    }
    return 0;
}
