/* config_load.c: the job file (YAML, read with libyaml's event API) -> beit_config.
 *
 * The event API (not the document API) is used because it shows what the document API hides:
 * duplicate keys, aliases and anchors, and the mark of every key and value. Each key's value
 * goes through the schema (config_schema.c) and the value parser (config_value.c); every error
 * names file:line:col.
 */
#include "config_internal.h"

#include "beit/config.h"
#include "beit/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- loading a file ------------------------------------------------------------------------ */

typedef struct {
    char *path;
    yaml_mark_t mark;
} seen_key;

#define LIVE_MAX 16 /* events and strings held at once: the nesting is at most two sections deep */

typedef struct {
    yaml_parser_t parser;
    int parser_live; /* parser initialised and not yet deleted */
    const char *file;
    beit_config *c;
    seen_key *seen;
    int nseen, cap;
    int stored; /* a config stored by beit itself (checkpoint, token store): retired keys are skipped */
    cfg_trap *trap; /* NULL: errors exit (config_load); else they longjmp (config_parse_buffer) */
    /* what the frames below hold, so that a trapped error frees it before it jumps */
    yaml_event_t *live[LIVE_MAX];
    int nlive;
    char *owned[LIVE_MAX];
    int nowned;
} loader;

/* Free everything the loader holds (a trapped error, or the end of a load). */
static void loader_release(void *ctx) {
    loader *L = ctx;
    for (int i = 0; i < L->nlive; i++) yaml_event_delete(L->live[i]);
    L->nlive = 0;
    for (int i = 0; i < L->nowned; i++) free(L->owned[i]);
    L->nowned = 0;
    if (L->parser_live) yaml_parser_delete(&L->parser);
    L->parser_live = 0;
    for (int i = 0; i < L->nseen; i++) free(L->seen[i].path);
    free(L->seen);
    L->seen = NULL;
    L->nseen = L->cap = 0;
}

/* s (heap, may be NULL) is freed by the loader if an error is trapped before disown_free */
static char *own(loader *L, char *s) {
    if (L->nowned == LIVE_MAX) beit_fatal(BEIT_EXIT_FAILURE, "config loader: too many strings held");
    L->owned[L->nowned++] = s;
    return s;
}

static void disown_free(loader *L, char *s) {
    for (int i = L->nowned - 1; i >= 0; i--)
        if (L->owned[i] == s) {
            L->owned[i] = L->owned[--L->nowned];
            break;
        }
    free(s);
}

static BEIT_NORETURN void fail_mark(loader *L, yaml_mark_t m, const char *fmt, ...) BEIT_PRINTF(3, 4);
static BEIT_NORETURN void fail_mark(loader *L, yaml_mark_t m, const char *fmt, ...) {
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L->trap) beit_fatal_user(BEIT_EXIT_USAGE, "%s:%zu:%zu: %s", L->file, m.line + 1, m.column + 1, msg);
    char full[4096];
    snprintf(full, sizeof full, "%s:%zu:%zu: %s", L->file, m.line + 1, m.column + 1, msg);
    cfg_trap_fail(L->trap, full);
}

static BEIT_NORETURN void yaml_error(loader *L) {
    const yaml_parser_t *p = &L->parser;
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->error == YAML_MEMORY_ERROR) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: out of memory");
    if (p->error == YAML_READER_ERROR) {
        if (!L->trap)
            beit_fatal_user(BEIT_EXIT_USAGE, "%s: invalid YAML: %s (at byte %zu; job files are UTF-8 text)",
                            L->file, problem, p->problem_offset);
        char full[4096];
        snprintf(full, sizeof full, "%s: invalid YAML: %s (at byte %zu; job files are UTF-8 text)", L->file,
                 problem, p->problem_offset);
        cfg_trap_fail(L->trap, full);
    }
    if (p->context)
        fail_mark(L, p->problem_mark, "invalid YAML: %s (%s at line %zu, column %zu)", problem,
                  p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    fail_mark(L, p->problem_mark, "invalid YAML: %s", problem);
}

/* The next event; it is held (freed by a trapped error) until drop_event. */
static void next_event(loader *L, yaml_event_t *ev) {
    if (!yaml_parser_parse(&L->parser, ev)) yaml_error(L);
    if (L->nlive == LIVE_MAX) beit_fatal(BEIT_EXIT_FAILURE, "config loader: too many events held");
    L->live[L->nlive++] = ev;
}

