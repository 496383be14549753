/* beit tokenize: flags and the job, then tokenize_store (include/beit/tokenize.h) encodes every
 * split of a dataset store into visual tokens with a tokenizer (beit's dVAE or DALL-E's encoder). */
#include "beit/error.h"
#include "beit/outfile.h"
#include "beit/tokenize.h"
#include "commands.h"
#include "runopts.h"

#include <stdlib.h>

static const char *USAGE =
    "usage: beit tokenize -c JOB [--checkpoint TOKENIZER.h5] [--data DATA.h5] [--tokens TOKENS.h5] [--force]\n"
    "                     [--set KEY=VALUE]... [--seed S] [--log-every N]\n"
    "\n"
    "Encodes every split of the dataset store (data.path, or --data) into visual tokens with the\n"
    "tokenizer checkpoint (tokenize.checkpoint, or --checkpoint): beit's dVAE (kind dvae), or\n"
    "DALL-E's encoder converted by tools/import_dalle.py (kind dalle-encoder; its views are\n"
    "resized with PIL's Lanczos, as BEiT does). tokenize.views views per image (view\n"
    "0 = the stored image; views 1.. = random resized crops + flips from aug.*, drawn from the\n"
    "seed), tokenize.batch images per rank per step. The tokenizer is rebuilt from the config\n"
    "stored in its checkpoint; dvae.* (dalle.*) keys the job sets must agree with it. data.subset limits\n"
    "each split to its first N images. All ranks write one HDF5 file (data.tokens, or --tokens)\n"
    "with parallel HDF5; it appears at its path only when complete. An existing token store is\n"
    "refused before any work (exit 2, the file left untouched) unless --force replaces it.\n"
    "Example: mpirun -np 4 build/beit tokenize -c jobs/fmnist/tokenize.yaml \\\n"
    "           --checkpoint runs/dvae/ckpt-00000700.h5 --tokens data/fmnist-tokens.h5";

static void set_str(beit_config *c, const char *key, const char *value) {
    char *a = xasprintf("%s=%s", key, value);
    config_set(c, a);
    free(a);
}

int cmd_tokenize(int argc, char **argv) {
    const char *ckpt_path = NULL, *data_path = NULL, *tokens_path = NULL, *force = NULL;
    const extra_flag extra[] = {
        {"--checkpoint", "FILE", "the tokenizer checkpoint (tokenize.checkpoint)", &ckpt_path},
        {"--data", "FILE", "the dataset store to tokenize (data.path)", &data_path},
        {"--tokens", "FILE", "the token store to write (data.tokens)", &tokens_path},
        {"--force", NULL, "replace an existing token store", &force},
        {NULL, NULL, NULL, NULL},
    };
    runopts ro;
    if (runopts_parse(&ro, argc, argv, RUNOPT_JOB | RUNOPT_LOG, extra, USAGE)) return 0;
    beit_config c;
    runopts_load_config(&ro, &c);
    const char *src = runopts_source(&ro);
    if (c.task != BEIT_TASK_TOKENIZE)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: task is '%s'; beit tokenize runs jobs with task: tokenize", ro.config,
                        config_enum_name("task", c.task));
    if (ckpt_path) set_str(&c, "tokenize.checkpoint", ckpt_path);
    if (data_path) set_str(&c, "data.path", data_path);
    if (tokens_path) set_str(&c, "data.tokens", tokens_path);
    if (c.data.source != BEIT_DATA_STORE)
        beit_fatal_user(BEIT_EXIT_USAGE, "%s: beit tokenize reads a dataset store (data.source: store)", src);
    config_require(&c, "tokenize.checkpoint", src);
    config_require(&c, "data.path", src);
    config_require(&c, "data.tokens", src);
    output_refuse_existing("beit tokenize", c.data.tokens, force != NULL, NULL, MPI_COMM_WORLD);
    beit_dist d;
    dist_init(&d, MPI_COMM_WORLD);
    return tokenize_store(&c, src, &d);
}
