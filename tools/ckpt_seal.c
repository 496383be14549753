/* beit-ckpt-seal FILE.h5: the last step of tools/import_torch.py. Loads the checkpoint as every
 * beit command does (format, every tensor's shape, checksum and finiteness, the model rebuilt
 * from the job stored in it), refuses tensors under /params that the model does not have, and
 * writes the root attribute params_checksum = params_checksum() of the model's parameter table
 * (FNV-1a over the floats in the table's order, which only the model knows) and the stored job
 * resolved (every key, as training stores it). Exit codes as
 * beit's: 4 damaged checkpoint, 5 tensors that do not fit the stored job. */
#include "beit/checkpoint.h"
#include "beit/error.h"
#include "beit/h5attr.h"
#include "beit/modelcfg.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static herr_t count_cb(hid_t g, const char *name, const H5L_info_t *info, void *n) {
    (void)g;
    (void)name;
    (void)info;
    (*(int *)n)++;
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: beit-ckpt-seal FILE.h5   (run by tools/import_torch.py)\n");
        MPI_Finalize();
        return BEIT_EXIT_USAGE;
    }
    const char *path = argv[1];
    ckpt_reader r;
    ckpt_open(&r, path);
    model_kind kind = model_kind_of(r.kind);
    if (kind != MODEL_PRETRAIN && kind != MODEL_FT_CLS && kind != MODEL_FT_SEG)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: kind '%s' is not a BEiT encoder checkpoint", path, r.kind);
    ckpt_model cm;
    model_from_checkpoint(&cm, &r, kind, path, 1); /* every tensor: shape, finite, checksum */
    int n = 0;
    hid_t g = H5Gopen2((hid_t)r.file, "params", H5P_DEFAULT);
    hsize_t idx = 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, count_cb, &n);
    H5Gclose(g);
    if (n != cm.pt->n)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: /params holds %d tensors, the model of its stored job has %d", path, n,
                        cm.pt->n);
    char sum[32];
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)params_checksum(cm.pt));
    const size_t total = cm.pt->total;
    char *yaml = config_to_yaml(&cm.c); /* the job resolved (every key), as beit's own checkpoints store it */
    ckpt_close(&r);
    ckpt_model_free(&cm);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0 || (H5Aexists(f, "params_checksum") > 0 && H5Adelete(f, "params_checksum") < 0) ||
        h5a_put_str(f, "params_checksum", sum) < 0 || H5Adelete(f, "config") < 0 || h5a_put_str(f, "config", yaml) < 0 ||
        H5Fclose(f) < 0)
        beit_fatal_user(BEIT_EXIT_IO, "%s: cannot write the attributes params_checksum and config", path);
    free(yaml);
    printf("loaded by beit: %d tensors, %zu floats, params_checksum %s\n", n, total, sum);
    MPI_Finalize();
    return 0;
}
