/* The MIM logits of a beit-pretrain checkpoint's model on given images and masks, the images
 * normalised with the checkpoint's recorded input normalisation (tests/models/weights_io.sh
 * compares them with the upstream PyTorch module's).
 *   mim_logits CKPT.h5 IN.h5 OUT.h5
 * IN: images uint8 [B,S,S,C], mask uint8 [B,Np]; OUT: logits float32 [M,V] of the masked
 * patches, row-major over (image, patch). */
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/input.h"
#include "beit/modelcfg.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static void *read_u8(hid_t f, const char *name, hsize_t *dims, int nd) {
    hid_t d = H5_CHECK(H5Dopen2(f, name, H5P_DEFAULT)), s = H5Dget_space(d);
    if (H5Sget_simple_extent_ndims(s) != nd) beit_fatal_user(BEIT_EXIT_DATA, "%s: expected %d dims", name, nd);
    H5Sget_simple_extent_dims(s, dims, NULL);
    size_t n = 1;
    for (int k = 0; k < nd; k++) n *= dims[k];
    uint8_t *buf = xmalloc(n);
    H5_CHECK(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 4) {
        fprintf(stderr, "usage: mim_logits CKPT.h5 IN.h5 OUT.h5\n");
        return 2;
    }
    ckpt_reader r;
    ckpt_open(&r, argv[1]);
    if (model_kind_of(r.kind) != MODEL_PRETRAIN) beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: not beit-pretrain", argv[1]);
    if (r.norm.chans == 0) beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: no input normalisation recorded", argv[1]);
    hid_t f = H5_CHECK(H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT));
    hsize_t di[4], dm[2];
    uint8_t *img = read_u8(f, "images", di, 4), *mask = read_u8(f, "mask", dm, 2);
    H5Fclose(f);
    const int B = (int)di[0], S = (int)di[1], C = (int)di[3];
    ckpt_model cm;
    model_from_checkpoint(&cm, &r, MODEL_PRETRAIN, argv[1], B);
    vit_model *m = &cm.vit;
    if (S != m->d.img_size || C != m->d.in_chans || (int)dm[1] != m->Np || (int)dm[0] != B)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: images [%d,%d,%d,%d] / mask do not fit the model", argv[2], B, S, S, C);
    ckpt_norm nm;
    input_norm_pick(&nm, &r.norm, r.norm.mean, r.norm.std, C, argv[1]);
    float *x = xalloc_floats((size_t)B * C * S * S);
    crop_box whole = crop_identity(S, S);
    for (int b = 0; b < B; b++)
        input_image(x + (size_t)b * C * S * S, img + (size_t)b * S * S * C, S, S, C, &whole, S, nm.mean, nm.std);
    vit_forward(m, cm.pt, x, mask, NULL, B);
    const int M = vit_head_rows(m, mask, B);
    int32_t *tgt = xcalloc((size_t)M + 1, sizeof(int32_t));
    double loss;
    vit_mim_forward(m, cm.pt, tgt, NULL, M, &loss, NULL); /* head_out = logits [M,V] */
    hid_t o = H5_CHECK(H5Fcreate(argv[3], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    hsize_t dl[2] = {(hsize_t)M, (hsize_t)m->head_out};
    hid_t s = H5Screate_simple(2, dl, NULL);
    hid_t d = H5_CHECK(H5Dcreate2(o, "logits", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->a.head_out));
    H5Dclose(d);
    H5Sclose(s);
    H5Fclose(o);
    printf("logits [%d, %d] of %d images\n", M, m->head_out, B);
    ckpt_close(&r);
    ckpt_model_free(&cm);
    free(x);
    free(tgt);
    free(img);
    free(mask);
    MPI_Finalize();
    return 0;
}
