/* beit attn: self-attention maps as in the BEiT paper's figure: the attention of one reference
 * patch (its row of the chosen block's attention probabilities, over the patch tokens), mean
 * over heads or one head, reshaped to the patch grid, upsampled and laid over the image.
 * Works on pre-training and fine-tuning checkpoints. Runs on rank 0 only (one forward). The
 * command parses the flags; attn_maps_render (src/eval/attn_maps.c) draws the maps. */
#include "beit/error.h"
#include "beit/eval.h"
#include "commands.h"
#include "runopts.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: beit attn --checkpoint CKPT --data DATA.h5 --index I[,I...] --ref Y,X [--ref Y,X]...\n"
    "                 --png OUT.png|--h5 OUT.h5 [--split test] [--layer -1] [--head -1] [--scale 8]\n"
    "\n"
    "Renders the self-attention of reference patches: block --layer's (1-based; -1 = the last)\n"
    "attention probabilities, the row of the patch at grid position (Y, X) over all patch tokens,\n"
    "averaged over heads (or head --head, 0-based), reshaped to the patch grid, bilinearly\n"
    "upsampled and overlaid on the image (bright = attended; the reference patch is outlined).\n"
    "One row per image (--index: sample numbers in --split), one column for the image and one\n"
    "per --ref. Takes pre-training (beit pretrain) and fine-tuning (beit finetune) checkpoints.\n"
    "--h5 writes the maps as numbers: maps [images, refs, grid, grid] float32 (what the PNG\n"
    "shows, patch keys only), cls [images, refs] (the attention on the CLS key: each map sums\n"
    "to 1 - cls) and row_sums [images, refs, heads] (each head's whole row, = 1).\n"
    "Example: build/beit attn --checkpoint runs/pretrain/ckpt-00004680.h5 --data data/fmnist.h5 \\\n"
    "           --index 0,1,2,3 --ref 3,3 --ref 1,5 --png attn.png";

#define MAX_ITEMS ATTN_MAX_ITEMS

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

int cmd_attn(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "test", *index_s = NULL, *png = NULL, *h5 = NULL, *layer_s = "-1",
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
                          {"--h5", "FILE", "output HDF5: the maps as numbers", &h5},
                          {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, nrest, rest, 0, extra, USAGE)) {
        free(rest);
        return 0;
    }
    if (!ckpt || !data || !index_s || (!png && !h5) || nref == 0)
        beit_fatal_user(BEIT_EXIT_USAGE,
                        "beit attn: --checkpoint, --data, --index, --ref and --png (or --h5) are required (see --help)");
    attn_maps_opts o = {0};
    o.nidx = parse_ints(index_s, o.idx, MAX_ITEMS);
    if (o.nidx <= 0) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --index '%s': expected I or I,J,... (at most %d)", index_s, MAX_ITEMS);
    o.nref = nref;
    for (int i = 0; i < nref; i++) {
        int v[2];
        if (parse_ints(refs_s[i], v, 2) != 2)
            beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --ref '%s': expected Y,X (patch grid row and column)", refs_s[i]);
        o.ry[i] = v[0];
        o.rx[i] = v[1];
    }
    o.layer = atoi(layer_s);
    o.head = atoi(head_s);
    o.scale = atoi(scale_s);
    if (o.scale < 1 || o.scale > 64) beit_fatal_user(BEIT_EXIT_USAGE, "beit attn: --scale %s: expected 1..64", scale_s);
    o.ckpt = ckpt, o.data = data, o.split = split, o.png = png, o.h5 = h5;
    attn_maps_render(&o);
    free(rest);
    return 0;
}
