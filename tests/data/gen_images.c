/* gen_images DIR MODE: a tiny class-per-folder image tree for folder.sh (PNG via png_write,
 * JPEG via libjpeg). Colours are solid (or a strip whose centre square is solid) so the
 * resized result is known exactly for PNG and within JPEG's loss for JPEG.
 *   mixed:      cat/a.jpg   RGB JPEG 16x16 (200,40,90)
 *               cat/b.png   RGB PNG 10 high x 20 wide: red | green | blue strips 5|10|5 wide
 *               cat/notes.txt, cat/.hidden.png   (ignored)
 *               dog/x.png   gray PNG 12x12 value 77
 *               dog/y.JPEG  gray JPEG 16 high x 24 wide value 150
 *               zebra/K.png for K = 1..10: RGB PNG 30x30 (20K, 255-20K, 7)
 *               top.png     (a file in the root: ignored)
 *   gray:       a/1.png gray 9x9 value 10, a/2.jpg gray JPEG 8x8 value 200, b/1.png gray 9x9 value 99
 *   truncpng:   mixed + dog/broken.png (a valid PNG header, the data cut off)
 *   garbage:    mixed + cat/garbage.jpg (text)
 *   truncjpg:   mixed + cat/c.jpg (the first 60% of a JPEG)
 *   emptyclass: mixed + an empty folder "empty"
 *   imagenet:   DIR/train = mixed; DIR/val = cat/v1.png RGB 8x8 (10,20,30), dog/v1.jpg gray
 *               JPEG 8x8 value 60, zebra/v1.png RGB 8x8 (1,2,3), zebra/v2.png RGB 8x8 (4,5,6)
 *   random SIDE NTRAIN NVAL NCLASS: DIR/{train,val}/cK/NNNN.jpg, RGB JPEGs of SIDE x SIDE
 *               uniform noise (synth_pixel), NTRAIN resp. NVAL per class (the chain tests)
 *   segstore SIDE NTRAIN NTEST NCLASS: DIR is the path of a dataset store with per-pixel labels
 *               (splits train and test, SIDE x SIDE x 3): each image is 4 horizontal bands, each
 *               band one class of NCLASS drawn per sample, its pixels that class's colour plus
 *               noise; the segmentation jobs' tests */
#include "beit/error.h"
#include "beit/fsutil.h"
#include "beit/image.h"
#include "beit/store.h"
#include "synth.h"

#include <jpeglib.h>
#include <string.h>
#include <sys/stat.h>

static char *p(const char *dir, const char *rel) { return xasprintf("%s/%s", dir, rel); }

static void solid(uint8_t *pix, int h, int w, int c, const uint8_t *v) {
    for (int i = 0; i < h * w; i++) memcpy(pix + (size_t)i * c, v, (size_t)c);
}

static void put_png(const char *dir, const char *rel, const uint8_t *pix, int h, int w, int c) {
    char *path = p(dir, rel), err[256];
    if (png_write(path, pix, h, w, c, err, sizeof err) != 0) {
        fprintf(stderr, "gen_images: %s: %s\n", path, err);
        exit(1);
    }
    free(path);
}

static void put_jpeg(const char *dir, const char *rel, const uint8_t *pix, int h, int w, int c) {
    char *path = p(dir, rel);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
    free(path);
}

static void put_text(const char *dir, const char *rel, const char *text) {
    char *path = p(dir, rel);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    free(path);
}

static void mk(const char *dir, const char *rel) {
    char *path = p(dir, rel);
    beit_mkdir_p(path);
    free(path);
}

