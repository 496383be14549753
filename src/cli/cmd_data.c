/* beit data: import datasets into the HDF5 store (include/beit/store.h) and describe a store.
 *
 *   beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] [--force] OUT.h5
 *   beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F] [--force]
 *   beit data mosaic --data FMNIST.h5 --seed S [--train N] [--test N] [--png FILE] [--force] OUT.h5
 *   beit data info [--verify] FILE.h5
 *
 * Flags are parsed here (runopts.h); the work is a library stage (import.h, store.h). An
 * existing OUT.h5 is refused before any work unless --force (outfile.h).
 * Imports are single-process jobs: under mpirun, rank 0 works and the others wait. */
#include "commands.h"
#include "runopts.h"
#include "beit/describe.h"
#include "beit/error.h"
#include "beit/import.h"
#include "beit/log.h"
#include "beit/mosaic.h"
#include "beit/outfile.h"
#include "beit/store.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

/* ======================================================================================== */
/* usage texts                                                                              */
/* ======================================================================================== */

static void usage_data(FILE *f) {
    fprintf(f, "usage: beit data <subcommand> [options]\n"
               "\n"
               "Datasets live in an HDF5 store (one file): /<split>/images uint8 [N,H,W,C] and\n"
               "/<split>/labels [N], with class names, per-channel mean/std and a uuid as attributes.\n"
               "\n"
               "subcommands:\n"
               "  import fashion-mnist   import the Fashion-MNIST IDX files (Debian dataset-fashion-mnist)\n"
               "  import folder          import a class-per-subfolder tree of PNG/JPEG images\n"
               "  import imagenet        import ROOT/train and ROOT/val (class folders) as one store\n"
               "  mosaic                 build a segmentation store (per-pixel masks) from Fashion-MNIST\n"
               "  info                   describe any file beit writes (store, token store, checkpoint)\n"
               "\n"
               "`beit data <subcommand> --help` describes each. Example:\n"
               "  beit data import fashion-mnist data/fmnist.h5 && beit data info data/fmnist.h5\n");
}

static void usage_import(FILE *f) {
    fprintf(f, "usage: beit data import <fashion-mnist|folder|imagenet> ... OUT.h5\n"
               "\n"
               "  beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] [--force] OUT.h5\n"
               "  beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F] [--force]\n"
               "  beit data import imagenet ROOT OUT.h5 --size S [--val-split NAME] [--force]\n"
               "\n"
               "The store is written to a temporary file next to OUT.h5 and renamed when complete:\n"
               "a failed or interrupted import leaves OUT.h5 as it was. An existing OUT.h5 is refused\n"
               "(exit 2, the file left untouched) unless --force replaces it; a store cannot gain a\n"
               "split later: import every split in one run (for a train/ and a val/ tree of the same\n"
               "classes: import imagenet).\n"
               "\n"
               "example:\n"
               "  beit data import fashion-mnist data/fmnist.h5\n");
}

static void usage_fmnist(FILE *f) {
    fprintf(f, "usage: beit data import fashion-mnist [--src DIR] [--expect-counts TRAIN:TEST|any] [--force]\n"
               "                                      OUT.h5\n"
               "\n"
               "Reads DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (gzip-compressed IDX), checks\n"
               "them (gzip integrity, magic numbers, 28x28 images, equal image/label counts, labels 0..9,\n"
               "the expected counts) and writes /train and /test (uint8 images [N,28,28,1], uint8 labels).\n"
               "\n"
               "flags:\n"
               "  --src DIR             where the .gz files are (default " IMPORT_FMNIST_DEFAULT_SRC ")\n"
               "  --expect-counts T:E   required train:test sample counts (default 60000:10000, the real\n"
               "                        Fashion-MNIST); 'any' accepts any counts (for small test sets)\n"
               "  --force               replace an existing OUT.h5 (without it: exit 2, file untouched)\n"
               "  -h, --help            this text\n"
               "\n"
               "example:\n"
               "  beit data import fashion-mnist data/fmnist.h5\n");
}

