/* Named evaluation results and their eval.json line (include/beit/train.h). */
#include "beit/train.h"

#include "beit/error.h"

#include <math.h>
#include <stdio.h>

static eval_item *next_item(eval_results *r, const char *name) {
    if (r->n >= EVAL_MAX_ITEMS) beit_fatal(BEIT_EXIT_FAILURE, "evaluation result %s: more than %d", name, EVAL_MAX_ITEMS);
    eval_item *it = &r->v[r->n++];
    it->name = name;
    return it;
}

void eval_put_str(eval_results *r, const char *name, const char *s) {
    eval_item *it = next_item(r, name);
    it->type = EVAL_STR;
    it->s = s;
}

void eval_put_num(eval_results *r, const char *name, const char *fmt, double x) {
    eval_item *it = next_item(r, name);
    it->type = EVAL_NUM;
    it->fmt = fmt;
    it->x = x;
}

void eval_put_int(eval_results *r, const char *name, long long i) {
    eval_item *it = next_item(r, name);
    it->type = EVAL_INT;
    it->i = i;
}

void eval_results_json(const eval_results *r, char *buf, size_t n) {
    size_t k = 0;
    int w = snprintf(buf, n, "{");
    for (int i = 0; i < r->n; i++) {
        k = (size_t)w < n ? (size_t)w : n;
        const eval_item *it = &r->v[i];
        w += snprintf(buf + k, n - k, "%s\"%s\": ", i ? ", " : "", it->name);
        k = (size_t)w < n ? (size_t)w : n;
        if (it->type == EVAL_STR) w += snprintf(buf + k, n - k, "\"%s\"", it->s);
        else if (it->type == EVAL_INT) w += snprintf(buf + k, n - k, "%lld", it->i);
        else if (!isfinite(it->x)) w += snprintf(buf + k, n - k, "null"); /* JSON has no NaN/Inf */
        else w += snprintf(buf + k, n - k, it->fmt, it->x);
    }
    k = (size_t)w < n ? (size_t)w : n;
    snprintf(buf + k, n - k, "}");
}
