/* Test harness: TAP output ("ok N - name" / "not ok N - name"), numeric comparisons with
 * stated tolerances, PyTorch fixtures (HDF5) and directional finite-difference checks.
 * tools/run_tests.py runs every test program and counts the TAP lines. */
#ifndef BEIT_TEST_HARNESS_H
#define BEIT_TEST_HARNESS_H

#include "beit/params.h"

#include <stddef.h>
#include <stdint.h>

/* Record one check. Returns cond. */
int t_ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a diagnostic line ("# ...") */
void t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the plan and return the process exit code (0 iff every check passed). */
int t_done(void);

/* Elementwise |got - want| <= atol + rtol * |want| (torch.allclose's rule) for all i.
 * Reports the worst element and the max absolute / max normwise-relative error. */
int t_close(const char *name, const float *got, const float *want, size_t n, double rtol,
            double atol);
/* Normwise: max|got - want| <= rtol * max|want| (+ 1e-30). For gradients whose entries span
 * many magnitudes, this is the tolerance the fixture tests state. */
int t_close_norm(const char *name, const float *got, const float *want, size_t n, double rtol);

/* ---- scratch directory ---- */
/* Create a fresh directory /tmp/<prefix>.XXXXXX for this program's files (aborts the test
 * program if it cannot); returns its path. One per program. */
const char *t_tmpdir(const char *prefix);
/* "<scratch directory>/<name>" (malloc'd) */
char *t_path(const char *name);
/* Remove the scratch directory and everything in it (a diagnostic if that fails). */
void t_tmpdir_remove(void);

/* ---- expected failures ---- */
/* Run fn(arg) in a forked child with HDF5's own error printing off and its stderr captured in
 * msg (NUL-terminated, at most n-1 bytes); returns the child's exit code (0 when fn returns,
 * 128 + signal when it dies, -1 when no pipe). For checking the exit code and message of a
 * function that ends the process on bad input. */
int t_in_child(void (*fn)(void *), void *arg, char *msg, size_t n);

/* ---- fixtures written by tests/fixtures/gen_fixtures.py ---- */
typedef struct fixture fixture;
fixture *fx_open(const char *path);       /* aborts the test program if missing */
float *fx_floats(fixture *f, const char *name, size_t *n); /* malloc'd; n may be NULL */
int64_t *fx_ints(fixture *f, const char *name, size_t *n); /* any integer dataset -> int64 */
double fx_scalar(fixture *f, const char *name);            /* a 1-element dataset */
int fx_has(fixture *f, const char *name);
void fx_close(fixture *f);
/* The same for dataset "<group>/<name>" (a fixture case's group) */
float *fx_floats_in(fixture *f, const char *group, const char *name, size_t *n);
int64_t *fx_ints_in(fixture *f, const char *group, const char *name, size_t *n);
double fx_scalar_in(fixture *f, const char *group, const char *name);
/* "<group>/<name>" holding "a\nb\n..." as int64 bytes (the generators' parameter-name lists)
 * -> count strings; free with fx_names_free(names, count). */
char **fx_names_in(fixture *f, const char *group, const char *name, size_t *count);
void fx_names_free(char **names, size_t count);
/* A parameter table against the generator's record of the PyTorch module in <group>: "names"
 * and "shapes" [n,5] (ndim, dims) -> names_ok (same set, same shapes), "decay" -> decay_ok,
 * "layer_id" (when the group has it) -> lid_ok. Mismatches are printed as diagnostics. */
typedef struct {
    int names_ok, decay_ok, lid_ok;
    size_t n; /* tensors in the fixture */
} fx_table_cmp;
fx_table_cmp fx_compare_table(fixture *f, const char *group, const param_table *pt);
/* Directory of fixtures: $BEIT_FIXTURES, else the source tree's tests/fixtures. */
const char *fx_dir(void);

/* ---- finite differences ---- */
/* loss(ctx) evaluates the scalar objective in the *current* state of the buffer x.
 * Checks the directional derivative along a random unit-scale direction v (seeded):
 *   fd = (loss(x + eps v) - loss(x - eps v)) / (2 eps)   vs   an = <grad, v>
 * and passes iff |fd - an| <= rtol * max(|an|, |fd|, floor). x is restored afterwards.
 * Run a few directions (ndir) to catch sign or index errors in part of the gradient. */
int t_fd_check(const char *name, double (*loss)(void *ctx), void *ctx, float *x, const float *grad,
               size_t n, double eps, double rtol, double floor, int ndir, uint64_t seed);

/* fill with uniform(-scale, scale) or normal(0, scale) from the project's counter RNG */
void t_fill_uniform(float *x, size_t n, float scale, uint64_t seed);
void t_fill_normal(float *x, size_t n, float scale, uint64_t seed);
/* sum_i out[i] * r[i] in double: the usual scalar objective for checking a layer */
double t_dot(const float *a, const float *b, size_t n);

#endif