static void usage_folder(FILE *f) {
    fprintf(f, "usage: beit data import folder DIR OUT.h5 --size S [--split-name NAME] [--test-fraction F]\n"
               "                                [--force]\n"
               "\n"
               "DIR holds one subfolder per class (classes sorted by folder name, labels 0..K-1) with\n"
               "PNG/JPEG files (.png .jpg .jpeg, any case; sorted by name; other files are skipped).\n"
               "Each image is decoded (format from its signature), center-cropped to a square and\n"
               "resized to S x S with an antialiased bilinear filter. Channels: 1 if every image is\n"
               "grayscale, else 3 (RGB; gray images replicated, alpha composited onto white).\n"
               "\n"
               "flags:\n"
               "  --size S              output side in pixels (required, 1..4096)\n"
               "  --split-name NAME     split the images go to (default train)\n"
               "  --test-fraction F     hold out round(F * n) images of each class (fixed-seed random\n"
               "                        choice) as the split 'test' (default 0, 0 <= F < 1)\n"
               "  --force               replace an existing OUT.h5 (without it: exit 2, file untouched;\n"
               "                        a split cannot be added to an existing store: for separate train\n"
               "                        and validation trees use 'beit data import imagenet')\n"
               "  -h, --help            this text\n"
               "\n"
               "example:\n"
               "  beit data import folder ~/pets data/pets.h5 --size 64 --test-fraction 0.1\n");
}

static void usage_imagenet(FILE *f) {
    fprintf(f, "usage: beit data import imagenet ROOT OUT.h5 --size S [--val-split NAME] [--force]\n"
               "\n"
               "ROOT holds train/ and val/, each with one subfolder per class (ImageNet's layout, with\n"
               "the validation images sorted into class folders). Both go into one store: train/ ->\n"
               "split train, val/ -> split test (or NAME). The class index is the sorted class-folder\n"
               "names, the same for both splits: a class folder present in one tree and missing in the\n"
               "other is an error naming it (exit 3). Images are decoded and resized as by 'import\n"
               "folder' (center square, S x S, antialiased bilinear); channels 1 only if every image\n"
               "is grayscale; the store's mean/std are computed over train only.\n"
               "\n"
               "flags:\n"
               "  --size S              output side in pixels (required, 1..4096; 224 for the paper's jobs)\n"
               "  --val-split NAME      split val/ goes to (default test, which the jobs evaluate on)\n"
               "  --force               replace an existing OUT.h5 (without it: exit 2, file untouched)\n"
               "  -h, --help            this text\n"
               "\n"
               "example:\n"
               "  beit data import imagenet /data/imagenet data/imagenet.h5 --size 224\n");
}

static void usage_mosaic(FILE *f) {
    fprintf(f, "usage: beit data mosaic --data FMNIST.h5 --seed S [--train N] [--test N] [--png FILE] [--force]\n"
               "                        OUT.h5\n"
               "\n"
               "Builds a semantic-segmentation store from a Fashion-MNIST store (28x28x1, 10 classes):\n"
               "each sample pastes 1..4 garments of the same split, downscaled to 14x14, at random\n"
               "positions on a black 28x28 canvas; pixels >= %d of a garment overwrite the canvas and\n"
               "the mask (the later garment wins). Masks /<split>/masks uint8 [N,28,28] hold 0 for\n"
               "background and 1..10 for the garment classes; the label of a sample is the class\n"
               "covering the most pixels (0 if none). 11 classes: background + the source's 10.\n"
               "Everything is drawn from (seed, split, sample index): the same seed gives the same\n"
               "images, labels and masks. Recipe: datasets/mosaic.md.\n"
               "\n"
               "flags:\n"
               "  --data FILE     the source store (required; e.g. from 'beit data import fashion-mnist')\n"
               "  --seed S        the seed (required, 0..2^63-1)\n"
               "  --train N       samples of split train (default: as many as the source's train split)\n"
               "  --test N        samples of split test (default: as many as the source's test split)\n"
               "  --png FILE      also write a PNG of the first 16 train images beside their masks\n"
               "  --force         replace an existing OUT.h5 (without it: exit 2, file untouched)\n"
               "  -h, --help      this text\n"
               "\n"
               "example:\n"
               "  beit data mosaic --data data/fmnist.h5 --seed 1 --png mosaic.png data/mosaic.h5\n",
            MOSAIC_FOREGROUND);
}

