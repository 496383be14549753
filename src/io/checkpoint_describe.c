/* `beit data info` of a checkpoint (checkpoint.h ckpt_describe): what it is, what it holds
 * and, with --verify, every tensor loaded and checked as a resume would load it. */
#include "beit/checkpoint.h"

#include "beit/error.h"
#include "beit/h5attr.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

/* the keys of the resolved config worth a line: what model, what data, what schedule */
static const char *const SUMMARY_KEYS[] = {"task",          "data.path",      "model.arch",      "model.img_size",
                                           "model.patch_size", "model.in_chans", "model.embed_dim", "model.depth",
                                           "model.num_heads", "model.vocab_size", "dvae.image_size", "dvae.vocab_size",
                                           "train.global_batch", "train.epochs", "dalle.group_count",
                                           "dalle.n_hid", "dalle.n_blk_per_group", "dalle.in_chans",
                                           "dalle.vocab_size", "dalle.image_size", NULL};

/* 1 when key belongs to another model than the checkpoint's kind (its defaults say nothing) */
static int other_model(const char *key, const char *kind) {
    const int dvae = !strcmp(kind, "dvae"), dalle = !strcmp(kind, "dalle-encoder");
    if (!strncmp(key, "dalle.", 6)) return !dalle;
    if (!strncmp(key, "dvae.", 5)) return !dvae;
    if (!strncmp(key, "model.", 6)) return dvae || dalle;
    return dalle && (!strncmp(key, "train.", 6) || !strncmp(key, "data.", 5)); /* a converted file: no run */
}

/* "section.key = value" of the summary keys found in the YAML text (the resolved config is
 * block style: top-level sections, two-space-indented keys) */
static void print_config_summary(FILE *f, const char *yaml, const char *kind) {
    char section[64] = "", line[512];
    int lines = 0, shown = 0;
    for (const char *p = yaml; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        p = e ? e + 1 : NULL;
        lines++;
        if (!line[0] || line[0] == '#') continue;
        int indent = line[0] == ' ';
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = '\0';
        const char *key = line + strspn(line, " "), *val = colon + 1 + strspn(colon + 1, " ");
        if (!indent && !*val) {
            snprintf(section, sizeof section, "%s", key);
            continue;
        }
        char full[160];
        snprintf(full, sizeof full, "%s%s%s", indent ? section : "", indent ? "." : "", key);
        for (int i = 0; SUMMARY_KEYS[i]; i++)
            if (!strcmp(full, SUMMARY_KEYS[i]) && !other_model(full, kind)) {
                fprintf(f, "%s%s = %s", !shown ? "  config       " : shown % 4 ? ", " : ",\n               ", full, val);
                shown++;
                break;
            }
    }
    fprintf(f, "%s(%d lines of resolved YAML in attribute 'config')\n", shown ? "\n               " : "  config       ",
            lines);
}

typedef struct {
    param_table *pt;
    hid_t f;
    const char *file;
} table_ctx;

static void add_from_file(const table_ctx *c, const char *name) {
    char path[PARAM_NAME_MAX + 16];
    snprintf(path, sizeof path, "params/%s", name);
    hid_t ds = H5Lexists(c->f, path, H5P_DEFAULT) > 0 ? H5Dopen2(c->f, path, H5P_DEFAULT) : -1;
    if (ds < 0)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: tensor %s is listed in /optim but /params has no such dataset",
                        c->file, name);
    hid_t sp = H5Dget_space(ds);
    hsize_t d[PARAM_MAX_DIMS] = {0};
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 0 || nd > PARAM_MAX_DIMS)
        beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: tensor %s has %d dimensions (at most %d)", c->file, path, nd,
                        PARAM_MAX_DIMS);
    H5Sget_simple_extent_dims(sp, d, NULL);
    int64_t shape[PARAM_MAX_DIMS];
    for (int k = 0; k < nd; k++) shape[k] = (int64_t)d[k];
    params_add(c->pt, name, nd, shape, 0, -1);
    H5Sclose(sp);
    H5Dclose(ds);
}

static herr_t add_cb(hid_t g, const char *name, const H5L_info_t *info, void *c) {
    (void)g;
    (void)info;
    add_from_file(c, name);
    return 0;
}

/* The file's own table: the order of /optim's 'tensors' when it has one (the flat state is
 * laid out in it), else /params in name order. */
