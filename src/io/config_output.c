/* config_output.c: the config as text: the resolved YAML (stored in checkpoints and run
 * directories, read back by config_load_string) and the key reference of `beit config --keys`.
 */
#include "config_internal.h"

#include "beit/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output -------------------------------------------------------------------------------- */

char *config_to_yaml(const beit_config *c) {
    sbuf b = {0};
    cfg_sb_add(&b, "# beit resolved config (every key)\n");
    for (int i = 0; i < cfg_nkeys; i++) {
        const key_spec *k = &cfg_keys[i];
        size_t sl = cfg_section_len(k->name);
        if (!sl) {
            size_t mark = b.n;
            cfg_sb_add(&b, "%s: ", k->name);
            if (!cfg_fmt_value(&b, c, k)) {
                b.n = mark;
                cfg_sb_add(&b, "# %s: (unset)", k->name);
            }
            cfg_sb_add(&b, "\n");
            continue;
        }
        /* a section is written whole where its first key appears in the table */
        int first = 1;
        for (int j = 0; j < i && first; j++)
            if (cfg_section_len(cfg_keys[j].name) == sl && !strncmp(cfg_keys[j].name, k->name, sl)) first = 0;
        if (!first) continue;
        cfg_sb_add(&b, "%.*s:\n", (int)sl, k->name);
        for (int j = i; j < cfg_nkeys; j++) {
            const key_spec *kj = &cfg_keys[j];
            if (cfg_section_len(kj->name) != sl || strncmp(kj->name, k->name, sl)) continue;
            size_t mark = b.n;
            cfg_sb_add(&b, "  %s: ", kj->name + sl + 1);
            if (!cfg_fmt_value(&b, c, kj)) {
                b.n = mark;
                cfg_sb_add(&b, "  # %s: (unset)", kj->name + sl + 1);
            }
            cfg_sb_add(&b, "\n");
        }
    }
    cfg_sb_str(&b);
    return b.s;
}

void config_print_help(FILE *f) {
    fprintf(f,
            "Job file keys. A job file is YAML: sections are nested mappings (optim: {lr: 1e-3})\n"
            "or dotted keys (optim.lr: 1e-3); `--set key=value` overrides any key. Unknown and\n"
            "duplicate keys are errors. Types: int, float (nan/inf refused), bool (true/false),\n"
            "string (\"\" for empty), enum (one of the listed words), int list ([4, 6, 8], 1 to %d\n"
            "entries). `data: synthetic` is short for data.source: synthetic.\n\n",
            BEIT_CONFIG_LIST_MAX);
    for (int i = 0; i < cfg_nkeys; i++) {
        const key_spec *k = &cfg_keys[i];
        sbuf d = {0}, r = {0};
        if (!k->def) cfg_sb_add(&d, "(required)");
        else if (k->type == T_STR) cfg_fmt_yaml_string(&d, k->def);
        else cfg_sb_add(&d, "%s", k->def);
        if (k->type == T_ENUM) {
            cfg_sb_add(&r, "one of: ");
            cfg_fmt_choices(&r, k->choices);
        } else if (k->lo.kind || k->hi.kind) {
            char buf[256];
            cfg_fmt_range(buf, sizeof buf, k, k->type == T_INTLIST ? "each" : "x");
            cfg_sb_add(&r, "%s", buf);
        }
        if (r.n) fprintf(f, "  %-26s %-8s default %-16s %s\n", k->name, cfg_type_name[k->type], cfg_sb_str(&d), r.s);
        else fprintf(f, "  %-26s %-8s default %s\n", k->name, cfg_type_name[k->type], cfg_sb_str(&d));
        fprintf(f, "      %s\n", k->doc);
        free(d.s);
        free(r.s);
    }
}