static void usage_info(FILE *f) {
    fprintf(f, "usage: beit data info [--verify] FILE.h5\n"
               "\n"
               "Describes any file beit writes, told apart by its 'format' attribute:\n"
               "  dataset store  its layout (groups, datasets with shape, type, chunks, filters and size\n"
               "                 on disk), its attributes, and statistics: per-class sample counts of\n"
               "                 every split, the per-channel mean/std and, for stores with masks, the\n"
               "                 per-class pixel frequencies of every split (every mask is read and checked)\n"
               "  token store    vocabulary, grid, views, the tokenizer and dataset it was made from,\n"
               "                 its splits, layout and attributes\n"
               "  checkpoint     kind, step, seed, ranks, format version, a summary of its config, its\n"
               "                 tensors (name, shape, checksum) and whether it holds the optimizer state\n"
               "A missing file, one of no known format, or a bad store exits 3; a bad checkpoint exits 4.\n"
               "\n"
               "flags:\n"
               "  --verify     read all of it and check every invariant: a store's images, labels\n"
               "               and masks, and its mean/std against the images; a token store's tokens\n"
               "               (< vocab_size) and crop boxes; a checkpoint's tensors and optimizer\n"
               "               state (finite, each checksum). The file and dataset or tensor at fault\n"
               "               are named (exit 3 for a store, 4 for a checkpoint)\n"
               "  -h, --help   this text\n"
               "\n"
               "example:\n"
               "  beit data info data/fmnist.h5\n"
               "  beit data info --verify runs/pretrain/ckpt-00001000.h5\n");
}

/* ======================================================================================== */
/* subcommands: flags -> a library stage                                                    */
/* ======================================================================================== */

