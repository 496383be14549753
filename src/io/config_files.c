/* config_files.c: a job against the files it names (`beit check`): the store opens and its
 * shapes agree with the model, and the token store and tokenizer checkpoint are readable.
 */
#include "beit/config.h"
#include "beit/error.h"
#include "beit/log.h"
#include "beit/store.h"

#include <unistd.h>

static void check_store(const beit_config *c, const char *src) {
    if (c->data.source == BEIT_DATA_SYNTHETIC) {
        beit_log("data: synthetic, %d samples per epoch", c->data.synthetic_size);
        return;
    }
    config_require(c, "data.path", src);
    beit_store *s = store_open(c->data.path, MPI_COMM_NULL);
    int64_t n = store_split_count(s, c->data.split); /* a missing split is reported by the store */
    beit_log("data: %s, split '%s' with %lld samples of %dx%dx%d, %d classes", c->data.path, c->data.split,
             (long long)n, store_height(s), store_width(s), store_channels(s), store_num_classes(s));
    if (c->data.subset > n)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: data.subset = %d but split '%s' of %s has only %lld samples", src,
                        c->data.subset, c->data.split, c->data.path, (long long)n);
    int need_eval = c->task == BEIT_TASK_DVAE || c->task == BEIT_TASK_FINETUNE || c->task == BEIT_TASK_PROBE ||
                    c->task == BEIT_TASK_EVAL;
    if (need_eval && !store_has_split(s, c->data.eval_split))
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: data.eval_split = '%s' but %s has no such split", src,
                        c->data.eval_split, c->data.path);
    int chans = store_channels(s), size = store_height(s);
    if (store_height(s) != store_width(s))
        beit_warn("%s: images are %dx%d, not square", c->data.path, store_height(s), store_width(s));
    /* the network that reads the images: the dVAE (dvae, tokenize) or the ViT (model) */
    int dvae = c->task == BEIT_TASK_DVAE || c->task == BEIT_TASK_TOKENIZE;
    const char *net = dvae ? "dvae" : "model", *size_key = dvae ? "image_size" : "img_size";
    int in_chans = dvae ? c->dvae.in_chans : c->model.in_chans;
    int img_size = dvae ? c->dvae.image_size : c->model.img_size;
    if (in_chans != chans)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: %s.in_chans = %d but the images of %s have %d channel%s", src, net,
                        in_chans, c->data.path, chans, chans == 1 ? "" : "s");
    if (img_size > size)
        beit_fatal_user(BEIT_EXIT_MISMATCH, "%s: %s.%s = %d is larger than the stored images (%d)", src, net, size_key,
                        img_size, size);
    store_close(s);
}

static void check_file(const char *key, const char *path, const char *src) {
    if (access(path, R_OK) != 0)
        beit_fatal_user(BEIT_EXIT_DATA, "%s: %s = '%s': no such file (or not readable)", src, key, path);
}

void config_check_files(const beit_config *c, const char *src) {
    check_store(c, src);
    if (c->task == BEIT_TASK_PRETRAIN && c->pretrain.target == BEIT_TARGET_TOKENS &&
        c->data.source == BEIT_DATA_STORE) {
        config_require(c, "data.tokens", src);
        check_file("data.tokens", c->data.tokens, src);
    }
    if ((c->task == BEIT_TASK_TOKENIZE || c->pretrain.target == BEIT_TARGET_TOKENS_ONLINE) &&
        c->tokenize.checkpoint[0])
        check_file("tokenize.checkpoint", c->tokenize.checkpoint, src);
}
