/* gen_idx DIR CASE: write a small synthetic Fashion-MNIST-like set (train 100, test 30, 28x28,
 * pixels synth_pixel(i, p), labels synth_label(i, 10); the test split uses the same formulas)
 * into DIR as the four .gz files the importer reads, then damage it as CASE says:
 *   good        nothing
 *   truncated   train images cut at 60% of the .gz
 *   corrupt     16 bytes flipped in the middle of the train images' deflate stream
 *   crc         the CRC-32 of the train labels flipped (data intact, trailer wrong)
 *   magic       test images with magic 0x00000802
 *   count       test labels: 29 labels for 30 images
 *   dims        train images 32x32
 *   label       train label 57 is 12
 *   extra       train labels followed by 5 extra bytes
 *   notgz       test labels stored uncompressed
 *   missing     no test labels file */
#include "synth.h"

#include <string.h>
#include <unistd.h>

static char *join(const char *dir, const char *name) {
    static char buf[4][1024];
    static int k = 0;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: gen_idx DIR CASE\n");
        return 2;
    }
    const char *d = argv[1], *c = argv[2];
    char *tri = join(d, "train-images-idx3-ubyte.gz"), *trl = join(d, "train-labels-idx1-ubyte.gz");
    char *tei = join(d, "t10k-images-idx3-ubyte.gz"), *tel = join(d, "t10k-labels-idx1-ubyte.gz");
    int rc = 0;
    rc |= synth_write_idx_pair(tri, trl, 100, !strcmp(c, "dims") ? 32 : 28, !strcmp(c, "dims") ? 32 : 28, 100);
    rc |= synth_write_idx_pair(tei, tel, 30, 28, 28, !strcmp(c, "count") ? 29 : 30);
    if (!strcmp(c, "good") || !strcmp(c, "dims") || !strcmp(c, "count")) {
    } else if (!strcmp(c, "truncated")) {
        rc |= synth_truncate(tri, synth_file_size(tri) * 6 / 10);
    } else if (!strcmp(c, "corrupt")) {
        rc |= synth_flip(tri, synth_file_size(tri) / 2, 16);
    } else if (!strcmp(c, "crc")) {
        rc |= synth_flip(trl, synth_file_size(trl) - 8, 4);
    } else if (!strcmp(c, "magic")) {
        uint8_t img[30 * 28 * 28];
        for (int i = 0; i < 30; i++)
            for (int p = 0; p < 28 * 28; p++) img[i * 784 + p] = synth_pixel(i, p);
        uint32_t dims[3] = {30, 28, 28};
        rc |= synth_write_idx_gz(tei, 0x00000802u, 3, dims, img, sizeof img, 0);
    } else if (!strcmp(c, "label") || !strcmp(c, "extra")) {
        uint8_t lab[100];
        for (int i = 0; i < 100; i++) lab[i] = (uint8_t)synth_label(i, 10);
        if (!strcmp(c, "label")) lab[57] = 12;
        uint32_t dims[1] = {100};
        rc |= synth_write_idx_gz(trl, 0x00000801u, 1, dims, lab, 100, !strcmp(c, "extra") ? 5 : 0);
    } else if (!strcmp(c, "notgz")) {
        FILE *f = fopen(tel, "wb");
        uint8_t hdr[8] = {0, 0, 8, 1, 0, 0, 0, 30}, lab[30];
        for (int i = 0; i < 30; i++) lab[i] = (uint8_t)synth_label(i, 10);
        rc |= !f || fwrite(hdr, 1, 8, f) != 8 || fwrite(lab, 1, 30, f) != 30;
        if (f) fclose(f);
    } else if (!strcmp(c, "missing")) {
        rc |= unlink(tel);
    } else {
        fprintf(stderr, "gen_idx: unknown case %s\n", c);
        return 2;
    }
    return rc ? 1 : 0;
}
