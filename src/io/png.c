/* PNG output (libpng simplified API), written atomically, and the tile-grid compositor used
 * for reconstruction grids and attention maps. */
#include "beit/fsutil.h"
#include "beit/image.h"

#include <errno.h>
#include <png.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int png_write(const char *path, const uint8_t *pix, int h, int w, int c, char *err, size_t errlen) {
    if ((c != 1 && c != 3) || h < 1 || w < 1) {
        if (err && errlen) snprintf(err, errlen, "cannot write a %dx%dx%d PNG (expected gray or RGB)", h, w, c);
        errno = EINVAL;
        return -1;
    }
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    char *tmp = beit_tmp_path(path);
    int ok = png_image_write_to_file(&im, tmp, 0, pix, 0, NULL);
    if (!ok) {
        if (err && errlen) snprintf(err, errlen, "cannot write PNG: %s", im.message);
        png_image_free(&im);
        unlink(tmp);
        free(tmp);
        errno = EIO;
        return -1;
    }
    png_image_free(&im);
    if (beit_commit_file(tmp, path) != 0) {
        int e = errno;
        if (err && errlen) snprintf(err, errlen, "cannot move PNG into place: %s", strerror(e));
        unlink(tmp);
        free(tmp);
        errno = e;
        return -1;
    }
    free(tmp);
    return 0;
}

void image_grid_size(int n, int cols, int h, int w, int gap, int *grid_h, int *grid_w) {
    if (cols < 1) cols = 1;
    if (cols > n && n > 0) cols = n;
    int rows = n > 0 ? (n + cols - 1) / cols : 0;
    *grid_h = rows * h + (rows + 1) * gap;
    *grid_w = cols * w + (cols + 1) * gap;
}

void image_grid(uint8_t *out, const uint8_t *tiles, int n, int cols, int h, int w, int c, int gap, uint8_t background) {
    int gh, gw;
    image_grid_size(n, cols, h, w, gap, &gh, &gw);
    if (cols < 1) cols = 1;
    if (cols > n && n > 0) cols = n;
    memset(out, background, (size_t)gh * gw * c);
    size_t row_bytes = (size_t)w * c;
    for (int t = 0; t < n; t++) {
        int r = t / cols, col = t % cols;
        int y0 = gap + r * (h + gap), x0 = gap + col * (w + gap);
        const uint8_t *tile = tiles + (size_t)t * h * row_bytes;
        for (int y = 0; y < h; y++)
            memcpy(out + ((size_t)(y0 + y) * gw + x0) * c, tile + (size_t)y * row_bytes, row_bytes);
    }
}
