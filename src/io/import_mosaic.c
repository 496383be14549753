/* `beit data mosaic` as a library stage: build the segmentation store (mosaic.c) and report
 * what was written (import.h). */
#include "beit/import.h"

#include "beit/log.h"
#include "beit/store.h"

#include <mpi.h>

int import_mosaic(const mosaic_opts *o) {
    double t0 = beit_now();
    mosaic_build(o);
    beit_store *s = store_open(o->out_path, MPI_COMM_NULL);
    char dur[32];
    beit_log("wrote %s: mosaic of %s (seed %llu), train %lld, test %lld images of 28x28x1 with masks, %d classes (%s)",
             o->out_path, o->src_path, (unsigned long long)o->seed, (long long)store_split_count(s, "train"),
             (long long)store_split_count(s, "test"), store_num_classes(s),
             beit_fmt_duration(beit_now() - t0, dur, sizeof dur));
    store_close(s);
    if (o->png_path) beit_log("wrote %s: the first 16 train images and their masks", o->png_path);
    return 0;
}
