#include "harness.h"

#include "beit/error.h"
#include "beit/rng.h"

#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_n = 0, g_fail = 0;

int t_ok(int cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    g_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", g_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) g_fail++;
    fflush(stdout);
    return cond;
}

void t_diag(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

int t_done(void) {
    printf("1..%d\n", g_n);
    fflush(stdout);
    return g_fail ? 1 : 0;
}

static char g_tmpdir[256];

const char *t_tmpdir(const char *prefix) {
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/%s.XXXXXX", prefix);
    if (!mkdtemp(g_tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    return g_tmpdir;
}

char *t_path(const char *name) { return xasprintf("%s/%s", g_tmpdir, name); }

void t_tmpdir_remove(void) {
    char *cmd = xasprintf("rm -rf '%s'", g_tmpdir);
    if (system(cmd) != 0) t_diag("could not remove %s", g_tmpdir);
    free(cmd);
}

int t_close(const char *name, const float *got, const float *want, size_t n, double rtol,
            double atol) {
    size_t worst = 0, bad = 0;
    double worst_ratio = 0, max_abs = 0, max_want = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w);
        /* a NaN/Inf on either side fails: a comparison with NaN is false, so without this a
         * NaN expected value (a broken fixture) would pass */
        const int fin = isfinite(g) && isfinite(w);
        if (!fin) finite = 0;
        double ratio = d / (atol + rtol * fabs(w));
        if (ratio > worst_ratio || !fin) { worst_ratio = fin ? ratio : INFINITY; worst = i; }
        if (ratio > 1.0 || !fin) bad++;
        if (d > max_abs) max_abs = d;
        if (fabs(w) > max_want) max_want = fabs(w);
    }
    int pass = finite && bad == 0 && n > 0;
    if (!pass && n > 0)
        t_diag("%s: %zu of %zu elements outside |d| <= %.1e + %.1e|want|; worst [%zu] got %.9g want %.9g",
               name, bad, n, atol, rtol, worst, (double)got[worst], (double)want[worst]);
    return t_ok(pass, "%s (n=%zu, max abs err %.2e, max|want| %.2e, rtol %.0e atol %.0e)", name, n,
                max_abs, max_want, rtol, atol);
}

int t_close_norm(const char *name, const float *got, const float *want, size_t n, double rtol) {
    double max_abs = 0, max_want = 0;
    size_t worst = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!isfinite(got[i]) || !isfinite(want[i])) { /* NaN on either side fails (see t_close) */
            if (finite) worst = i;
            finite = 0;
        }
        if (d > max_abs) { max_abs = d; worst = i; }
        if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
    }
    double rel = max_abs / (max_want + 1e-30);
    int pass = finite && rel <= rtol && n > 0;
    if (!pass && n > 0)
        t_diag("%s: worst [%zu] got %.9g want %.9g", name, worst, (double)got[worst], (double)want[worst]);
    return t_ok(pass, "%s (n=%zu, max|d|/max|want| = %.2e <= %.0e)", name, n, rel, rtol);
}

/* ---- fixtures ---- */
struct fixture {
    hid_t file;
    char path[1024];
};

const char *fx_dir(void) {
    const char *e = getenv("BEIT_FIXTURES");
    return e && *e ? e : BEIT_SOURCE_DIR "/tests/fixtures";
}

fixture *fx_open(const char *name) {
    fixture *f = xcalloc(1, sizeof *f);
    if (name[0] == '/') snprintf(f->path, sizeof f->path, "%s", name);
    else snprintf(f->path, sizeof f->path, "%s/%s", fx_dir(), name);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f->file = H5Fopen(f->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->file < 0) {
        t_ok(0, "open fixture %s (run tests/fixtures/gen_fixtures.py?)", f->path);
        exit(t_done());
    }
    return f;
}

int fx_has(fixture *f, const char *name) {
    /* H5Lexists needs every intermediate group to exist: walk the path */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (H5Lexists(f->file, buf, H5P_DEFAULT) <= 0) return 0;
            if (c == '\0') return 1;
            *p = c;
        }
    }
}

static hid_t fx_dataset(fixture *f, const char *name, size_t *n) {
    if (!fx_has(f, name)) {
        t_ok(0, "fixture %s has dataset %s", f->path, name);
        exit(t_done());
    }
    hid_t d = H5Dopen2(f->file, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hssize_t cnt = H5Sget_simple_extent_npoints(s);
    H5Sclose(s);
    *n = (size_t)cnt;
    return d;
}

float *fx_floats(fixture *f, const char *name, size_t *n) {
    size_t cnt;
    hid_t d = fx_dataset(f, name, &cnt);
    float *x = xmalloc(cnt * sizeof(float) + 4);
    H5_CHECK(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    H5Dclose(d);
    if (n) *n = cnt;
    return x;
}

int64_t *fx_ints(fixture *f, const char *name, size_t *n) {
    size_t cnt;
    hid_t d = fx_dataset(f, name, &cnt);
    int64_t *x = xmalloc(cnt * sizeof(int64_t) + 8);
    H5_CHECK(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    H5Dclose(d);
    if (n) *n = cnt;
    return x;
}

double fx_scalar(fixture *f, const char *name) {
    size_t cnt;
    hid_t d = fx_dataset(f, name, &cnt);
    double v = 0;
    if (cnt != 1) { t_ok(0, "fixture %s: %s is a scalar", f->path, name); exit(t_done()); }
    H5_CHECK(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v));
    H5Dclose(d);
    return v;
}

static char *fx_key(const char *group, const char *name) { return xasprintf("%s/%s", group, name); }

float *fx_floats_in(fixture *f, const char *group, const char *name, size_t *n) {
    char *k = fx_key(group, name);
    float *x = fx_floats(f, k, n);
    free(k);
    return x;
}

int64_t *fx_ints_in(fixture *f, const char *group, const char *name, size_t *n) {
    char *k = fx_key(group, name);
    int64_t *x = fx_ints(f, k, n);
    free(k);
    return x;
}

double fx_scalar_in(fixture *f, const char *group, const char *name) {
    char *k = fx_key(group, name);
    double v = fx_scalar(f, k);
    free(k);
    return v;
}

char **fx_names_in(fixture *f, const char *group, const char *name, size_t *count) {
    size_t n;
    int64_t *b = fx_ints_in(f, group, name, &n);
    char *s = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) s[i] = (char)b[i];
    s[n] = 0;
    free(b);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    char **out = xmalloc((k + 1) * sizeof(char *));
    size_t j = 0;
    char *tok = s;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n') {
            s[i] = 0;
            out[j++] = tok;
            tok = s + i + 1;
        }
    out[k] = s; /* the block, for fx_names_free */
    *count = k;
    return out;
}

