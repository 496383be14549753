/* config_set.c: `--set key=value` overrides, and the message for a key name the schema does not
 * know (also used by the loader): a "did you mean" suggestion, or the keys of the section.
 */
#include "config_internal.h"

#include "beit/config.h"
#include "beit/error.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- key names the schema does not know ---------------------------------------------------- */

BEIT_NORETURN void cfg_trap_fail(cfg_trap *t, const char *msg) {
    if (t->err && t->errlen) snprintf(t->err, t->errlen, "%s", msg);
    if (t->release) t->release(t->ctx);
    longjmp(t->jb, 1);
}

BEIT_NORETURN void cfg_fail_where(cfg_trap *t, const char *where, const char *fmt, ...) {
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!t) beit_fatal_user(BEIT_EXIT_USAGE, "%s: %s", where, msg);
    char full[4096];
    snprintf(full, sizeof full, "%s: %s", where, msg);
    cfg_trap_fail(t, full);
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 128 || m > 128) return 1 << 20;
    int d[129][129];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* Every name a user could mean: keys and sections, each once, in schema order. Section names
 * are copied into secs. */
static int all_names(const char *names[], char secs[][32]) {
    int n = 0;
    for (int i = 0; i < cfg_nkeys; i++) {
        size_t sl = cfg_section_len(cfg_keys[i].name);
        if (sl) {
            int dup = 0;
            for (int j = 0; j < i; j++)
                if (cfg_section_len(cfg_keys[j].name) == sl && !strncmp(cfg_keys[j].name, cfg_keys[i].name, sl)) dup = 1;
            if (!dup && sl < 32) {
                memcpy(secs[i], cfg_keys[i].name, sl);
                secs[i][sl] = 0;
                names[n++] = secs[i];
            }
        }
        names[n++] = cfg_keys[i].name;
    }
    return n;
}

BEIT_NORETURN void cfg_unknown_key(cfg_trap *t, const char *where, const char *name) {
    char list[2048]; /* the suggestions or a section's keys, copied so that the sbuf is freed */
    const char *names[2 * BEIT_CONFIG_MAX_KEYS], *sugg[3];
    char secs[BEIT_CONFIG_MAX_KEYS][32];
    int nn = all_names(names, secs), ns = 0, best = 1 << 20;
    size_t len = strlen(name);
    for (int i = 0; i < nn; i++) {
        int d = edit_distance(name, names[i]);
        if (d < best) { best = d; ns = 0; }
        if (d == best && ns < 3) sugg[ns++] = names[i];
    }
    if (!(best <= 2 || (size_t)best * 5 <= len)) ns = 0;
    /* the right key name in the wrong section: "train.lr", or "epochs" at the top level */
    const char *last = strrchr(name, '.');
    last = last ? last + 1 : name;
    for (int i = 0; i < cfg_nkeys && !ns; i++) {
        const char *kl = strrchr(cfg_keys[i].name, '.');
        if (kl && !strcmp(kl + 1, last) && *last) {
            for (int j = i; j < cfg_nkeys && ns < 3; j++) {
                const char *jl = strrchr(cfg_keys[j].name, '.');
                if (jl && !strcmp(jl + 1, last)) sugg[ns++] = cfg_keys[j].name;
            }
        }
    }
    /* a longer or shorter spelling of a section: "optimizer" -> "optim" */
    for (int i = 0; i < nn && !ns; i++) {
        size_t a = strlen(names[i]), lu = strcspn(name, ".");
        if (strchr(names[i], '.') || a < 3 || lu < 3 || a == lu) continue; /* a == lu: known section */
        if (!strncmp(name, names[i], a < lu ? a : lu) && cfg_is_section(names[i])) sugg[ns++] = names[i];
    }
    if (ns) {
        sbuf b = {0};
        for (int i = 0; i < ns; i++)
            cfg_sb_add(&b, "%s'%s'", i == 0 ? "" : i == ns - 1 ? " or " : ", ", sugg[i]);
        snprintf(list, sizeof list, "%s", cfg_sb_str(&b));
        free(b.s);
        cfg_fail_where(t, where, "unknown key '%s' (did you mean %s?)", name, list);
    }
    /* in a known section: list its keys */
    size_t sl = cfg_section_len(name);
    if (sl && sl < 64) {
        char sec[64];
        memcpy(sec, name, sl);
        sec[sl] = 0;
        if (cfg_is_section(sec)) {
            sbuf b = {0};
            for (int i = 0; i < cfg_nkeys; i++)
                if (cfg_section_len(cfg_keys[i].name) == sl && !strncmp(cfg_keys[i].name, sec, sl))
                    cfg_sb_add(&b, "%s%s", b.n ? ", " : "", cfg_keys[i].name + sl + 1);
            snprintf(list, sizeof list, "%s", cfg_sb_str(&b));
            free(b.s);
            cfg_fail_where(t, where, "unknown key '%s' (the keys of '%s' are: %s)", name, sec, list);
        }
    }
    cfg_fail_where(t, where, "unknown key '%s' (`beit config --help` lists every key)", name);
}

