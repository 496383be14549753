/* config_value.c: one job-file value, text <-> the typed field of its key.
 *
 * Parsing checks the syntax of the key's type and the schema's range, and writes the message a
 * user sees (the caller adds where: file:line:col or --set). Formatting gives the YAML text
 * that parses back to the same bits (doubles with the fewest digits that round-trip).
 */
#include "config_internal.h"

#include "beit/config.h"
#include "beit/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable string ----------------------------------------------------------------------- */

void cfg_sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)m + 1 > b->cap) {
        b->cap = 2 * (b->n + (size_t)m + 1) + 256;
        b->s = xrealloc(b->s, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)m + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)m;
}

const char *cfg_sb_str(sbuf *b) {
    if (!b->s) cfg_sb_add(b, "%s", "");
    return b->s;
}

/* ---- formatting values --------------------------------------------------------------------- */

/* The fewest significant digits that read back to the same double, with ".0" added to an
 * integral value so it reads as a float. Deterministic (C locale). */
static void fmt_double(char *buf, size_t n, double v) {
    if (v == floor(v) && fabs(v) < 1e15) { /* integral: "10.0", not "1e+01" */
        snprintf(buf, n, "%.1f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t len = strlen(buf);
        if (len + 3 <= n) memcpy(buf + len, ".0", 3);
    }
}

/* "0 <= optim.lr <= 10", "optim.lr >= 0", "0 < x < 1" */
void cfg_fmt_range(char *buf, size_t n, const key_spec *k, const char *name) {
    char lo[40] = "", hi[40] = "";
    if (k->lo.kind) snprintf(lo, sizeof lo, "%g", k->lo.v);
    if (k->hi.kind) snprintf(hi, sizeof hi, "%g", k->hi.v);
    const char *lop = k->lo.kind == 2 ? "<" : "<=", *hop = k->hi.kind == 2 ? "<" : "<=";
    if (k->lo.kind && k->hi.kind) snprintf(buf, n, "%s %s %s %s %s", lo, lop, name, hop, hi);
    else if (k->lo.kind) snprintf(buf, n, "%s %s %s", name, k->lo.kind == 2 ? ">" : ">=", lo);
    else if (k->hi.kind) snprintf(buf, n, "%s %s %s", name, hop, hi);
    else buf[0] = 0;
}

void cfg_fmt_choices(sbuf *b, const char *const *choices) {
    for (int i = 0; choices[i]; i++) cfg_sb_add(b, "%s%s", i ? ", " : "", choices[i]);
}

/* YAML double-quoted string: always quoted, so "", "true", "123" stay strings. Bytes >= 0x80
 * pass through (UTF-8); control characters are escaped. */
/* The code point at p (n > 0 bytes left) in *cp; returns its length, or 0 where the bytes are
 * not UTF-8 (a bad lead or continuation byte, cut short, overlong, a surrogate, > U+10FFFF). */
static size_t utf8_next(const unsigned char *p, size_t n, unsigned *cp) {
    unsigned c = p[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0) len = 2, c &= 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0) len = 3, c &= 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0) len = 4, c &= 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
    *cp = c;
    return len;
}

/* Code points YAML does not keep as they are inside a double-quoted scalar: C1 controls (NEL
 * among them, a line break), the line and paragraph separators (folded into a space), and the
 * non-characters U+FFFE/U+FFFF (refused by the reader). They are written as \u escapes. */
static int yaml_needs_escape(unsigned cp) {
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfffe || cp == 0xffff;
}

void cfg_fmt_yaml_string(sbuf *b, const char *s) {
    cfg_sb_add(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned cp;
        size_t len = *p >= 0x80 ? utf8_next(p, strlen((const char *)p), &cp) : 0;
        if (len > 1) {
            if (yaml_needs_escape(cp)) cfg_sb_add(b, "\\u%04x", cp);
            else cfg_sb_add(b, "%.*s", (int)len, (const char *)p);
            p += len - 1;
        } else if (*p == '"') cfg_sb_add(b, "\\\"");
        else if (*p == '\\') cfg_sb_add(b, "\\\\");
        else if (*p == '\n') cfg_sb_add(b, "\\n");
        else if (*p == '\t') cfg_sb_add(b, "\\t");
        else if (*p < 0x20 || *p == 0x7f) cfg_sb_add(b, "\\x%02x", *p);
        else cfg_sb_add(b, "%c", *p);
    }
    cfg_sb_add(b, "\"");
}

int cfg_choice_count(const char *const *choices) {
    int n = 0;
    while (choices[n]) n++;
    return n;
}

