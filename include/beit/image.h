/* image.h: 8-bit images in memory, PNG/JPEG decoding (libpng, libjpeg), resampling, PNG output
 * and a grid compositor (reconstruction grids, attention maps).
 *
 * Layout everywhere: pixels row-major, rows top to bottom, channels interleaved:
 *   pix[(y * w + x) * c + k],  uint8, c = 1 (gray) or 3 (RGB).
 * Functions that can fail on user files return 0 on success or -1 with a one-line reason in
 * err (errlen bytes, may be NULL); the caller prefixes the path and picks the exit code. */
#ifndef BEIT_IMAGE_H
#define BEIT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int h, w, c;
    uint8_t *pix; /* [h, w, c]; owned, free with image_free */
} beit_image;

/* ---- decoding (src/io/image.c) ---------------------------------------------------------- */
/* The format is sniffed from the first bytes (PNG signature or JPEG SOI), not the extension.
 * Probe: reads only the header. *gray = 1 when the file stores gray samples only (PNG without
 * the colour flag, single-component JPEG). */
int image_probe(const char *path, int *h, int *w, int *gray, char *err, size_t errlen);
/* Decode to `channels` (1 = gray, 3 = RGB). Colour -> gray uses the decoder's conversion;
 * gray -> RGB replicates the sample. Alpha is composited onto white. 16-bit PNGs are reduced
 * to 8 bits. CMYK/YCCK JPEGs are converted to RGB (Adobe-inverted when the Adobe marker says
 * so). A JPEG that ends early (libjpeg's "premature end" warning) counts as undecodable;
 * other libjpeg warnings are tolerated. EXIF orientation is ignored. */
int image_load(const char *path, int channels, beit_image *out, char *err, size_t errlen);
/* The same from n bytes in memory (the fuzz targets; an image held by the caller). */
int image_probe_buffer(const void *buf, size_t n, int *h, int *w, int *gray, char *err, size_t errlen);
int image_load_buffer(const void *buf, size_t n, int channels, beit_image *out, char *err, size_t errlen);
void image_free(beit_image *im);

/* Resample the box [x0, x1) x [y0, y1) of src (source pixel coordinates, pixel i covers
 * [i, i+1)) to dst [dh, dw, c] with a separable triangle (bilinear) filter. When shrinking,
 * the triangle is widened by the scale factor, so the filter averages every covered source
 * pixel (antialiased, the rule of PIL's Image.resize(BILINEAR)). Weights are normalised per
 * output pixel; results are rounded to nearest and clamped to 0..255. Near the box edges the
 * filter also reads source pixels just outside the box (as resizing the whole image and then
 * cropping would); only the image border clips it. */
void image_resample(const uint8_t *src, int sh, int sw, int c, double x0, double y0, double x1, double y1, uint8_t *dst,
                    int dh, int dw);
/* The same box resampled with PIL's Lanczos filter (a = 3, support widened by the downscale
 * factor: antialiased) and PIL's arithmetic: 22-bit fixed-point weights, a horizontal pass
 * over the rows the vertical pass reads rounded to bytes, then the vertical pass. The bytes
 * equal PIL's Image.resize((dw, dh), Image.LANCZOS, box=(x0, y0, x1, y1)) on an 8-bit image
 * (tests/io/lanczos.sh). Coordinates are float, as PIL's box. */
void image_resample_lanczos(const uint8_t *src, int sh, int sw, int c, float x0, float y0, float x1, float y1,
                            uint8_t *dst, int dh, int dw);
/* Center-crop the largest square and resample it to s x s: the same picture as "resize the
 * shorter side to s, then center crop s x s", done in one pass. dst [s, s, c]. */
void image_center_crop_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int s);

/* ---- output (src/io/png.c) ---------------------------------------------------------------- */
/* Write an 8-bit gray (c = 1) or RGB (c = 3) PNG atomically (beit_tmp_path + beit_commit_file):
 * a failed write leaves nothing at `path`. */
int png_write(const char *path, const uint8_t *pix, int h, int w, int c, char *err, size_t errlen);

/* Grid of n tiles, each [h, w, c], in `cols` columns (rows = ceil(n / cols)), filled row by row,
 * with `gap` pixels of `background` between tiles and around the border:
 *   grid height = rows * h + (rows + 1) * gap,  width = cols * w + (cols + 1) * gap. */
void image_grid_size(int n, int cols, int h, int w, int gap, int *grid_h, int *grid_w);
/* out [grid_h, grid_w, c] (sizes from image_grid_size); tiles [n, h, w, c]. */
void image_grid(uint8_t *out, const uint8_t *tiles, int n, int cols, int h, int w, int c, int gap, uint8_t background);

#endif