void fx_names_free(char **names, size_t count) {
    free(names[count]);
    free(names);
}

fx_table_cmp fx_compare_table(fixture *f, const char *group, const param_table *pt) {
    fx_table_cmp r = {1, 1, 1, 0};
    size_t ns, nd, nl = 0;
    char **names = fx_names_in(f, group, "names", &r.n);
    int64_t *shapes = fx_ints_in(f, group, "shapes", &ns), *decay = fx_ints_in(f, group, "decay", &nd);
    char *lkey = xasprintf("%s/layer_id", group);
    int64_t *lid = fx_has(f, lkey) ? fx_ints_in(f, group, "layer_id", &nl) : NULL;
    free(lkey);
    r.names_ok = (size_t)pt->n == r.n;
    for (size_t i = 0; i < r.n; i++) {
        int j = params_find(pt, names[i]);
        if (j < 0) {
            t_diag("%s: torch parameter %s missing from the C table", group, names[i]);
            r.names_ok = r.decay_ok = r.lid_ok = 0;
            continue;
        }
        const param_info *t = &pt->t[j];
        int same = t->ndim == shapes[i * 5];
        for (int k = 0; k < t->ndim && same; k++) same = t->shape[k] == shapes[i * 5 + 1 + k];
        if (!same) {
            t_diag("%s: %s shape differs from torch's", group, names[i]);
            r.names_ok = 0;
        }
        if (t->decay != decay[i]) {
            t_diag("%s: %s decay %d, reference rule %d", group, names[i], t->decay, (int)decay[i]);
            r.decay_ok = 0;
        }
        if (lid && t->layer_id != lid[i]) {
            t_diag("%s: %s layer_id %d, reference rule %d", group, names[i], t->layer_id, (int)lid[i]);
            r.lid_ok = 0;
        }
    }
    fx_names_free(names, r.n);
    free(shapes);
    free(decay);
    free(lid);
    return r;
}

void fx_close(fixture *f) {
    H5Fclose(f->file);
    free(f);
}

/* ---- finite differences ---- */
int t_fd_check(const char *name, double (*loss)(void *ctx), void *ctx, float *x, const float *grad,
               size_t n, double eps, double rtol, double floor, int ndir, uint64_t seed) {
    float *x0 = xmalloc(n * sizeof(float));
    float *v = xmalloc(n * sizeof(float));
    memcpy(x0, x, n * sizeof(float));
    int pass = 1;
    double worst = 0, worst_fd = 0, worst_an = 0;
    for (int k = 0; k < ndir; k++) {
        rng_t r = rng_stream(seed, RNG_TEST, (uint64_t)k, 77);
        for (size_t i = 0; i < n; i++) v[i] = rng_uniform(&r) * 2.0f - 1.0f;
        double an = 0;
        for (size_t i = 0; i < n; i++) an += (double)grad[i] * v[i];
        for (size_t i = 0; i < n; i++) x[i] = (float)(x0[i] + eps * v[i]);
        double lp = loss(ctx);
        for (size_t i = 0; i < n; i++) x[i] = (float)(x0[i] - eps * v[i]);
        double lm = loss(ctx);
        memcpy(x, x0, n * sizeof(float));
        double fd = (lp - lm) / (2 * eps);
        double scale = fmax(fmax(fabs(an), fabs(fd)), floor);
        double err = fabs(fd - an) / scale;
        if (err > worst) { worst = err; worst_fd = fd; worst_an = an; }
        if (!(err <= rtol)) pass = 0;
    }
    free(x0);
    free(v);
    if (!pass) t_diag("%s: finite difference %.8g vs analytic %.8g", name, worst_fd, worst_an);
    return t_ok(pass, "%s: finite differences, %d directions, eps %.0e, worst rel err %.2e <= %.0e",
                name, ndir, eps, worst, rtol);
}

void t_fill_uniform(float *x, size_t n, float scale, uint64_t seed) {
    rng_t r = rng_stream(seed, RNG_TEST, 1, 1);
    for (size_t i = 0; i < n; i++) x[i] = (rng_uniform(&r) * 2.0f - 1.0f) * scale;
}

void t_fill_normal(float *x, size_t n, float scale, uint64_t seed) {
    rng_t r = rng_stream(seed, RNG_TEST, 2, 2);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r) * scale;
}

double t_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

int t_in_child(void (*fn)(void *), void *arg, char *msg, size_t n) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        beit_h5_quiet();
        fn(arg);
        fflush(stderr);
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd[0], msg + got, n - 1 - got)) > 0) got += (size_t)r;
    msg[got] = '\0';
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
