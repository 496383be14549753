/* io/png: PNG write/decode round trips (RGB, gray, gray decoded to RGB), image_probe, an
 * unwritable path and a truncated file, and the grid compositor. */
#include "beit/image.h"
#include "harness.h"
#include "synth.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void test_png(void) {
    enum { H = 5, W = 7 };
    uint8_t rgb[H * W * 3], gray[H * W];
    for (int i = 0; i < H * W * 3; i++) rgb[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(i * 53 + 1);
    char *pr = t_path("rgb.png"), *pg = t_path("gray.png");
    char err[256] = "";
    t_ok(png_write(pr, rgb, H, W, 3, err, sizeof err) == 0 && png_write(pg, gray, H, W, 1, err, sizeof err) == 0,
         "png_write: RGB and gray files written (%s)", err);
    beit_image a, b, c;
    int ha = 0, wa = 0, hb = 0, wb = 0, ga = -1, gb = -1;
    int pa = image_probe(pr, &ha, &wa, &ga, err, sizeof err), pb = image_probe(pg, &hb, &wb, &gb, err, sizeof err);
    t_ok(pa == 0 && pb == 0 && ha == H && wa == W && hb == H && wb == W && ga == 0 && gb == 1,
         "image_probe: sizes %dx%d and %dx%d, RGB file not gray, gray file gray", ha, wa, hb, wb);
    int ok = image_load(pr, 3, &a, err, sizeof err) == 0 && a.h == H && a.w == W && a.c == 3 &&
             memcmp(a.pix, rgb, sizeof rgb) == 0;
    t_ok(ok, "png: RGB round trip is exact");
    ok = image_load(pg, 3, &b, err, sizeof err) == 0 && b.c == 3;
    for (int i = 0; ok && i < H * W; i++)
        ok &= b.pix[i * 3] == gray[i] && b.pix[i * 3 + 1] == gray[i] && b.pix[i * 3 + 2] == gray[i];
    t_ok(ok, "png: gray file decoded to RGB replicates the sample");
    ok = image_load(pg, 1, &c, err, sizeof err) == 0 && c.c == 1 && memcmp(c.pix, gray, sizeof gray) == 0;
    t_ok(ok, "png: gray round trip is exact");
    image_free(&a);
    image_free(&b);
    image_free(&c);
    char *bad = t_path("no/such/dir/x.png");
    t_ok(png_write(bad, gray, H, W, 1, err, sizeof err) == -1 && !exists(bad), "png_write: unwritable path fails (%s)",
         err);
    free(bad);
    /* a truncated PNG is reported */
    synth_truncate(pr, synth_file_size(pr) / 2);
    t_ok(image_load(pr, 3, &a, err, sizeof err) == -1 && strstr(err, "PNG"), "png: truncated file rejected (%s)", err);
    free(pr);
    free(pg);

    /* grid: 5 tiles of 2x3x1 in 3 columns with gap 1 -> 2 rows: 2*2+3 = 7 high, 3*3+4 = 13 wide */
    uint8_t tiles[5 * 2 * 3];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 6; i++) tiles[t * 6 + i] = (uint8_t)(10 * (t + 1) + i);
    int gh, gw;
    image_grid_size(5, 3, 2, 3, 1, &gh, &gw);
    uint8_t grid[7 * 13];
    image_grid(grid, tiles, 5, 3, 2, 3, 1, 1, 255);
    /* tile 4 (row 1, col 1) starts at y = 1 + 1*(2+1) = 4, x = 1 + 1*(3+1) = 5 */
    ok = gh == 7 && gw == 13 && grid[0] == 255 && grid[1 * 13 + 1] == 10 && grid[4 * 13 + 5] == 50 &&
         grid[5 * 13 + 7] == 55 && grid[4 * 13 + 9] == 255 && grid[4 * 13 + 11] == 255 && grid[6 * 13 + 5] == 255;
    t_ok(ok, "grid: 5 tiles in 3 columns, gap 1: %dx%d, tiles placed, gaps and empty slot background", gh, gw);
}

int main(void) {
    t_tmpdir("beit_test_png");
    test_png();
    t_tmpdir_remove();
    return t_done();
}
