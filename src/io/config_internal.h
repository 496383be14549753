/* config_internal.h: what the parts of the job-file reader share (private to src/io/config_*.c).
 *
 *   config_schema.c  the key table (names, types, defaults, ranges, docs), retired keys, section
 *                    scalars; lookups; defaults. Adding a key = one row there + one field in
 *                    beit_config (include/beit/config.h).
 *   config_value.c   one value: text -> typed field (syntax, range) and field -> YAML text
 *   config_load.c    the YAML loader (libyaml events, duplicates, file:line:col marks)
 *   config_set.c     --set overrides, and the message for a key name the schema lacks
 *   config_check.c   required keys and the cross-field rules (config_validate)
 *   config_output.c  the resolved YAML and `beit config --keys`
 *   config_files.c   the job against the files it names (`beit check`; public API only)
 */
#ifndef BEIT_CONFIG_INTERNAL_H
#define BEIT_CONFIG_INTERNAL_H

#include "beit/config.h"
#include "beit/error.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- the schema (config_schema.c) ---------------------------------------------------------- */

typedef enum { T_INT, T_FLOAT, T_BOOL, T_STR, T_ENUM, T_INTLIST } key_type;
extern const char *const cfg_type_name[]; /* "int", "float", ... by key_type */

typedef struct {
    int kind; /* 0 none, 1 inclusive, 2 exclusive */
    double v;
} bound;

typedef struct {
    const char *name;            /* dotted path: "optim.lr" (at most one dot) */
    key_type type;
    size_t off, size;            /* field in beit_config */
    const char *def;             /* default as job-file text; NULL = required (string/enum) */
    bound lo, hi;                /* int, float, and each int-list entry */
    const char *const *choices;  /* enum words, NULL-terminated, in the C enum's order */
    const char *doc;
} key_spec;

extern const key_spec cfg_keys[]; /* every key, in the order of help and the resolved YAML */
extern const int cfg_nkeys;       /* <= BEIT_CONFIG_MAX_KEYS (checked by config_defaults) */

/* Keys an earlier version wrote into the configs it stored (name, what replaced it). */
typedef struct {
    const char *name, *replacement;
} retired_key;
extern const retired_key cfg_retired[];
extern const int cfg_nretired;

#define ERRN 2048 /* messages about one value */

const key_spec *cfg_find_key(const char *name); /* NULL if no such key */
/* "optim" is a section iff some key starts with "optim." */
int cfg_is_section(const char *name);
/* The key a section given as a scalar sets ("data" -> "data.source"), or NULL. */
const char *cfg_section_scalar_key(const char *section);
/* length of the section part of a key name ("optim.lr" -> 5), 0 for a top-level key */
size_t cfg_section_len(const char *name);

static inline void *cfg_field(beit_config *c, const key_spec *k) { return (char *)c + k->off; }
static inline const void *cfg_cfield(const beit_config *c, const key_spec *k) {
    return (const char *)c + k->off;
}
/* Record that key k was set by the job text or a --set (config_key_given). */
static inline void cfg_mark_given(beit_config *c, const key_spec *k) { c->given[k - cfg_keys] = 1; }

/* ---- growable string (config_value.c) ------------------------------------------------------ */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

void cfg_sb_add(sbuf *b, const char *fmt, ...) BEIT_PRINTF(2, 3);
const char *cfg_sb_str(sbuf *b); /* the text so far ("" when empty); free(b->s) */

/* ---- values (config_value.c) --------------------------------------------------------------- */

/* "0 <= optim.lr <= 10", "optim.lr >= 0", "0 < x < 1"; "" for a key without a range */
void cfg_fmt_range(char *buf, size_t n, const key_spec *k, const char *name);
void cfg_fmt_choices(sbuf *b, const char *const *choices); /* "a, b, c" */
/* YAML double-quoted string: always quoted, so "", "true", "123" stay strings. */
void cfg_fmt_yaml_string(sbuf *b, const char *s);
int cfg_choice_count(const char *const *choices);
/* The value of key k in c as YAML text; returns 0 if an enum is unset (-1). */
int cfg_fmt_value(sbuf *b, const beit_config *c, const key_spec *k);

/* YAML's plain spellings of null (an empty value too). */
int cfg_is_yaml_null(const char *s);
/* An integer for key k (or entry `name` of an int list): syntax, int range, schema range.
 * plain: an unquoted scalar. 0 ok; -1 with a message in err[ERRN]. */
int cfg_parse_int_value(const key_spec *k, const char *name, const char *text, int plain, int *out,
                        char *err);
/* An int list of n entries: 1..BEIT_CONFIG_LIST_MAX, else -1 with a message in err[ERRN]. */
int cfg_check_list_count(const key_spec *k, int n, char *err);
/* Write a list (already checked) into key k. */
void cfg_store_list(beit_config *c, const key_spec *k, const int *v, int n);
/* One scalar into key k. plain: an unquoted YAML scalar (always true for --set); literal:
 * the text comes from the command line or a default, so "" is an empty string, not null.
 * 0 ok; -1 with a message in err[ERRN] (c unchanged for a scalar, perhaps not for a list). */
int cfg_set_scalar(beit_config *c, const key_spec *k, const char *text, size_t len, int plain,
                   int literal, char *err);

/* ---- errors returned instead of exiting (config_set.c) ------------------------------------- */

/* When a caller wants a user error back (config_parse_buffer, config_try_set), it arms a trap:
 * the error's message goes to err, release(ctx) frees what the parse holds (its events and
 * strings, whose frames are still live), and control longjmps to jb. A NULL trap: the error
 * exits with BEIT_EXIT_USAGE (beit_fatal_user), as the commands expect. */
typedef struct {
    jmp_buf jb;
    char *err;
    size_t errlen;
    void (*release)(void *ctx); /* may be NULL */
    void *ctx;
} cfg_trap;

/* The trapped end of a user error: message to t->err, release, longjmp. */
BEIT_NORETURN void cfg_trap_fail(cfg_trap *t, const char *msg);

/* ---- key names the user got wrong (config_set.c) ------------------------------------------- */

/* beit_fatal_user(BEIT_EXIT_USAGE, "<where>: <message>"), or the same message to the trap t */
BEIT_NORETURN void cfg_fail_where(cfg_trap *t, const char *where, const char *fmt, ...) BEIT_PRINTF(3, 4);
/* "unknown key 'x'" with a "did you mean" suggestion or the keys of its section. */
BEIT_NORETURN void cfg_unknown_key(cfg_trap *t, const char *where, const char *name);
/* "lr, min_lr, ...": the keys of section sec, without the section prefix */
void cfg_section_keys(sbuf *b, const char *sec);

#endif