/* "the keys of optim: lr, min_lr, ..." for messages about a section */
void cfg_section_keys(sbuf *b, const char *sec) {
    size_t sl = strlen(sec);
    for (int i = 0; i < cfg_nkeys; i++)
        if (cfg_section_len(cfg_keys[i].name) == sl && !strncmp(cfg_keys[i].name, sec, sl))
            cfg_sb_add(b, "%s%s", b->n ? ", " : "", cfg_keys[i].name + sl + 1);
}

/* ---- --set --------------------------------------------------------------------------------- */

/* What one --set holds on the heap, for the trap's release. */
typedef struct {
    char *where, *key, *val, *list;
} set_job;

static void set_release(void *ctx) {
    set_job *j = ctx;
    free(j->where);
    free(j->key);
    free(j->val);
    free(j->list);
    memset(j, 0, sizeof *j);
}

/* config_set and config_try_set; t NULL: errors exit. */
static void set_one(beit_config *c, const char *assignment, cfg_trap *t, set_job *j) {
    j->where = xasprintf("--set '%s'", assignment);
    const char *where = j->where;
    const char *eq = strchr(assignment, '=');
    if (!eq) cfg_fail_where(t, where, "expected key=value, e.g. --set optim.lr=1e-3");
    const char *a = assignment, *b = eq;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    char *key = j->key = xmalloc((size_t)(b - a) + 1);
    memcpy(key, a, (size_t)(b - a));
    key[b - a] = 0;
    if (!*key) cfg_fail_where(t, where, "expected key=value, got an empty key");

    const key_spec *k = cfg_find_key(key);
    if (!k) {
        const char *sk = cfg_section_scalar_key(key);
        if (sk) k = cfg_find_key(sk);
        else if (cfg_is_section(key)) {
            sbuf s = {0};
            cfg_section_keys(&s, key);
            j->list = (char *)cfg_sb_str(&s); /* freed by set_release */
            cfg_fail_where(t, where, "'%s' is a section; set one of its keys (%s) as %s.<key>=value", key,
                       cfg_sb_str(&s), key);
        } else cfg_unknown_key(t, where, key);
    }
    /* strings are literal; other values are trimmed */
    char *val = j->val = xstrdup(eq + 1);
    if (k->type != T_STR) {
        char *p = val;
        while (isspace((unsigned char)*p)) p++;
        memmove(val, p, strlen(p) + 1);
        size_t n = strlen(val);
        while (n && isspace((unsigned char)val[n - 1])) val[--n] = 0;
    }
    char err[ERRN];
    if (cfg_set_scalar(c, k, val, strlen(val), 1, 1, err)) cfg_fail_where(t, where, "%s", err);
    cfg_mark_given(c, k);
}

void config_set(beit_config *c, const char *assignment) {
    set_job j = {0};
    set_one(c, assignment, NULL, &j);
    set_release(&j);
}

int config_try_set(beit_config *c, const char *assignment, char *err, size_t errlen) {
    set_job j = {0};
    cfg_trap t;
    t.err = err;
    t.errlen = errlen;
    t.release = set_release;
    t.ctx = &j;
    if (setjmp(t.jb)) return -1;
    set_one(c, assignment, &t, &j);
    set_release(&j);
    return 0;
}