static int data_import_fmnist(int argc, char **argv) {
    const char *cmd = "beit data import fashion-mnist";
    const char *src = NULL, *expect = NULL, *force = NULL, *pos[1];
    const extra_flag flags[] = {{"--src", "DIR", NULL, &src},
                                {"--expect-counts", "T:E", NULL, &expect},
                                {"--force", NULL, NULL, &force},
                                {0}};
    int npos;
    if (runopts_parse_args(cmd, argc, argv, flags, pos, 1, &npos, usage_fmnist)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing OUT.h5 (see '%s --help')", cmd, cmd);
    import_fmnist_opts o = {.src = src, .out = pos[0], .expect_train = 60000, .expect_test = 10000};
    if (expect) {
        if (!strcmp(expect, "any")) {
            o.expect_train = o.expect_test = -1;
        } else {
            char *colon = strchr(expect, ':');
            if (!colon)
                beit_fatal_user(BEIT_EXIT_USAGE, "%s: --expect-counts '%s' (expected TRAIN:TEST or any)", cmd, expect);
            char *a = xstrdup(expect);
            a[colon - expect] = '\0';
            o.expect_train = runopts_int(cmd, "--expect-counts", a, 0, 1LL << 40);
            o.expect_test = runopts_int(cmd, "--expect-counts", colon + 1, 0, 1LL << 40);
            free(a);
        }
    }
    output_refuse_existing(cmd, o.out, force != NULL, NULL, MPI_COMM_WORLD);
    if (beit_rank() != 0) return 0;
    return import_fmnist(&o);
}

static int data_import_folder(int argc, char **argv) {
    const char *cmd = "beit data import folder";
    const char *size_s = NULL, *split = NULL, *frac_s = NULL, *force = NULL, *pos[2];
    const extra_flag flags[] = {{"--size", "S", NULL, &size_s},
                                {"--split-name", "NAME", NULL, &split},
                                {"--test-fraction", "F", NULL, &frac_s},
                                {"--force", NULL, NULL, &force},
                                {0}};
    int npos;
    if (runopts_parse_args(cmd, argc, argv, flags, pos, 2, &npos, usage_folder)) return 0;
    if (npos != 2) beit_fatal_user(BEIT_EXIT_USAGE, "%s: expected DIR and OUT.h5 (see '%s --help')", cmd, cmd);
    if (!size_s) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --size is required (see '%s --help')", cmd, cmd);
    import_folder_opts o = {.dir = pos[0], .out = pos[1], .split = split ? split : "train"};
    o.size = (int)runopts_int(cmd, "--size", size_s, 1, 4096);
    if (!*o.split || strchr(o.split, '/') || strlen(o.split) >= 64)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --split-name '%s' (expected a name without '/', under 64 chars)", cmd,
                        o.split);
    if (frac_s) {
        char *end = NULL;
        o.test_fraction = strtod(frac_s, &end);
        if (!end || *end || end == frac_s || !(o.test_fraction >= 0 && o.test_fraction < 1))
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: --test-fraction '%s' (expected a number in [0, 1))", cmd, frac_s);
    }
    if (o.test_fraction > 0 && !strcmp(o.split, "test"))
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --split-name test with --test-fraction (the held-out split is 'test')",
                        cmd);
    /* an import writes a whole store: into an existing one it would drop the splits there */
    char *add = split ? xasprintf("adding split '%s' to an existing store is not supported: import every split in "
                                  "one run ('beit data import imagenet' takes train/ and val/ trees), or write a new "
                                  "store (--force replaces the whole store).",
                                  o.split)
                      : NULL;
    output_refuse_existing(cmd, o.out, force != NULL, add, MPI_COMM_WORLD);
    free(add);
    if (beit_rank() != 0) return 0;
    if (import_folder(&o) == IMPORT_FOLDER_SPLIT_EMPTY)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --test-fraction %g leaves split %s empty (expected a smaller fraction)",
                        cmd, o.test_fraction, o.split);
    return 0;
}

static int data_import_imagenet(int argc, char **argv) {
    const char *cmd = "beit data import imagenet";
    const char *size_s = NULL, *val = NULL, *force = NULL, *pos[2];
    const extra_flag flags[] = {{"--size", "S", NULL, &size_s},
                                {"--val-split", "NAME", NULL, &val},
                                {"--force", NULL, NULL, &force},
                                {0}};
    int npos;
    if (runopts_parse_args(cmd, argc, argv, flags, pos, 2, &npos, usage_imagenet)) return 0;
    if (npos != 2) beit_fatal_user(BEIT_EXIT_USAGE, "%s: expected ROOT and OUT.h5 (see '%s --help')", cmd, cmd);
    if (!size_s) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --size is required (see '%s --help')", cmd, cmd);
    import_imagenet_opts o = {.root = pos[0], .out = pos[1], .val_split = val ? val : "test"};
    o.size = (int)runopts_int(cmd, "--size", size_s, 1, 4096);
    if (!*o.val_split || strchr(o.val_split, '/') || strlen(o.val_split) >= 64 || !strcmp(o.val_split, "train"))
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: --val-split '%s' (expected a name other than train, without '/', "
                        "under 64 chars)", cmd, o.val_split);
    output_refuse_existing(cmd, o.out, force != NULL, NULL, MPI_COMM_WORLD);
    if (beit_rank() != 0) return 0;
    return import_imagenet(&o);
}

