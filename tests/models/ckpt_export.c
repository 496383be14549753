/* Writes a BEiT checkpoint of a small random model (through ckpt_write, as training does) and
 * the C forward's MIM logits on fixed images and a blockwise mask, for
 * tools/load_checkpoint.py --compare (tests/models/ckpt_torch.sh).
 *   ckpt_export OUT_DIR beit|vit */
#include "beit/checkpoint.h"
#include "beit/config.h"
#include "beit/error.h"
#include "beit/rng.h"
#include "beit/masking.h"
#include "beit/tasks.h"
#include "beit/vit.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_ds(hid_t f, const char *name, hid_t type, int nd, const hsize_t *dims, const void *buf, hid_t mem) {
    hid_t s = H5Screate_simple(nd, dims, NULL);
    hid_t d = H5_CHECK(H5Dcreate2(f, name, type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Dwrite(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
    H5Dclose(d);
    H5Sclose(s);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 3) { fprintf(stderr, "usage: ckpt_export OUT_DIR beit|vit\n"); return 2; }
    beit_config c;
    config_defaults(&c);
    const char *sets[] = {"task=pretrain", "model.img_size=16", "model.patch_size=4", "model.in_chans=1",
                          "model.embed_dim=24", "model.depth=3", "model.num_heads=3", "model.vocab_size=37",
                          "mask.num_patches=6", "mask.min_patches=2", "model.drop_path=0"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) config_set(&c, sets[i]);
    char arch[32];
    snprintf(arch, sizeof arch, "model.arch=%s", argv[2]);
    config_set(&c, arch);
    config_validate(&c, "ckpt_export");
    vit_dims d;
    vit_dims_from_config(&d, &c, HEAD_TOKENS);
    vit_model m;
    param_table pt;
    params_init(&pt);
    vit_build(&m, &pt, &d);
    params_alloc(&pt);
    vit_init(&m, &pt, 11);
    /* the zero-initialised tensors (biases, rel-pos table) get values, so every name matters */
    rng_t r = rng_stream(5, RNG_TEST, 0, 0);
    for (size_t i = 0; i < pt.total; i++) pt.data[i] += 0.05f * rng_normal(&r);
    const int B = 3;
    vit_alloc(&m, B);
    float *x = xalloc_floats((size_t)B * 16 * 16);
    for (int i = 0; i < B * 256; i++) x[i] = rng_normal(&r);
    uint8_t *mask = xcalloc((size_t)B * m.Np, 1);
    mask_params mp;
    mask_params_from_config(&mp, &c);
    for (int b = 0; b < B; b++) mask_generate(mask + b * m.Np, &mp, 1, 0, 0, b);
    vit_forward(&m, &pt, x, mask, NULL, B);
    int M = vit_head_rows(&m, mask, B);
    int32_t *tgt = xcalloc((size_t)M, sizeof(int32_t));
    double loss;
    vit_mim_forward(&m, &pt, tgt, NULL, M, &loss, NULL); /* head_out = logits [M,V] */

    beit_dist dist;
    dist_init(&dist, MPI_COMM_WORLD);
    char *yaml = config_to_yaml(&c);
    char *ck = xasprintf("%s/ckpt.h5", argv[1]);
    ckpt_meta meta = {"beit-pretrain", 0, 0, yaml, NULL};
    ckpt_write(ck, &pt, NULL, NULL, &meta, &dist);
    char *out = xasprintf("%s/logits.h5", argv[1]);
    hid_t f = H5_CHECK(H5Fcreate(out, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t di[4] = {B, 1, 16, 16}, dm[2] = {B, (hsize_t)m.Np}, dl[2] = {(hsize_t)M, 37};
    write_ds(f, "images", H5T_IEEE_F32LE, 4, di, x, H5T_NATIVE_FLOAT);
    write_ds(f, "mask", H5T_STD_U8LE, 2, dm, mask, H5T_NATIVE_UINT8);
    write_ds(f, "logits", H5T_IEEE_F32LE, 2, dl, m.a.head_out, H5T_NATIVE_FLOAT);
    H5Fclose(f);
    printf("wrote %s and %s (%d masked rows)\n", ck, out, M);
    free(out);
    free(ck);
    free(yaml);
    free(tgt);
    free(mask);
    free(x);
    vit_free(&m);
    params_free(&pt);
    MPI_Finalize();
    return 0;
}