static void drop_event(loader *L, yaml_event_t *ev) {
    for (int i = L->nlive - 1; i >= 0; i--)
        if (L->live[i] == ev) {
            L->live[i] = L->live[--L->nlive];
            break;
        }
    yaml_event_delete(ev);
}

static const char *event_what(const yaml_event_t *ev) {
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a sequence";
    case YAML_SCALAR_EVENT: return "a scalar";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "something else";
    }
}

/* Anchors, aliases and explicit tags are refused: job files are plain data, and a value
 * that means the same as another should be written twice. */
static void check_node(loader *L, const yaml_event_t *ev, const char *name) {
    const yaml_char_t *anchor = NULL, *tag = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        fail_mark(L, ev->start_mark, "%s: aliases (*%s) are not supported in job files; write the value out",
                  name, (const char *)ev->data.alias.anchor);
    case YAML_SCALAR_EVENT: anchor = ev->data.scalar.anchor; tag = ev->data.scalar.tag; break;
    case YAML_SEQUENCE_START_EVENT: anchor = ev->data.sequence_start.anchor; tag = ev->data.sequence_start.tag; break;
    case YAML_MAPPING_START_EVENT: anchor = ev->data.mapping_start.anchor; tag = ev->data.mapping_start.tag; break;
    default: break;
    }
    if (anchor)
        fail_mark(L, ev->start_mark, "%s: anchors (&%s) are not supported in job files", name,
                  (const char *)anchor);
    if (tag)
        fail_mark(L, ev->start_mark, "%s: explicit tags (%s) are not supported in job files; write "
                  "the plain value", name, (const char *)tag);
}

/* Record that `path` was given at `m`; a second time is an error naming the first. */
static void mark_seen(loader *L, const char *path, yaml_mark_t m, const char *how) {
    const key_spec *k = cfg_find_key(path);
    if (!k && cfg_section_scalar_key(path)) k = cfg_find_key(cfg_section_scalar_key(path));
    if (k) cfg_mark_given(L->c, k);
    for (int i = 0; i < L->nseen; i++)
        if (!strcmp(L->seen[i].path, path))
            fail_mark(L, m, "duplicate key '%s'%s (first given at line %zu, column %zu)", path, how,
                      L->seen[i].mark.line + 1, L->seen[i].mark.column + 1);
    if (L->nseen == L->cap) {
        L->cap = 2 * L->cap + 16;
        L->seen = xrealloc(L->seen, (size_t)L->cap * sizeof *L->seen);
    }
    L->seen[L->nseen].path = xstrdup(path);
    L->seen[L->nseen].mark = m;
    L->nseen++;
}

static void load_mapping(loader *L, const char *prefix);

static void set_from_scalar_event(loader *L, const key_spec *k, const yaml_event_t *ev) {
    char err[ERRN];
    if (cfg_set_scalar(L->c, k, (const char *)ev->data.scalar.value, ev->data.scalar.length,
                   ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE, 0, err))
        fail_mark(L, ev->start_mark, "%s", err);
}

static void load_list(loader *L, const key_spec *k, const yaml_event_t *start) {
    int v[BEIT_CONFIG_LIST_MAX], n = 0;
    char err[ERRN];
    for (;;) {
        yaml_event_t ev;
        next_event(L, &ev);
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            drop_event(L, &ev);
            break;
        }
        char name[96];
        snprintf(name, sizeof name, "%s[%d]", k->name, n);
        check_node(L, &ev, name);
        if (ev.type != YAML_SCALAR_EVENT)
            fail_mark(L, ev.start_mark, "%s: expected an integer, got %s", name, event_what(&ev));
        if (n == BEIT_CONFIG_LIST_MAX)
            fail_mark(L, ev.start_mark, "%s: expected at most %d entries", k->name, BEIT_CONFIG_LIST_MAX);
        if (cfg_parse_int_value(k, name, (const char *)ev.data.scalar.value,
                            ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE, &v[n], err))
            fail_mark(L, ev.start_mark, "%s", err);
        n++;
        drop_event(L, &ev);
    }
    if (cfg_check_list_count(k, n, err)) fail_mark(L, start->start_mark, "%s", err);
    cfg_store_list(L->c, k, v, n);
}

