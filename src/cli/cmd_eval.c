/* beit eval: a fine-tuned checkpoint on one split of a store, for batch scripts. Prints ONE
 * JSON line on stdout (rank 0); everything else goes to stderr/log lines. MPI-parallel: ranks
 * split the split and sum the counts, so any number of ranks gives the same line. */
#include "beit/error.h"
#include "beit/eval.h"
#include "beit/log.h"
#include "commands.h"
#include "runopts.h"

#include <stdio.h>
#include <stdlib.h>

static const char *USAGE =
    "usage: beit eval --checkpoint CKPT --data DATA.h5 [--split test] [--batch N] [--png FILE]\n"
    "                 [--logits FILE.h5]\n"
    "\n"
    "Evaluates a fine-tuned checkpoint (beit finetune: kind finetune-cls or finetune-seg; the\n"
    "model is rebuilt from the job stored in it) on a split of a dataset store and prints one\n"
    "JSON line:\n"
    "  {\"task\": \"classification\", \"split\", \"n\", \"top1\", \"top5\", \"checkpoint\",\n"
    "   \"checkpoint_sha256\", \"kind\", \"step\", \"config\"}\n"
    "(segmentation: \"miou\" and \"pixel_acc\" instead of top1/top5; \"config\" is the job stored in\n"
    "the checkpoint, as YAML text). --png (segmentation): image | truth | prediction of the\n"
    "first 8 images. --logits (classification): every image's logits as HDF5, logits [N, classes]\n"
    "float32 and labels [N] in store order. The images are normalised with the mean/std recorded\n"
    "in the checkpoint (input_mean, input_std; logged when they differ from the store's), or with\n"
    "the store's when it has none. Exit codes: 0 ok; 2 bad command line; 3 data unreadable or bad; 4\n"
    "checkpoint unreadable or not a beit checkpoint; 5 checkpoint and data disagree (not a\n"
    "fine-tuned model, image shape, class count, no pixel labels for a segmentation model).\n"
    "Example: mpirun -np 2 build/beit eval --checkpoint runs/finetune/ckpt-00000468.h5 \\\n"
    "           --data data/fmnist.h5 --split test";

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", f);
        else if (ch == '\t') fputs("\\t", f);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *split = "test", *batch_s = "64", *png = NULL, *logits = NULL;
    extra_flag extra[] = {{"--checkpoint", "CKPT", "fine-tuned checkpoint (beit finetune)", &ckpt},
                          {"--data", "DATA.h5", "dataset store (beit data import / mosaic)", &data},
                          {"--split", "NAME", "split to evaluate (default test)", &split},
                          {"--batch", "N", "images per rank per forward (default 64)", &batch_s},
                          {"--png", "FILE", "segmentation: image | truth | prediction PNG", &png},
                          {"--logits", "FILE.h5", "classification: every image's logits and label (HDF5)", &logits},
                          {NULL, NULL, NULL, NULL}};
    runopts ro;
    if (runopts_parse(&ro, argc, argv, 0, extra, USAGE)) return 0;
    if (!ckpt || !data) beit_fatal_user(BEIT_EXIT_USAGE, "beit eval: --checkpoint and --data are required (see --help)");
    char *end;
    long batch = strtol(batch_s, &end, 10);
    if (*end || batch < 1 || batch > 4096) beit_fatal_user(BEIT_EXIT_USAGE, "beit eval: --batch %s: expected 1..4096", batch_s);
    beit_log_to_stderr();
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);

    ckpt_eval_result res = eval_checkpoint(ckpt, data, split, (int)batch, png, logits, &d);
    const int seg = res.seg;
    const ft_eval_result e = res.e;
    if (d.rank == 0) {
        printf("{\"task\": \"%s\", \"split\": ", seg ? "segmentation" : "classification");
        json_string(stdout, split);
        printf(", \"n\": %lld", (long long)e.n);
        if (!seg) printf(", \"top1\": %.6f, \"top5\": %.6f", e.top1, e.top5);
        else printf(", \"miou\": %.6f, \"pixel_acc\": %.6f", e.miou, e.pixel_acc);
        printf(", \"checkpoint\": ");
        json_string(stdout, ckpt);
        printf(", \"checkpoint_sha256\": \"%s\", \"kind\": \"%s\", \"step\": %lld, \"data\": ", res.sha256, res.kind,
               (long long)res.step);
        json_string(stdout, data);
        printf(", \"config\": ");
        json_string(stdout, res.config_yaml);
        printf("}\n");
        fflush(stdout);
    }
    eval_checkpoint_free(&res);
    return 0;
}
