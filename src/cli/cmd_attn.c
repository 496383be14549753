/* beit attn: self-attention maps as in the BEiT paper's figure: the attention of one reference
 * patch (its row of the chosen block's attention probabilities, over the patch tokens), mean
 * over heads or one head, reshaped to the patch grid, upsampled and laid over the image.
 * Works on pre-training and fine-tuning checkpoints. Runs on rank 0 only (one forward). */
#include "beit/augment.h"
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/finetune.h"
#include "beit/image.h"
#include "beit/log.h"
#include "beit/source.h"
#include "beit/store.h"
#include "beit/tasks.h"
#include "commands.h"
#include "runopts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: beit attn --checkpoint CKPT --data DATA.h5 --index I[,I...] --ref Y,X [--ref Y,X]...\n"
    "                 --png OUT.png [--split test] [--layer -1] [--head -1] [--scale 8]\n"
    "\n"
    "Renders the self-attention of reference patches: block --layer's (1-based; -1 = the last)\n"
    "attention probabilities, the row of the patch at grid position (Y, X) over all patch tokens,\n"
    "averaged over heads (or head --head, 0-based), reshaped to the patch grid, bilinearly\n"
    "upsampled and overlaid on the image (bright = attended; the reference patch is outlined).\n"
    "One row per image (--index: sample numbers in --split), one column for the image and one\n"
    "per --ref. Takes pre-training (beit pretrain) and fine-tuning (beit finetune) checkpoints.\n"
    "Example: build/beit attn --checkpoint runs/pretrain/ckpt-00004680.h5 --data data/fmnist.h5 \\\n"
    "           --index 0,1,2,3 --ref 3,3 --ref 1,5 --png attn.png";

#define MAX_ITEMS 64

static int parse_ints(const char *s, int *out, int max) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || n == max) return -1;
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return n;
}

/* a perceptual ramp black -> purple -> orange -> yellow (like matplotlib's inferno) */
static void heat(float t, uint8_t *rgb) {
    static const float k[5][3] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    float x = t * 4;
    int i = (int)x < 4 ? (int)x : 3;
    float f = x - (float)i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lrintf(k[i][c] + f * (k[i + 1][c] - k[i][c]));
}