static int data_mosaic(int argc, char **argv) {
    const char *cmd = "beit data mosaic";
    const char *data = NULL, *seed_s = NULL, *train_s = NULL, *test_s = NULL, *png = NULL, *force = NULL, *pos[1];
    const extra_flag flags[] = {{"--data", "FILE", NULL, &data}, {"--seed", "S", NULL, &seed_s},
                                {"--train", "N", NULL, &train_s}, {"--test", "N", NULL, &test_s},
                                {"--png", "FILE", NULL, &png},    {"--force", NULL, NULL, &force},
                                {0}};
    int npos;
    if (runopts_parse_args(cmd, argc, argv, flags, pos, 1, &npos, usage_mosaic)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing OUT.h5 (see '%s --help')", cmd, cmd);
    if (!data) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --data is required (see '%s --help')", cmd, cmd);
    if (!seed_s) beit_fatal_user(BEIT_EXIT_USAGE, "%s: --seed is required (see '%s --help')", cmd, cmd);
    mosaic_opts o = {.src_path = data, .out_path = pos[0], .png_path = png, .n_train = -1, .n_test = -1};
    o.seed = (uint64_t)runopts_int(cmd, "--seed", seed_s, 0, INT64_MAX);
    /* sample indices are the 32-bit b of the RNG stream; store_read takes int counts */
    if (train_s) o.n_train = runopts_int(cmd, "--train", train_s, 1, INT32_MAX);
    if (test_s) o.n_test = runopts_int(cmd, "--test", test_s, 1, INT32_MAX);
    output_refuse_existing(cmd, o.out_path, force != NULL, NULL, MPI_COMM_WORLD);
    if (beit_rank() != 0) return 0;
    return import_mosaic(&o);
}

static int data_info(int argc, char **argv) {
    const char *cmd = "beit data info", *pos[1], *verify = NULL;
    const extra_flag flags[] = {{"--verify", NULL, NULL, &verify}, {0}};
    int npos;
    if (runopts_parse_args(cmd, argc, argv, flags, pos, 1, &npos, usage_info)) return 0;
    if (npos != 1) beit_fatal_user(BEIT_EXIT_USAGE, "%s: missing FILE.h5 (see '%s --help')", cmd, cmd);
    if (beit_rank() != 0) return 0;
    return beit_describe(stdout, pos[0], verify != NULL);
}

/* ======================================================================================== */

static int cmd_import(int argc, char **argv) {
    if (argc < 2) {
        if (beit_rank() == 0) usage_import(stderr);
        return BEIT_EXIT_USAGE;
    }
    const char *what = argv[1];
    if (!strcmp(what, "--help") || !strcmp(what, "-h")) {
        if (beit_rank() == 0) usage_import(stdout);
        return 0;
    }
    if (!strcmp(what, "fashion-mnist")) return data_import_fmnist(argc - 1, argv + 1);
    if (!strcmp(what, "folder")) return data_import_folder(argc - 1, argv + 1);
    if (!strcmp(what, "imagenet")) return data_import_imagenet(argc - 1, argv + 1);
    beit_fatal_user(BEIT_EXIT_USAGE,
                    "beit data import: unknown dataset kind '%s' (expected fashion-mnist, folder or imagenet)", what);
}

int cmd_data(int argc, char **argv) {
    int rc;
    if (argc < 2) {
        if (beit_rank() == 0) usage_data(stderr);
        rc = BEIT_EXIT_USAGE;
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (beit_rank() == 0) usage_data(stdout);
        rc = 0;
    } else if (!strcmp(argv[1], "import")) {
        rc = cmd_import(argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "info")) {
        rc = data_info(argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "mosaic")) {
        rc = data_mosaic(argc - 1, argv + 1);
    } else {
        beit_fatal_user(BEIT_EXIT_USAGE,
                        "beit data: unknown subcommand '%s' (expected import, mosaic or info; see 'beit data "
                        "--help')",
                        argv[1]);
    }
    /* rank 0 did the work; the others wait so nobody reads a half-written file */
    if (beit_nranks() > 1) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    return rc;
}