static void mixed(const char *d) {
    uint8_t buf[30 * 30 * 3];
    mk(d, "zebra"); /* created first: the order on disk must not matter */
    for (int k = 1; k <= 10; k++) {
        uint8_t v[3] = {(uint8_t)(20 * k), (uint8_t)(255 - 20 * k), 7};
        solid(buf, 30, 30, 3, v);
        char name[32];
        snprintf(name, sizeof name, "zebra/%d.png", k);
        put_png(d, name, buf, 30, 30, 3);
    }
    mk(d, "cat");
    uint8_t c1[3] = {200, 40, 90};
    solid(buf, 16, 16, 3, c1);
    put_jpeg(d, "cat/a.jpg", buf, 16, 16, 3);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 20; x++) {
            uint8_t *q = buf + (y * 20 + x) * 3;
            q[0] = x < 5 ? 255 : 0;
            q[1] = (x >= 5 && x < 15) ? 255 : 0;
            q[2] = x >= 15 ? 255 : 0;
        }
    put_png(d, "cat/b.png", buf, 10, 20, 3);
    put_text(d, "cat/notes.txt", "not an image\n");
    put_text(d, "cat/.hidden.png", "hidden, ignored\n");
    mk(d, "dog");
    uint8_t g77 = 77, g150 = 150;
    solid(buf, 12, 12, 1, &g77);
    put_png(d, "dog/x.png", buf, 12, 12, 1);
    solid(buf, 16, 24, 1, &g150);
    put_jpeg(d, "dog/y.JPEG", buf, 16, 24, 1);
    solid(buf, 4, 4, 3, c1);
    put_png(d, "top.png", buf, 4, 4, 3);
}

static void imagenet(const char *d) {
    char *tr = p(d, "train");
    mixed(tr);
    free(tr);
    uint8_t buf[8 * 8 * 3];
    mk(d, "val/zebra");
    mk(d, "val/dog");
    mk(d, "val/cat");
    const uint8_t cat[3] = {10, 20, 30}, z1[3] = {1, 2, 3}, z2[3] = {4, 5, 6}, g60 = 60;
    solid(buf, 8, 8, 3, cat);
    put_png(d, "val/cat/v1.png", buf, 8, 8, 3);
    solid(buf, 8, 8, 1, &g60);
    put_jpeg(d, "val/dog/v1.jpg", buf, 8, 8, 1);
    solid(buf, 8, 8, 3, z1);
    put_png(d, "val/zebra/v1.png", buf, 8, 8, 3);
    solid(buf, 8, 8, 3, z2);
    put_png(d, "val/zebra/v2.png", buf, 8, 8, 3);
}

static void random_tree(const char *d, int side, int ntrain, int nval, int nclass) {
    uint8_t *buf = xmalloc((size_t)side * side * 3);
    uint64_t seed = 1;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < nclass; k++)
            for (int i = 0; i < (s ? nval : ntrain); i++) {
                for (int j = 0; j < side * side * 3; j++) buf[j] = synth_pixel(seed, j);
                seed++;
                char rel[96];
                snprintf(rel, sizeof rel, "%s/c%d", s ? "val" : "train", k);
                mk(d, rel);
                snprintf(rel, sizeof rel, "%s/c%d/%04d.jpg", s ? "val" : "train", k, i);
                put_jpeg(d, rel, buf, side, side, 3);
            }
    free(buf);
}