int cmd_attn(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "test", *index_s = NULL, *png = NULL, *layer_s = "-1",
               *head_s = "-1", *scale_s = "8";
    const char *refs_s[MAX_ITEMS];
    int nref = 0;
    /* --ref repeats: collect them before the common parser sees the rest */
    char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--ref") && i + 1 < argc) {
            if (nref == MAX_ITEMS) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: at most %d --ref", MAX_ITEMS);
            refs_s[nref++] = argv[++i];
        } else if (!strncmp(argv[i], "--ref=", 6)) {
            if (nref == MAX_ITEMS) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: at most %d --ref", MAX_ITEMS);
            refs_s[nref++] = argv[i] + 6;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    const char *dummy = NULL;
    extra_flag extra[] = {{"--checkpoint", "CKPT", "pre-training or fine-tuning checkpoint", &ckpt},
                          {"--data", "DATA.h5", "dataset store", &data},
                          {"--split", "NAME", "split the images come from (default test)", &split},
                          {"--index", "I,J,..", "sample numbers in the split (one row each)", &index_s},
                          {"--ref", "Y,X", "reference patch (grid row, column; repeatable: one column each)", &dummy},
                          {"--layer", "K", "block, 1-based; -1 = the last (default)", &layer_s},
                          {"--head", "H", "attention head, 0-based; -1 = mean over heads (default)", &head_s},
                          {"--scale", "N", "upscale factor of the image tiles (default 8)", &scale_s},
                          {"--png", "FILE", "output PNG", &png},
                          {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, nrest, rest, 0, extra, USAGE)) {
        free(rest);
        return 0;
    }
    if (!ckpt || !data || !index_s || !png || nref == 0)
        beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --checkpoint, --data, --index, --ref and --png are required (see --help)");
    int idx_list[MAX_ITEMS], nidx = parse_ints(index_s, idx_list, MAX_ITEMS);
    if (nidx <= 0) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --index '%s': expected I or I,J,... (at most %d)", index_s, MAX_ITEMS);
    int ry[MAX_ITEMS], rx[MAX_ITEMS];
    for (int i = 0; i < nref; i++) {
        int v[2];
        if (parse_ints(refs_s[i], v, 2) != 2)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --ref '%s': expected Y,X (patch grid row and column)", refs_s[i]);
        ry[i] = v[0];
        rx[i] = v[1];
    }
    int layer = atoi(layer_s), head = atoi(head_s), scale = atoi(scale_s);
    if (scale < 1 || scale > 64) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --scale %s: expected 1..64", scale_s);

    ckpt_reader r;
    ckpt_open(&r, ckpt);
    beit_config c;
    config_load_string(&c, r.config_yaml, ckpt);
    const int pre = strcmp(r.kind, "beit-pretrain") == 0;
    const int seg = strcmp(r.kind, FT_KIND_SEG) == 0;
    if (!pre && !seg && strcmp(r.kind, FT_KIND_CLS) != 0)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: a '%s' checkpoint has no ViT encoder (beit attn takes beit-pretrain, %s "
                        "or %s checkpoints)", ckpt, r.kind, FT_KIND_CLS, FT_KIND_SEG);
    /* the model, rebuilt from the job stored in the checkpoint */
    vit_model pm;
    param_table ppt;
    ft_model f;
    vit_model *m;
    param_table *pt;
    if (pre) {
        vit_dims vd;
        vit_dims_from_config(&vd, &c, c.pretrain.target == BEIT_TARGET_PIXELS ? HEAD_PIXELS : HEAD_TOKENS);
        params_init(&ppt);
        vit_build(&pm, &ppt, &vd);
        params_alloc(&ppt);
        vit_alloc(&pm, nidx);
        m = &pm;
        pt = &ppt;
    } else {
        int64_t ncls = ckpt_param_dim(&r, seg ? "decoder.cls.bias" : "head.bias", 0);
        if (ncls < 2) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no head tensor (damaged checkpoint?)", ckpt);
        ft_model_build(&f, &c, seg, (int)ncls, nidx);
        m = &f.m;
        pt = &f.pt;
    }
    ckpt_load_params(&r, pt);
    const int L = m->d.depth, NH = m->d.num_heads, T = m->T, gh = m->gh, gw = m->gw, S = m->d.img_size,
              C = m->d.in_chans;
    if (layer == -1) layer = L;
    if (layer < 1 || layer > L) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --layer %d: the model has blocks 1..%d", layer, L);
    if (head < -1 || head >= NH) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --head %d: the model has heads 0..%d", head, NH - 1);
    for (int i = 0; i < nref; i++)
        if (ry[i] < 0 || ry[i] >= gh || rx[i] < 0 || rx[i] >= gw)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --ref %d,%d outside the %dx%d patch grid", ry[i], rx[i], gh, gw);

    /* the images */
    beit_store *st = store_open(data, MPI_COMM_NULL);
    const int64_t n = store_split_count(st, split);
    int64_t idx[MAX_ITEMS];
    for (int i = 0; i < nidx; i++) {
        if (idx_list[i] < 0 || idx_list[i] >= n)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --index %d outside split '%s' of %s (0..%lld)", idx_list[i], split,
                            data, (long long)n - 1);
        idx[i] = idx_list[i];
    }
    const int H = store_height(st), W = store_width(st);
    if (store_channels(st) != C)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images have %d channels, the model %d", data, store_channels(st), C);
    uint8_t *img8 = xmalloc((size_t)nidx * H * W * C);
    store_read(st, split, idx, nidx, img8, NULL);
    float *x = xalloc_floats((size_t)nidx * C * S * S);
    crop_box whole = crop_identity(H, W);
    for (int i = 0; i < nidx; i++)
        ft_prepare_image(x + (size_t)i * C * S * S, NULL, img8 + (size_t)i * H * W * C, NULL, H, W, C, &whole, S,
                         store_mean(st), store_std(st));
    vit_forward(m, pt, x, NULL, NULL, nidx);
    const float *att = vit_attention(m, layer - 1); /* [B,NH,T,T] */

    /* render: tiles of U x U RGB; column 0 the image, then one per reference */
    const int U = S * scale, cols = 1 + nref, ntiles = nidx * cols;
    uint8_t *tiles = xcalloc((size_t)ntiles * U * U * 3, 1);
    float *grid = xalloc_floats((size_t)gh * gw);
    float *dispimg = xalloc_floats((size_t)C * S * S);
    double rowsum_err = 0;
    for (int b = 0; b < nidx; b++) {
        crop_apply(dispimg, img8 + (size_t)b * H * W * C, H, W, C, &whole, S); /* [0,1] for display */
        for (int col = 0; col < cols; col++) {
            uint8_t *tile = tiles + ((size_t)b * cols + col) * U * U * 3;
            float mx = 0;
            if (col > 0) {
                const int q = 1 + ry[col - 1] * gw + rx[col - 1];
                for (int p = 0; p < gh * gw; p++) grid[p] = 0;
                for (int h = 0; h < NH; h++) {
                    if (head >= 0 && h != head) continue;
                    const float *row = att + (((size_t)b * NH + h) * T + q) * T;
                    double s = 0;
                    for (int k = 0; k < T; k++) s += row[k];
                    rowsum_err = fmax(rowsum_err, fabs(s - 1.0));
                    for (int p = 0; p < gh * gw; p++) grid[p] += row[1 + p] / (head >= 0 ? 1 : NH);
                }
                for (int p = 0; p < gh * gw; p++) mx = fmaxf(mx, grid[p]);
            }
            for (int y = 0; y < U; y++)
                for (int xx = 0; xx < U; xx++) {
                    /* the image (gray, or RGB) at this display pixel */
                    int iy = y / scale, ix = xx / scale;
                    float g[3];
                    for (int ch = 0; ch < 3; ch++) g[ch] = dispimg[((size_t)(C == 3 ? ch : 0) * S + iy) * S + ix];
                    uint8_t *o = tile + ((size_t)y * U + xx) * 3;
                    if (col == 0) {
                        for (int ch = 0; ch < 3; ch++) o[ch] = (uint8_t)lrintf(255 * g[ch]);
                        continue;
                    }
                    /* bilinear on the patch grid (align_corners=False) */
                    float fy = ((float)y + 0.5f) * gh / U - 0.5f, fx = ((float)xx + 0.5f) * gw / U - 0.5f;
                    fy = fy < 0 ? 0 : fy > gh - 1 ? gh - 1 : fy;
                    fx = fx < 0 ? 0 : fx > gw - 1 ? gw - 1 : fx;
                    int y0 = (int)fy, x0 = (int)fx, y1 = y0 + 1 < gh ? y0 + 1 : y0, x1 = x0 + 1 < gw ? x0 + 1 : x0;
                    float wy = fy - y0, wx = fx - x0;
                    float v = (1 - wy) * ((1 - wx) * grid[y0 * gw + x0] + wx * grid[y0 * gw + x1]) +
                              wy * ((1 - wx) * grid[y1 * gw + x0] + wx * grid[y1 * gw + x1]);
                    uint8_t hc[3];
                    heat(mx > 0 ? v / mx : 0, hc);
                    for (int ch = 0; ch < 3; ch++) o[ch] = (uint8_t)lrintf(0.6f * hc[ch] + 0.4f * 255 * g[ch]);
                    /* outline the reference patch */
                    int P = m->d.patch_size * scale, py = ry[col - 1] * P, px = rx[col - 1] * P;
                    int in = y >= py && y < py + P && xx >= px && xx < px + P;
                    int edge = in && (y < py + 2 || y >= py + P - 2 || xx < px + 2 || xx >= px + P - 2);
                    if (edge) o[0] = 0, o[1] = 255, o[2] = 255;
                }
        }
    }
    int GH, GW;
    image_grid_size(ntiles, cols, U, U, 4, &GH, &GW);
    uint8_t *out = xmalloc((size_t)GH * GW * 3);
    image_grid(out, tiles, ntiles, cols, U, U, 3, 4, 255);
    char err[256];
    if (beit_rank() == 0 && png_write(png, out, GH, GW, 3, err, sizeof err) != 0)
        beit_fatal_user(BEIT_EXIT_IO, "%s: %s", png, err);
    beit_log("wrote %s: %d image%s x %d reference patch%s, block %d of %d, %s (%s checkpoint %s, step %lld); "
             "attention rows sum to 1 within %.1e",
             png, nidx, nidx > 1 ? "s" : "", nref, nref > 1 ? "es" : "", layer, L, head < 0 ? "mean over heads" : "one head",
             r.kind, ckpt, (long long)r.step, rowsum_err);
    ckpt_close(&r);
    store_close(st);
    if (pre) {
        vit_free(&pm);
        params_free(&ppt);
    } else {
        ft_model_free(&f);
    }
    free(out);
    free(tiles);
    free(grid);
    free(dispimg);
    free(img8);
    free(x);
    free(rest);
    return 0;
}
