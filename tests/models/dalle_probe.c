/* Helper of dalle.sh: DALL-E's encoder (dalle.h) loaded from a converted checkpoint, run on
 * images given as raw floats, for the Python checks against tools/torchref/dalle_encoder.py.
 *   dalle_probe encode CKPT.h5 X.raw B LOGITS.raw TOKENS.raw
 *       X.raw float32 [B,C,S,S] in [0,1] (S, C from the checkpoint); writes the logits float32
 *       [B,V,h,h] and the tokens int32 [B,h,h]; prints "params_checksum <hex>" (the loaded
 *       table's) and "seconds_per_image <t> gflop_per_image <f>" (one dalle_encode of B)
 *   dalle_probe pool B C H W IN.raw OUT.raw
 *       maxpool2d_forward 2x2 stride 2 (the encoder's pooling), floor mode, of float32 [B,C,H,W]
 *   dalle_probe resize H W C S IMG.raw BOXES.txt OUT.raw
 *       IMG.raw uint8 [m,H,W,C]; BOXES.txt lines "image x0 y0 x1 y1 flip"; OUT.raw: per line
 *       the uint8 [S,S,C] image_resample_lanczos of the box (flip ignored), then the float32
 *       [C,S,S] crop_apply_resize(RESIZE_LANCZOS) of the box (y0, x0, y1-y0, x1-x0, flip) */
#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/conv.h"
#include "beit/error.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/modelcfg.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) beit_fatal(BEIT_EXIT_FAILURE, "%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = xmalloc((size_t)len + 1);
    if (fread(p, 1, (size_t)len, f) != (size_t)len) beit_fatal(BEIT_EXIT_FAILURE, "%s: short read", path);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) beit_fatal(BEIT_EXIT_FAILURE, "%s: cannot write", path);
}

static int encode(int argc, char **argv) {
    if (argc != 7) return 2;
    const int B = atoi(argv[4]);
    ckpt_reader r;
    ckpt_open(&r, argv[2]);
    if (model_kind_of(r.kind) != MODEL_DALLE) beit_fatal(BEIT_EXIT_FAILURE, "%s: kind %s", argv[2], r.kind);
    ckpt_model cm;
    model_from_checkpoint(&cm, &r, MODEL_DALLE, argv[2], B);
    ckpt_close(&r);
    dalle_model *m = &cm.dalle;
    size_t n;
    float *x = read_all(argv[3], &n);
    if (n != (size_t)B * m->C * m->S * m->S * sizeof(float))
        beit_fatal(BEIT_EXIT_FAILURE, "%s: %zu bytes, expected [%d,%d,%d,%d] floats", argv[3], n, B, m->C, m->S, m->S);
    float *logits = xalloc_floats((size_t)B * m->V * m->P);
    int32_t *tok = xmalloc((size_t)B * m->P * sizeof(int32_t));
    double t0 = beit_now();
    dalle_encode(m, cm.pt, x, B, tok, logits);
    double secs = beit_now() - t0;
    write_all(argv[5], logits, (size_t)B * m->V * m->P * sizeof(float));
    write_all(argv[6], tok, (size_t)B * m->P * sizeof(int32_t));
    printf("params_checksum %016llx\n", (unsigned long long)params_checksum(cm.pt));
    printf("seconds_per_image %.4f gflop_per_image %.3f\n", secs / B, dalle_flops_per_image(m) / 1e9);
    free(x);
    free(logits);
    free(tok);
    ckpt_model_free(&cm);
    return 0;
}

static int pool(int argc, char **argv) {
    if (argc != 8) return 2;
    int B = atoi(argv[2]), C = atoi(argv[3]), H = atoi(argv[4]), W = atoi(argv[5]);
    size_t n;
    float *x = read_all(argv[6], &n);
    if (n != (size_t)B * C * H * W * sizeof(float)) return 3;
    int Ho = (H - 2) / 2 + 1, Wo = (W - 2) / 2 + 1;
    float *y = xalloc_floats((size_t)B * C * Ho * Wo);
    maxpool2d_forward(y, NULL, x, B, C, H, W, 2, 2);
    write_all(argv[7], y, (size_t)B * C * Ho * Wo * sizeof(float));
    free(x);
    free(y);
    return 0;
}

static int resize(int argc, char **argv) {
    if (argc != 9) return 2;
    int H = atoi(argv[2]), W = atoi(argv[3]), C = atoi(argv[4]), S = atoi(argv[5]);
    size_t n, nb = (size_t)H * W * C;
    uint8_t *im = read_all(argv[6], &n);
    long m = (long)(n / nb);
    FILE *bf = fopen(argv[7], "r"), *of = fopen(argv[8], "wb");
    if (!bf || !of) return 3;
    uint8_t *u = xmalloc((size_t)S * S * C);
    float *f = xalloc_floats((size_t)C * S * S);
    long i;
    float x0, y0, x1, y1;
    int flip;
    while (fscanf(bf, "%ld %f %f %f %f %d", &i, &x0, &y0, &x1, &y1, &flip) == 6) {
        if (i < 0 || i >= m) return 3;
        image_resample_lanczos(im + (size_t)i * nb, H, W, C, x0, y0, x1, y1, u, S, S);
        crop_box b = {.y0 = y0, .x0 = x0, .h = y1 - y0, .w = x1 - x0, .flip = flip};
        crop_apply_resize(f, im + (size_t)i * nb, H, W, C, &b, S, RESIZE_LANCZOS);
        if (fwrite(u, 1, (size_t)S * S * C, of) != (size_t)S * S * C) return 3;
        if (fwrite(f, sizeof(float), (size_t)C * S * S, of) != (size_t)C * S * S) return 3;
    }
    fclose(bf);
    fclose(of);
    free(u);
    free(f);
    free(im);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = 2;
    if (argc >= 2 && !strcmp(argv[1], "encode")) rc = encode(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "pool")) rc = pool(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "resize")) rc = resize(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: dalle_probe encode CKPT X.raw B LOGITS.raw TOKENS.raw | pool B C H W IN OUT | "
                        "resize H W C S IMG.raw BOXES.txt OUT.raw\n");
    MPI_Finalize();
    return rc;
}