static const char *type_expect(const key_spec *k) {
    switch (k->type) {
    case T_INT: return "an integer";
    case T_FLOAT: return "a number";
    case T_BOOL: return "true or false";
    case T_STR: return "a string";
    case T_ENUM: return "one of the choices";
    case T_INTLIST: return "a list of integers";
    }
    return "?";
}

/* The value of key `path`, whose key scalar started at `km`. */
static void load_value(loader *L, const char *path, yaml_mark_t km) {
    const key_spec *k = cfg_find_key(path);
    int section = !k && cfg_is_section(path);
    if (!k && !section) {
        char *where = own(L, xasprintf("%s:%zu:%zu", L->file, km.line + 1, km.column + 1));
        for (int i = 0; i < cfg_nretired; i++) {
            if (strcmp(path, cfg_retired[i].name) != 0) continue;
            if (!L->stored) cfg_fail_where(L->trap, where, "key '%s' was replaced by %s", path, cfg_retired[i].replacement);
            yaml_event_t ev; /* skip its value (a scalar or a flat sequence) */
            next_event(L, &ev);
            int depth = ev.type == YAML_SEQUENCE_START_EVENT;
            drop_event(L, &ev);
            while (depth > 0) {
                next_event(L, &ev);
                depth -= ev.type == YAML_SEQUENCE_END_EVENT;
                drop_event(L, &ev);
            }
            disown_free(L, where);
            return;
        }
        cfg_unknown_key(L->trap, where, path);
    }
    mark_seen(L, path, km, "");
    yaml_event_t ev;
    next_event(L, &ev);
    check_node(L, &ev, path);
    if (k) {
        if (ev.type == YAML_SCALAR_EVENT) set_from_scalar_event(L, k, &ev);
        else if (ev.type == YAML_SEQUENCE_START_EVENT && k->type == T_INTLIST) load_list(L, k, &ev);
        else {
            sbuf b = {0};
            if (k->type == T_ENUM) {
                cfg_sb_add(&b, " (");
                cfg_fmt_choices(&b, k->choices);
                cfg_sb_add(&b, ")");
            }
            cfg_sb_str(&b); /* allocated now, so that own() holds it */
            own(L, b.s);
            fail_mark(L, ev.start_mark, "%s: expected %s%s, got %s", path, type_expect(k), cfg_sb_str(&b),
                      event_what(&ev));
        }
    } else if (ev.type == YAML_MAPPING_START_EVENT) {
        load_mapping(L, path);
    } else {
        const char *sk = cfg_section_scalar_key(path);
        if (ev.type == YAML_SCALAR_EVENT && sk) {
            char *how = own(L, xasprintf(" (given as '%s: %s')", path, (const char *)ev.data.scalar.value));
            mark_seen(L, sk, km, how);
            disown_free(L, how);
            set_from_scalar_event(L, cfg_find_key(sk), &ev);
        } else {
            sbuf b = {0};
            cfg_section_keys(&b, path);
            cfg_sb_str(&b); /* allocated now, so that own() holds it */
            own(L, b.s);
            if (ev.type == YAML_SCALAR_EVENT && !ev.data.scalar.length)
                fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got an "
                          "empty value", path, cfg_sb_str(&b));
            if (ev.type == YAML_SCALAR_EVENT)
                fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got '%.200s'",
                          path, cfg_sb_str(&b), (const char *)ev.data.scalar.value);
            fail_mark(L, ev.start_mark, "%s: expected a mapping (a section with keys %s), got %s", path,
                      cfg_sb_str(&b), event_what(&ev));
        }
    }
    drop_event(L, &ev);
}

/* After a MAPPING-START: keys of the section `prefix` (NULL at the top level). */
static void load_mapping(loader *L, const char *prefix) {
    for (;;) {
        yaml_event_t kev;
        next_event(L, &kev);
        if (kev.type == YAML_MAPPING_END_EVENT) {
            drop_event(L, &kev);
            return;
        }
        const char *ctx = prefix ? prefix : "top level";
        check_node(L, &kev, ctx);
        if (kev.type != YAML_SCALAR_EVENT)
            fail_mark(L, kev.start_mark, "%s: expected a key name, got %s as a key", ctx, event_what(&kev));
        const char *key = (const char *)kev.data.scalar.value;
        if (!*key || strlen(key) != kev.data.scalar.length)
            fail_mark(L, kev.start_mark, "%s: expected a key name, got an empty key", ctx);
        char *path = own(L, prefix ? xasprintf("%s.%s", prefix, key) : xstrdup(key));
        yaml_mark_t km = kev.start_mark;
        drop_event(L, &kev);
        load_value(L, path, km);
        disown_free(L, path);
    }
}