static void table_of_file(param_table *pt, hid_t f, const char *path) {
    params_init(pt);
    table_ctx c = {pt, f, path};
    char *layout = NULL;
    if (H5Lexists(f, "optim", H5P_DEFAULT) > 0) {
        hid_t go = H5Gopen2(f, "optim", H5P_DEFAULT);
        if (go >= 0 && H5Aexists(go, "tensors") > 0) layout = h5a_get_str(go, "tensors");
        if (go >= 0) H5Gclose(go);
    }
    if (layout) {
        for (char *save = NULL, *l = strtok_r(layout, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char name[PARAM_NAME_MAX];
            if (sscanf(l, "%95s", name) == 1) add_from_file(&c, name);
        }
        free(layout);
    } else if (H5Lexists(f, "params", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
        hsize_t idx = 0;
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, add_cb, &c);
        H5Gclose(g);
    }
    if (pt->n == 0) beit_fatal_user(BEIT_EXIT_CHECKPOINT, "%s: no tensors under /params", path);
    params_alloc(pt);
}

static void shape_str(const param_info *p, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < p->ndim && o < n; k++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", k ? "," : "", (long long)p->shape[k]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

int ckpt_describe(FILE *f, const char *path, int verify) {
    ckpt_reader r;
    ckpt_open(&r, path); /* validates: errors exit 4 */
    hid_t h = (hid_t)r.file;
    char *created = h5a_get_str(h, "created_by"), *sum = h5a_get_str(h, "params_checksum");
    param_table pt;
    table_of_file(&pt, h, path);
    fprintf(f, "%s: beit checkpoint (format %s, version %d)\n", path, CKPT_FORMAT, r.version);
    fprintf(f, "  kind         %s\n  step         %lld\n  seed         %llu\n  ranks        %d (of the run that "
               "wrote it)\n", r.kind, (long long)r.step, (unsigned long long)r.seed, r.nranks);
    fprintf(f, "  created_by   %s\n", created ? created : "(none)");
    fprintf(f, "  tensors      %d, %zu floats; params_checksum %s\n", pt.n, pt.total, sum ? sum : "(none)");
    fprintf(f, "  optimizer    %s\n", r.has_optim ? "AdamW exp_avg and exp_avg_sq, flat over the tensors"
                                                   : "none (weights only)");
    if (r.version < 3) fprintf(f, "  checksums    none (format %d): the tensors cannot be verified\n", r.version);
    if (r.norm.chans > 0) {
        fprintf(f, "  input norm   mean");
        for (int k = 0; k < r.norm.chans; k++) fprintf(f, "%s%.6g", k ? "," : " ", r.norm.mean[k]);
        fprintf(f, " std");
        for (int k = 0; k < r.norm.chans; k++) fprintf(f, "%s%.6g", k ? "," : " ", r.norm.std[k]);
        fprintf(f, " (pixels in [0, 1]; used by every command that feeds this model)\n");
    } else if (strcmp(r.kind, "dvae") != 0) { /* the dVAE maps [0, 1] pixels itself */
        fprintf(f, "  input norm   none recorded (the data store's mean/std apply)\n");
    }
    print_config_summary(f, r.config_yaml, r.kind);
    fprintf(f, "\ntensors (in the optimizer's order when the file has its state)\n");
    for (int i = 0; i < pt.n; i++) {
        char shp[96], p[PARAM_NAME_MAX + 16];
        shape_str(&pt.t[i], shp, sizeof shp);
        snprintf(p, sizeof p, "params/%s", pt.t[i].name);
        unsigned long long c = 0;
        int has = 0;
        if (H5Aexists_by_name(h, p, "checksum", H5P_DEFAULT) > 0) {
            hid_t a = H5Aopen_by_name(h, p, "checksum", H5P_DEFAULT, H5P_DEFAULT);
            has = a >= 0 && H5Aread(a, H5T_NATIVE_ULLONG, &c) >= 0;
            if (a >= 0) H5Aclose(a);
        }
        if (has) fprintf(f, "  %-48s %-18s checksum %016llx\n", pt.t[i].name, shp, c);
        else fprintf(f, "  %-48s %s\n", pt.t[i].name, shp);
    }
    fflush(f);
    if (verify) {
        ckpt_load_params(&r, &pt); /* every tensor: finite, its checksum (exit 4 naming it) */
        if (r.has_optim) {
            float *m = xalloc_floats(pt.total), *v = xalloc_floats(pt.total);
            ckpt_load_optim(&r, &pt, m, v);
            free(m);
            free(v);
        }
        fprintf(f, "\nverified: %d tensors%s read whole, every value finite%s\n", pt.n,
                r.has_optim ? " and their AdamW moments" : "",
                r.version >= 3 ? ", every checksum matches" : " (no checksums in this format)");
    }
    free(created);
    free(sum);
    params_free(&pt);
    ckpt_close(&r);
    return 0;
}
