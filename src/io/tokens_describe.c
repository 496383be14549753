/* `beit data info` of a token store (tokens.h tokens_describe): its links and shape, its
 * splits and layout and, with --verify, every row read and checked. */
#include "beit/tokens.h"

#include "beit/describe.h"
#include "beit/error.h"
#include "beit/h5attr.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --verify of one split: rows [N*K] of tokens [h*h] and crops [5], read in slabs of samples */
static void verify_split(const token_store *t, const char *path, hid_t g, const char *split, int64_t count) {
    enum { SB = 1024 };
    const int K = tokens_views(t), P = tokens_grid(t) * tokens_grid(t), V = tokens_vocab(t);
    const double H = tokens_image_height(t), W = tokens_image_width(t);
    hid_t dt = H5Dopen2(g, "tokens", H5P_DEFAULT), dc = H5Dopen2(g, "crops", H5P_DEFAULT);
    uint16_t *tok = xmalloc((size_t)SB * K * P * sizeof *tok);
    float *crop = xmalloc((size_t)SB * K * 5 * sizeof *crop);
    for (int64_t s0 = 0; s0 < count; s0 += SB) {
        hsize_t n = (hsize_t)(count - s0 < SB ? count - s0 : SB);
        hid_t ds[2] = {dt, dc};
        void *buf[2] = {tok, crop};
        for (int k = 0; k < 2; k++) {
            hid_t fs = H5Dget_space(ds[k]);
            hsize_t start[4] = {(hsize_t)s0, 0, 0, 0}, cnt[4] = {n, (hsize_t)K, (hsize_t)tokens_grid(t),
                                                              (hsize_t)tokens_grid(t)};
            if (k == 1) cnt[2] = 5;
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
            hid_t ms = H5Screate_simple(k ? 3 : 4, cnt, NULL);
            herr_t rc = H5Dread(ds[k], k ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, buf[k]);
            H5Sclose(ms);
            H5Sclose(fs);
            if (rc < 0)
                beit_fatal_user(BEIT_EXIT_DATA, "%s: cannot read /%s/%s samples %lld..%lld (file damaged or truncated?)",
                                path, split, k ? "crops" : "tokens", (long long)s0, (long long)(s0 + (int64_t)n - 1));
        }
        for (size_t i = 0; i < (size_t)n * K * P; i++)
            if (tok[i] >= V)
                beit_fatal_user(BEIT_EXIT_DATA, "%s: /%s/tokens sample %lld view %d holds %u, outside the vocabulary "
                                "[0, %d)", path, split, (long long)(s0 + (int64_t)(i / ((size_t)K * P))),
                                (int)(i / (size_t)P % (size_t)K), tok[i], V);
        for (size_t r = 0; r < (size_t)n * K; r++) {
            const float *c = crop + r * 5;
            int view = (int)(r % (size_t)K), ok = 1;
            for (int j = 0; j < 5; j++) ok &= isfinite(c[j]) != 0;
            ok = ok && c[0] >= 0 && c[1] >= 0 && c[2] > 0 && c[3] > 0 && c[0] + c[2] <= H + 1e-3 &&
                 c[1] + c[3] <= W + 1e-3 && (c[4] == 0 || c[4] == 1);
            if (ok && view == 0) ok = c[0] == 0 && c[1] == 0 && c[2] == H && c[3] == W && c[4] == 0;
            if (!ok)
                beit_fatal_user(BEIT_EXIT_DATA, "%s: /%s/crops sample %lld view %d is (%g, %g, %g, %g, flip %g): "
                                "expected a box inside the %gx%g image, flip 0 or 1%s", path, split,
                                (long long)(s0 + (int64_t)(r / (size_t)K)), view, c[0], c[1], c[2], c[3], c[4], H, W,
                                view == 0 ? ", and view 0 the whole image unflipped" : "");
        }
    }
    free(tok);
    free(crop);
    H5Dclose(dt);
    H5Dclose(dc);
}

int tokens_describe(FILE *f, const char *path, int verify) {
    token_store *t = tokens_open(path, MPI_COMM_NULL); /* validates: errors exit 3 */
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) beit_fatal_user(BEIT_EXIT_DATA, "%s: cannot open as HDF5", path);
    char *created = h5a_get_str(h, "created_by"), *dpath = h5a_get_str(h, "dataset_path");
    fprintf(f, "%s: beit token store (format %s, version %d)\n", path, TOKENS_FORMAT, TOKENS_FORMAT_VERSION);
    fprintf(f, "  created_by   %s\n", created ? created : "(none)");
    fprintf(f, "  tokens       %d x %d per view, %d view%s per image, vocabulary %d (uint16)\n", tokens_grid(t),
            tokens_grid(t), tokens_views(t), tokens_views(t) == 1 ? "" : "s", tokens_vocab(t));
    char *tkind = h5a_get_str(h, "tokenizer_kind"), *tck = h5a_get_str(h, "tokenizer_checkpoint");
    char *tres = h5a_get_str(h, "tokenizer_resize"), *tmap = h5a_get_str(h, "tokenizer_pixel_map");
    fprintf(f, "  tokenizer    %s, input %d x %d, checkpoint sha256 %s\n", tkind ? tkind : "(kind not recorded)",
            tokens_input_size(t), tokens_input_size(t), tokens_tokenizer_sha256(t));
    if (tck) fprintf(f, "               checkpoint %s\n", tck);
    if (tres) fprintf(f, "               view: %s resize, pixels %s\n", tres, tmap ? tmap : "(not recorded)");
    free(tkind);
    free(tck);
    free(tres);
    free(tmap);
    fprintf(f, "  dataset      %s (uuid %s), images %d x %d x %d\n", dpath ? dpath : "(none)", tokens_dataset_uuid(t),
            tokens_image_height(t), tokens_image_width(t), tokens_image_channels(t));
    fprintf(f, "  splits      ");
    H5G_info_t gi;
    H5Gget_info(h, &gi);
    int nsplits = 0;
    for (int pass = 0; pass < 2; pass++) { /* 0: the header line, 1: --verify */
        for (hsize_t i = 0; i < gi.nlinks; i++) {
            char name[256];
            if (H5Lget_name_by_idx(h, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0) continue;
            int64_t n = tokens_count(t, name);
            if (n < 0) continue;
            if (pass == 0) {
                fprintf(f, " %s (%lld)", name, (long long)n);
                nsplits++;
            } else {
                hid_t g = H5Gopen2(h, name, H5P_DEFAULT);
                verify_split(t, path, g, name, n);
                H5Gclose(g);
            }
        }
        if (pass == 0) {
            fprintf(f, "\n");
            describe_layout(f, h);
            fprintf(f, "\nattributes of / (config: the resolved YAML, not shown)\n");
            describe_attrs(f, h, "  ", "config");
            fflush(f);
            if (!verify) break;
        }
    }
    if (verify)
        fprintf(f, "\nverified: %d split%s read whole; every token in [0, %d); every crop box inside the %dx%d image, "
                   "flip 0 or 1\n", nsplits, nsplits == 1 ? "" : "s", tokens_vocab(t), tokens_image_height(t),
                tokens_image_width(t));
    free(created);
    free(dpath);
    H5Fclose(h);
    tokens_close(t);
    return 0;
}