/* The value of key k in c as YAML text; returns 0 if an enum is unset (-1). */
int cfg_fmt_value(sbuf *b, const beit_config *c, const key_spec *k) {
    const void *p = cfg_cfield(c, k);
    char num[64];
    switch (k->type) {
    case T_INT: cfg_sb_add(b, "%d", *(const int *)p); break;
    case T_FLOAT:
        fmt_double(num, sizeof num, *(const double *)p);
        cfg_sb_add(b, "%s", num);
        break;
    case T_BOOL: cfg_sb_add(b, "%s", *(const bool *)p ? "true" : "false"); break;
    case T_STR: cfg_fmt_yaml_string(b, (const char *)p); break;
    case T_ENUM: {
        int v = *(const int *)p;
        if (v == -1) return 0;
        if (v < 0 || v >= cfg_choice_count(k->choices))
            beit_fatal(BEIT_EXIT_FAILURE, "config: %s holds %d, not an index of its choices", k->name, v);
        cfg_sb_add(b, "%s", k->choices[v]);
        break;
    }
    case T_INTLIST: {
        const beit_int_list *l = p;
        cfg_sb_add(b, "[");
        for (int i = 0; i < l->n; i++) cfg_sb_add(b, "%s%d", i ? ", " : "", l->v[i]);
        cfg_sb_add(b, "]");
        break;
    }
    }
    return 1;
}

/* ---- parsing values ------------------------------------------------------------------------ */

/* YAML's plain spellings of null (an empty value too). */
int cfg_is_yaml_null(const char *s) {
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* decimal integer with optional sign; 0 ok, -1 not an integer, -2 beyond int64 */
static int parse_i64(const char *s, long long *out) {
    const char *p = s;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -2;
    *out = v;
    return 0;
}

/* decimal number (integer, fraction, exponent); 0 ok, -1 not a number, -2 not finite */
static int parse_f64(const char *s, double *out) {
    if (!*s || isspace((unsigned char)*s) || strpbrk(s, "xX")) return -1; /* no hex floats */
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end) return -1;
    if (!isfinite(v)) return -2;
    *out = v;
    return 0;
}

static int in_range(const key_spec *k, double v) {
    if (k->lo.kind == 1 && !(v >= k->lo.v)) return 0;
    if (k->lo.kind == 2 && !(v > k->lo.v)) return 0;
    if (k->hi.kind == 1 && !(v <= k->hi.v)) return 0;
    if (k->hi.kind == 2 && !(v < k->hi.v)) return 0;
    return 1;
}

