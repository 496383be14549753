/* Helper of tokenize.sh: exposes crop_apply and tokens_read to the Python checks.
 *   tok_probe crop H W C S IMG.raw BOXES.txt OUT.raw
 *       IMG.raw: uint8 [m, H, W, C]; BOXES.txt: lines "image y0 x0 h w flip"; OUT.raw: float32
 *       [n, C, S, S], crop_apply of each box to its image (the script compares with PIL)
 *   tok_probe read TOKENS.h5 SPLIT BUDGET N SEED
 *       tokens_open (serial), tokens_set_cache_budget(BUDGET bytes; 0 = read from the file per
 *       call), then tokens_read of N (index, view) pairs drawn from SEED (in random order, with
 *       repeats) in calls of up to 37 pairs; prints "index view | tokens... | y0 x0 h w flip"
 *       per pair (the script compares with h5py) */
#include "beit/augment.h"
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/tokens.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int crop(int argc, char **argv) {
    if (argc != 9) return 2;
    int H = atoi(argv[2]), W = atoi(argv[3]), C = atoi(argv[4]), S = atoi(argv[5]);
    size_t nb = (size_t)H * W * C;
    FILE *f = fopen(argv[6], "rb");
    if (!f) return 3;
    fseek(f, 0, SEEK_END);
    long m = ftell(f) / (long)nb;
    fseek(f, 0, SEEK_SET);
    uint8_t *im = xmalloc((size_t)m * nb + 1);
    if (m < 1 || fread(im, nb, (size_t)m, f) != (size_t)m) return 3;
    fclose(f);
    FILE *bf = fopen(argv[7], "r"), *of = fopen(argv[8], "wb");
    if (!bf || !of) return 3;
    float *x = xalloc_floats((size_t)C * S * S);
    crop_box b;
    long i;
    while (fscanf(bf, "%ld %f %f %f %f %d", &i, &b.y0, &b.x0, &b.h, &b.w, &b.flip) == 6) {
        if (i < 0 || i >= m) return 3;
        crop_apply(x, im + (size_t)i * nb, H, W, C, &b, S);
        if (fwrite(x, sizeof(float), (size_t)C * S * S, of) != (size_t)C * S * S) return 3;
    }
    fclose(bf);
    fclose(of);
    free(x);
    free(im);
    return 0;
}

static int probe_read(int argc, char **argv) {
    if (argc != 7) return 2;
    token_store *t = tokens_open(argv[2], MPI_COMM_NULL);
    const char *split = argv[3];
    tokens_set_cache_budget(t, (size_t)strtoull(argv[4], NULL, 10));
    int n = atoi(argv[5]);
    rng_t r = rng_stream(strtoull(argv[6], NULL, 10), RNG_TEST, 0, 0);
    int64_t N = tokens_count(t, split);
    if (N < 1) return 4;
    int K = tokens_views(t), P = tokens_grid(t) * tokens_grid(t);
    int64_t *idx = xmalloc((size_t)n * sizeof(int64_t));
    int *views = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        idx[i] = i > 0 && i % 5 == 0 ? idx[i - 1] : (int64_t)rng_below(&r, (uint64_t)N); /* repeats */
        views[i] = i > 0 && i % 10 == 0 ? views[i - 1] : (int)rng_below(&r, (uint64_t)K);
    }
    int32_t *tok = xmalloc((size_t)n * P * sizeof(int32_t));
    crop_box *cr = xmalloc((size_t)n * sizeof(crop_box));
    for (int a = 0; a < n; a += 37) {
        int m = n - a < 37 ? n - a : 37;
        tokens_read(t, split, idx + a, views + a, m, tok + (size_t)a * P, cr + a);
    }
    for (int i = 0; i < n; i++) {
        printf("%lld %d |", (long long)idx[i], views[i]);
        for (int p = 0; p < P; p++) printf(" %d", tok[(size_t)i * P + p]);
        printf(" | %g %g %g %g %d\n", cr[i].y0, cr[i].x0, cr[i].h, cr[i].w, cr[i].flip);
    }
    tokens_close(t);
    free(idx);
    free(views);
    free(tok);
    free(cr);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rc = 2;
    if (argc >= 2 && !strcmp(argv[1], "crop")) rc = crop(argc, argv);
    else if (argc >= 2 && !strcmp(argv[1], "read")) rc = probe_read(argc, argv);
    else
        fprintf(stderr, "usage: tok_probe crop H W C S IMG.raw BOXES.txt OUT.raw | read TOKENS.h5 SPLIT BUDGET N SEED\n");
    MPI_Finalize();
    return rc;
}