static void segstore(const char *path, int side, int ntrain, int ntest, int nclass) {
    char **names = xmalloc((size_t)nclass * sizeof *names);
    for (int k = 0; k < nclass; k++) names[k] = xasprintf("class%d", k);
    beit_store_meta meta = {.source = "gen_images segstore", .height = side, .width = side, .channels = 3,
                            .num_classes = nclass, .class_names = (const char *const *)names,
                            .stats_split = "train", .pixel_labels = 1};
    beit_store_writer *w = store_create(path, &meta);
    uint8_t *img = xmalloc((size_t)side * side * 3), *mask = xmalloc((size_t)side * side);
    for (int s = 0; s < 2; s++) {
        int n = s ? ntest : ntrain;
        store_begin_split(w, s ? "test" : "train", n);
        for (int i = 0; i < n; i++) {
            int64_t id = (int64_t)s * 100000 + i;
            int band[4];
            for (int b = 0; b < 4; b++) band[b] = synth_pixel(id, 1000000 + b) % nclass;
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++) {
                    int k = band[y * 4 / side], q = y * side + x;
                    mask[q] = (uint8_t)k;
                    for (int ch = 0; ch < 3; ch++)
                        img[(size_t)q * 3 + ch] = (uint8_t)((k * 97 + ch * 50) % 200 + synth_pixel(id, q * 3 + ch) % 56);
                }
            int32_t label = band[0];
            store_append(w, img, &label, 1);
            store_append_masks(w, mask, 1);
        }
        store_end_split(w);
    }
    store_commit(w);
    for (int k = 0; k < nclass; k++) free(names[k]);
    free(names);
    free(img);
    free(mask);
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[2], "segstore")) {
        int v[4];
        for (int i = 0; i < 4; i++) {
            v[i] = atoi(argv[3 + i]);
            if (v[i] < 1 || v[i] > 4096 || (i == 3 && v[i] > 256)) {
                fprintf(stderr, "gen_images: segstore: bad number %s\n", argv[3 + i]);
                return 2;
            }
        }
        segstore(argv[1], v[0], v[1], v[2], v[3]);
        return 0;
    }
    if (argc == 7 && !strcmp(argv[2], "random")) {
        int v[4];
        for (int i = 0; i < 4; i++) {
            v[i] = atoi(argv[3 + i]);
            if (v[i] < 1 || v[i] > 4096) {
                fprintf(stderr, "gen_images: random: bad number %s\n", argv[3 + i]);
                return 2;
            }
        }
        beit_mkdir_p(argv[1]);
        random_tree(argv[1], v[0], v[1], v[2], v[3]);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: gen_images DIR MODE | gen_images DIR random SIDE NTRAIN NVAL NCLASS\n"
                        "       gen_images STORE.h5 segstore SIDE NTRAIN NTEST NCLASS\n");
        return 2;
    }
    const char *d = argv[1], *m = argv[2];
    beit_mkdir_p(d);
    if (!strcmp(m, "imagenet")) {
        imagenet(d);
        return 0;
    }
    uint8_t buf[64 * 64 * 3];
    if (!strcmp(m, "gray")) {
        mk(d, "a");
        mk(d, "b");
        uint8_t v = 10;
        solid(buf, 9, 9, 1, &v);
        put_png(d, "a/1.png", buf, 9, 9, 1);
        v = 200;
        solid(buf, 8, 8, 1, &v);
        put_jpeg(d, "a/2.jpg", buf, 8, 8, 1);
        v = 99;
        solid(buf, 9, 9, 1, &v);
        put_png(d, "b/1.png", buf, 9, 9, 1);
        return 0;
    }
    mixed(d);
    if (!strcmp(m, "mixed")) return 0;
    if (!strcmp(m, "truncpng")) {
        for (int i = 0; i < 64 * 64 * 3; i++) buf[i] = synth_pixel(1, i); /* incompressible */
        put_png(d, "dog/broken.png", buf, 64, 64, 3);
        char *path = p(d, "dog/broken.png");
        synth_truncate(path, synth_file_size(path) / 2);
        free(path);
    } else if (!strcmp(m, "garbage")) {
        put_text(d, "cat/garbage.jpg", "this is not a JPEG\n");
    } else if (!strcmp(m, "truncjpg")) {
        for (int i = 0; i < 64 * 64 * 3; i++) buf[i] = synth_pixel(2, i);
        put_jpeg(d, "cat/c.jpg", buf, 64, 64, 3);
        char *path = p(d, "cat/c.jpg");
        synth_truncate(path, synth_file_size(path) * 6 / 10);
        free(path);
    } else if (!strcmp(m, "emptyclass")) {
        mk(d, "empty");
    } else {
        fprintf(stderr, "gen_images: unknown mode %s\n", m);
        return 2;
    }
    return 0;
}