/* An integer for key k (or entry `name` of an int list): syntax, int range, schema range. */
int cfg_parse_int_value(const key_spec *k, const char *name, const char *text, int plain, int *out,
                        char *err) {
    long long v = 0;
    if (!plain) {
        snprintf(err, ERRN, "%s: expected an integer, got the quoted string \"%.200s\" (quotes make "
                 "a YAML string)", name, text);
        return -1;
    }
    if (cfg_is_yaml_null(text)) {
        snprintf(err, ERRN, "%s: expected an integer, got an empty value", name);
        return -1;
    }
    int rc = parse_i64(text, &v);
    if (rc == 0 && (v < INT_MIN || v > INT_MAX)) rc = -2;
    if (rc == -1) {
        snprintf(err, ERRN, "%s: expected an integer, got '%.200s'", name, text);
        return -1;
    }
    if (rc == -2) {
        snprintf(err, ERRN, "%s: expected an integer between %d and %d, got %.200s", name, INT_MIN,
                 INT_MAX, text);
        return -1;
    }
    if (!in_range(k, (double)v)) {
        char r[256];
        cfg_fmt_range(r, sizeof r, k, name);
        snprintf(err, ERRN, "expected %s, got %.200s", r, text);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Write a list (already checked) into key k. */
void cfg_store_list(beit_config *c, const key_spec *k, const int *v, int n) {
    beit_int_list *l = cfg_field(c, k);
    memset(l, 0, sizeof *l);
    l->n = n;
    memcpy(l->v, v, (size_t)n * sizeof *v);
}

int cfg_check_list_count(const key_spec *k, int n, char *err) {
    if (n < 1) {
        snprintf(err, ERRN, "%s: expected a list of 1 to %d integers, got an empty list", k->name,
                 BEIT_CONFIG_LIST_MAX);
        return -1;
    }
    if (n > BEIT_CONFIG_LIST_MAX) {
        snprintf(err, ERRN, "%s: expected at most %d entries, got more", k->name, BEIT_CONFIG_LIST_MAX);
        return -1;
    }
    return 0;
}

/* An int list from command-line text: "[4, 6, 8]" or "4,6,8". */
static int parse_list_text(beit_config *c, const key_spec *k, const char *text, char *err) {
    char *s = xstrdup(text), *p = s;
    int v[BEIT_CONFIG_LIST_MAX + 1], n = 0, rc = 0;
    while (isspace((unsigned char)*p)) p++;
    size_t len = strlen(p);
    while (len && isspace((unsigned char)p[len - 1])) p[--len] = 0;
    if (*p == '[') {
        if (len < 2 || p[len - 1] != ']') {
            snprintf(err, ERRN, "%s: expected a list of integers like [4, 6, 8], got '%.200s'",
                     k->name, text);
            free(s);
            return -1;
        }
        p[len - 1] = 0;
        p++;
    }
    char *q = p;
    while (isspace((unsigned char)*q)) q++;
    if (*q) {
        for (char *tok = p;; n++) {
            char *comma = strchr(tok, ',');
            if (comma) *comma = 0;
            while (isspace((unsigned char)*tok)) tok++;
            size_t tl = strlen(tok);
            while (tl && isspace((unsigned char)tok[tl - 1])) tok[--tl] = 0;
            if (n == BEIT_CONFIG_LIST_MAX) { n++; break; }
            char name[96];
            snprintf(name, sizeof name, "%s[%d]", k->name, n);
            if ((rc = cfg_parse_int_value(k, name, tok, 1, &v[n], err)) != 0) break;
            if (!comma) { n++; break; }
            tok = comma + 1;
        }
    }
    free(s);
    if (rc) return rc;
    if (cfg_check_list_count(k, n, err)) return -1;
    cfg_store_list(c, k, v, n);
    return 0;
}

/* One scalar into key k. plain: an unquoted YAML scalar (always true for --set); literal:
 * the text comes from the command line or a default, so "" is an empty string, not null. */
int cfg_set_scalar(beit_config *c, const key_spec *k, const char *text, size_t len, int plain,
                   int literal, char *err) {
    void *p = cfg_field(c, k);
    const char *name = k->name;
    if (strlen(text) != len) {
        snprintf(err, ERRN, "%s: the value contains a NUL character", name);
        return -1;
    }
    if (plain && cfg_is_yaml_null(text) && !(literal && (k->type == T_STR || k->type == T_INTLIST))) {
        sbuf b = {0};
        if (k->type == T_ENUM) cfg_fmt_choices(&b, k->choices);
        snprintf(err, ERRN, "%s: expected %s%s, got an empty value%s", name,
                 k->type == T_STR ? "a string" : k->type == T_BOOL ? "true or false"
                 : k->type == T_INT ? "an integer" : k->type == T_FLOAT ? "a number"
                 : k->type == T_ENUM ? "one of: " : "a list of integers", cfg_sb_str(&b),
                 k->type == T_STR ? " (write \"\" for an empty string)"
                 : " (leave the key out for its default)");
        free(b.s);
        return -1;
    }
    switch (k->type) {
    case T_INT: return cfg_parse_int_value(k, name, text, plain, p, err);
    case T_FLOAT: {
        double v = 0;
        if (!plain) {
            snprintf(err, ERRN, "%s: expected a number, got the quoted string \"%.200s\" (quotes "
                     "make a YAML string)", name, text);
            return -1;
        }
        int rc = parse_f64(text, &v);
        if (rc == -1) {
            snprintf(err, ERRN, "%s: expected a number, got '%.200s'", name, text);
            return -1;
        }
        if (rc == -2) {
            snprintf(err, ERRN, "%s: expected a finite number, got '%.200s'", name, text);
            return -1;
        }
        if (!in_range(k, v)) {
            char r[256];
            cfg_fmt_range(r, sizeof r, k, name);
            snprintf(err, ERRN, "expected %s, got %.200s", r, text);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case T_BOOL:
        if (plain && !strcmp(text, "true")) *(bool *)p = true;
        else if (plain && !strcmp(text, "false")) *(bool *)p = false;
        else {
            snprintf(err, ERRN, "%s: expected true or false, got %s%.200s%s", name,
                     plain ? "'" : "the quoted string \"", text, plain ? "'" : "\"");
            return -1;
        }
        return 0;
    case T_STR:
        if (len + 1 > k->size) {
            snprintf(err, ERRN, "%s: expected a string of at most %zu bytes, got %zu bytes", name,
                     k->size - 1, len);
            return -1;
        }
        /* the resolved YAML (stored in checkpoints) must read back: UTF-8 text, no NUL */
        for (size_t i = 0, step; i < len; i += step) {
            unsigned cp = 1;
            step = utf8_next((const unsigned char *)text + i, len - i, &cp);
            if (!step || !cp) {
                snprintf(err, ERRN, "%s: expected UTF-8 text, got %s at byte %zu", name,
                         step ? "a NUL character" : "a byte that is not UTF-8", i + 1);
                return -1;
            }
        }
        memset(p, 0, k->size); /* no stale bytes after the NUL: configs compare with memcmp */
        memcpy(p, text, len + 1);
        return 0;
    case T_ENUM:
        for (int i = 0; k->choices[i]; i++)
            if (!strcmp(text, k->choices[i])) {
                *(int *)p = i;
                return 0;
            }
        {
            sbuf b = {0};
            cfg_fmt_choices(&b, k->choices);
            snprintf(err, ERRN, "%s: unknown value '%.200s' (expected one of: %s)", name, text, cfg_sb_str(&b));
            free(b.s);
        }
        return -1;
    case T_INTLIST:
        if (literal) return parse_list_text(c, k, text, err);
        snprintf(err, ERRN, "%s: expected a list of integers like [4, 6, 8], got '%.200s'", name, text);
        return -1;
    }
    return -1;
}