/* The whole file, NUL-terminated; n = its length. */
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) beit_fatal_user(BEIT_EXIT_USAGE, "%s: cannot open the job file: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) buf = xrealloc(buf, cap *= 2);
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) beit_fatal_user(BEIT_EXIT_USAGE, "%s: cannot read the job file: %s", path, strerror(errno));
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

static void load_text(beit_config *c, const char *path, const unsigned char *text, size_t len, int stored,
                      cfg_trap *trap);

void config_load(beit_config *c, const char *path) {
    size_t len = 0;
    unsigned char *text = read_file(path, &len);
    load_text(c, path, text, len, 0, NULL);
    free(text);
}

void config_load_string(beit_config *c, const char *text, const char *name) {
    load_text(c, name, (const unsigned char *)text, strlen(text), 1, NULL);
}

/* A user error longjmps back here (setjmp in this frame, which touches no local after it),
 * after the loader has freed what it held: events, strings, the parser. */
int config_parse_buffer(beit_config *c, const char *text, size_t n, const char *name, int stored, char *err,
                        size_t errlen) {
    cfg_trap t;
    t.err = err;
    t.errlen = errlen;
    t.release = NULL;
    t.ctx = NULL;
    if (setjmp(t.jb)) return -1;
    load_text(c, name, (const unsigned char *)text, n, stored, &t);
    return 0;
}

static void load_text(beit_config *c, const char *path, const unsigned char *text, size_t len, int stored,
                      cfg_trap *trap) {
    config_defaults(c);
    loader L;
    memset(&L, 0, sizeof L);
    L.file = path;
    L.c = c;
    L.stored = stored;
    L.trap = trap;
    if (trap) {
        trap->release = loader_release;
        trap->ctx = &L;
    }
    yaml_event_t ev;

    /* Pass 1: syntax only, so a malformed file is reported as such even when a value before
     * the syntax error is also wrong (libyaml streams events up to the error). */
    if (!yaml_parser_initialize(&L.parser)) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: cannot initialise a parser");
    L.parser_live = 1;
    yaml_parser_set_input_string(&L.parser, text, len);
    for (int done = 0; !done;) {
        next_event(&L, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        drop_event(&L, &ev);
    }
    yaml_parser_delete(&L.parser);
    L.parser_live = 0;

    /* Pass 2: the keys and values */
    if (!yaml_parser_initialize(&L.parser)) beit_fatal(BEIT_EXIT_FAILURE, "libyaml: cannot initialise a parser");
    L.parser_live = 1;
    yaml_parser_set_input_string(&L.parser, text, len);
    next_event(&L, &ev); /* STREAM-START */
    drop_event(&L, &ev);
    next_event(&L, &ev);
    if (ev.type == YAML_DOCUMENT_START_EVENT) { /* else STREAM-END: an empty file */
        drop_event(&L, &ev);
        next_event(&L, &ev);
        check_node(&L, &ev, "top level");
        if (ev.type == YAML_MAPPING_START_EVENT) {
            load_mapping(&L, NULL);
        } else if (!(ev.type == YAML_SCALAR_EVENT && ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                     cfg_is_yaml_null((const char *)ev.data.scalar.value))) {
            fail_mark(&L, ev.start_mark, "expected a mapping of keys at the top level (like 'task: "
                      "pretrain'), got %s", event_what(&ev));
        }
        drop_event(&L, &ev);
        next_event(&L, &ev); /* DOCUMENT-END */
        drop_event(&L, &ev);
        next_event(&L, &ev);
        if (ev.type == YAML_DOCUMENT_START_EVENT)
            fail_mark(&L, ev.start_mark, "a job file holds one YAML document; a second one starts here");
    }
    drop_event(&L, &ev);
    if (trap) trap->release = NULL; /* L goes out of scope */
    loader_release(&L);
}
