/* Masking generators (include/beit/masking.h).
 *  1. round half to even against hand values and Python 3's round() (fixture)
 *  2. a hand-traced blockwise mask from a fixed uniform stream
 *  3. bit for bit against the Python transcription of unilm's MaskingGenerator
 *     (tests/fixtures/gen_masking.py -> masking.h5): same uniforms in, same masks and the
 *     same number of uniforms consumed; 14x14, 7x7, 6x9 with continuous uniforms, and 7x7 fed
 *     a dyadic stream that hits exact round() ties (x.5)
 *  4. statistics of mask_generate over 10000 samples (count <= M, mean 74.5 of 75)
 *  5. random masking: exactly M, every position about equally often
 *  6. determinism of the (seed, epoch, sample) keying
 *  7. parameter validation messages and the fatal exit code
 *  8. mask_positions */
#include "harness.h"

#include "beit/error.h"
#include "beit/masking.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a uniform source reading a stored stream ---- */
typedef struct {
    const double *u;
    size_t n, pos;
    int overrun;
} stream_ctx;

static double stream_next(void *ctx) {
    stream_ctx *s = ctx;
    if (s->pos >= s->n) {
        s->overrun = 1;
        return 0.5;
    }
    return s->u[s->pos++];
}

/* ---- fixture reading (float64 streams: the harness reads floats only) ---- */
static void *read_ds(hid_t f, const char *name, hid_t memtype, size_t elem, size_t *n) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        t_ok(0, "masking.h5 has dataset %s (run tests/fixtures/gen_masking.py)", name);
        exit(t_done());
    }
    hid_t d = H5_CHECK(H5Dopen2(f, name, H5P_DEFAULT));
    hid_t sp = H5_CHECK(H5Dget_space(d));
    size_t cnt = (size_t)H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    void *x = xmalloc(cnt * elem + 8);
    H5_CHECK(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    H5Dclose(d);
    *n = cnt;
    return x;
}

static int group_exists(hid_t f, const char *g) { return H5Lexists(f, g, H5P_DEFAULT) > 0; }

static void test_round(hid_t f) {
    const double x[] = {0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994, 2.4999999999999996,
                        2.5000000000000004, 4503599627370495.5, 3.7, -3.7, 0.0};
    const double want[] = {0, 2, 2, -0.0, -2, 0, 2, 3, 4503599627370496.0, 4, -4, 0};
    int bad = 0;
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        if (mask_round_half_even(x[i]) != want[i]) {
            t_diag("round(%.17g) = %.17g, want %.17g", x[i], mask_round_half_even(x[i]), want[i]);
            bad++;
        }
    t_ok(bad == 0, "round half to even: %zu hand cases (0.5->0, 1.5->2, 2.5->2, 0.49999999999999994->0)",
         sizeof x / sizeof x[0]);
    size_t n, m;
    double *rx = read_ds(f, "round/x", H5T_NATIVE_DOUBLE, sizeof(double), &n);
    int64_t *ry = read_ds(f, "round/y", H5T_NATIVE_INT64, sizeof(int64_t), &m);
    bad = 0;
    for (size_t i = 0; i < n && i < m; i++)
        if ((int64_t)mask_round_half_even(rx[i]) != ry[i]) {
            t_diag("round(%.17g): C %.17g, Python %lld", rx[i], mask_round_half_even(rx[i]),
                   (long long)ry[i]);
            bad++;
        }
    t_ok(n == m && n > 0 && bad == 0, "round half to even equals Python 3 round() on %zu stored cases", n);
    free(rx);
    free(ry);
}

static void test_hand_trace(void) {
    /* 7x7, M = 4, min 4, aspect [0.3, 1/0.3]:
     *   area = 4 + (4 - 4) * 0.5 = 4; aspect = exp(log .3 + (log(1/.3) - log .3) * .5) = 1
     *   h = w = round(sqrt(4)) = 2 < 7; top = floor(0.0 * 6) = 0; left = floor(0.99 * 6) = 5
     *   -> positions (0,5) (0,6) (1,5) (1,6) = 5, 6, 12, 13; count 4 = M, stop after 4 draws */
    const double u[] = {0.5, 0.5, 0.0, 0.99, 0.3, 0.3, 0.3};
    stream_ctx s = {u, 7, 0, 0};
    mask_params p = {7, 7, 4, 4, 0, 0.3, 0};
    uint8_t mask[49];
    int c = mask_block_generate(mask, &p, stream_next, &s);
    int32_t pos[49];
    int k = mask_positions(mask, 49, pos);
    t_ok(c == 4 && k == 4 && pos[0] == 5 && pos[1] == 6 && pos[2] == 12 && pos[3] == 13 && s.pos == 4,
         "hand-traced 2x2 block at top 0, left 5 on 7x7 (count %d, %d uniforms used)", c, (int)s.pos);
    /* randint(0, n) upper end: u just below 1 gives n; a block as wide as the grid never fits:
     * 7x7, M = 20, min 4, u = (1, 1): area 20, aspect 1/0.3 -> h = round(sqrt(66.7)) = 8 >= 7,
     * so each of the 10 attempts draws 2 numbers and the mask stays empty (stream of 0.999...) */
    double v[40];
    for (int i = 0; i < 40; i++) v[i] = 0.9999999999999999;
    stream_ctx s2 = {v, 40, 0, 0};
    mask_params p2 = {7, 7, 20, 4, 0, 0.3, 0};
    c = mask_block_generate(mask, &p2, stream_next, &s2);
    t_ok(c == 0 && s2.pos == 20 && mask_positions(mask, 49, NULL) == 0,
         "no block fits: 10 attempts x 2 uniforms, empty mask (count %d, %d used)", c, (int)s2.pos);
}

static void test_vs_python(hid_t f, const char *g) {
    char name[128];
    size_t n_par, n_asp, n_u, n_cons, n_cnt, n_pk;
    snprintf(name, sizeof name, "%s/params", g);
    int64_t *par = read_ds(f, name, H5T_NATIVE_INT64, sizeof(int64_t), &n_par);
    snprintf(name, sizeof name, "%s/aspect", g);
    double *asp = read_ds(f, name, H5T_NATIVE_DOUBLE, sizeof(double), &n_asp);
    snprintf(name, sizeof name, "%s/uniform", g);
    double *u = read_ds(f, name, H5T_NATIVE_DOUBLE, sizeof(double), &n_u);
    snprintf(name, sizeof name, "%s/consumed", g);
    int64_t *cons = read_ds(f, name, H5T_NATIVE_INT64, sizeof(int64_t), &n_cons);
    snprintf(name, sizeof name, "%s/count", g);
    int64_t *cnt = read_ds(f, name, H5T_NATIVE_INT64, sizeof(int64_t), &n_cnt);
    snprintf(name, sizeof name, "%s/masks_packed", g);
    uint8_t *pk = read_ds(f, name, H5T_NATIVE_UINT8, 1, &n_pk);
    size_t n_ties;
    snprintf(name, sizeof name, "%s/ties", g);
    int64_t *ties = read_ds(f, name, H5T_NATIVE_INT64, sizeof(int64_t), &n_ties);

    mask_params p = {(int)par[0], (int)par[1], (int)par[2], (int)par[3], (int)par[4], asp[0], asp[1]};
    const int HW = p.H * p.W, row = (HW + 7) / 8;
    const size_t nmask = n_cons;
    uint8_t *mask = xmalloc((size_t)HW);
    stream_ctx s = {u, n_u, 0, 0};
    size_t same_mask = 0, same_cons = 0, same_count = 0, first_bad = (size_t)-1;
    double mean = 0;
    for (size_t k = 0; k < nmask; k++) {
        size_t p0 = s.pos;
        int c = mask_block_generate(mask, &p, stream_next, &s);
        int eq = 1;
        for (int i = 0; i < HW; i++) {
            int want = (pk[k * row + i / 8] >> (7 - i % 8)) & 1;
            if (mask[i] != want) eq = 0;
        }
        same_mask += eq;
        same_cons += (int64_t)(s.pos - p0) == cons[k];
        same_count += c == cnt[k];
        mean += c;
        if ((!eq || (int64_t)(s.pos - p0) != cons[k]) && first_bad == (size_t)-1) first_bad = k;
        /* keep the streams aligned after a mismatch so one bug does not hide the rest */
        s.pos = p0 + (size_t)cons[k];
    }
    if (first_bad != (size_t)-1) t_diag("%s: first mismatch at mask %zu", g, first_bad);
    t_ok(n_pk == nmask * (size_t)row && n_cnt == nmask && n_par == 5 && n_asp == 2 && nmask > 0,
         "%s fixture shapes (%zu masks of %dx%d)", g, nmask, p.H, p.W);
    t_ok(same_mask == nmask && !s.overrun,
         "%s: %dx%d M=%d min=%d max=%d: %zu of %zu masks identical to Python's (%lld exact "
         "round() ties in Python's run)", g, p.H, p.W, p.num_patches, p.min_patches,
         p.max_patches, same_mask, nmask, (long long)ties[0]);
    t_ok(same_cons == nmask, "%s: uniforms consumed per mask equal Python's for %zu of %zu", g,
         same_cons, nmask);
    t_ok(same_count == nmask && s.pos == n_u,
         "%s: returned counts equal Python's mask sums for %zu of %zu (mean %.3f), stream used up "
         "(%zu of %zu)", g, same_count, nmask, mean / (double)nmask, s.pos, n_u);
    free(par); free(asp); free(u); free(cons); free(cnt); free(pk); free(ties); free(mask);
}

static void test_stats(int H, int W, int M, int mn, double lo_mean, double hi_mean) {
    mask_params p = {H, W, M, mn, 0, 0.3, 0};
    uint8_t mask[256];
    const int N = 10000;
    int over = 0, mismatch = 0, lo = H * W;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        int c = mask_generate(mask, &p, 1, 42, 3, i);
        if (c > M) over++;
        if (mask_positions(mask, H * W, NULL) != c) mismatch++;
        if (c < lo) lo = c;
        sum += c;
    }
    double mean = sum / N;
    t_ok(over == 0 && mismatch == 0,
         "blockwise %dx%d M=%d min=%d: count <= M and = mask sum in all %d draws (smallest %d)", H, W,
         M, mn, N, lo);
    t_ok(mean >= lo_mean && mean <= hi_mean, "blockwise %dx%d M=%d min=%d: mean count %.3f in [%.3f, %.3f]",
         H, W, M, mn, mean, lo_mean, hi_mean);
}

static void test_random(void) {
    const int H = 14, W = 14, HW = 196, M = 75, N = 10000;
    mask_params p = {H, W, M, 16, 0, 0.3, 0};
    uint8_t mask[196];
    long freq[196] = {0};
    int exact = 0;
    for (int i = 0; i < N; i++) {
        int c = mask_generate(mask, &p, 0, 7, 1, i);
        int k = mask_positions(mask, HW, NULL);
        exact += c == M && k == M;
        for (int j = 0; j < HW; j++) freq[j] += mask[j];
    }
    t_ok(exact == N, "random masking: exactly %d of 196 masked in %d of %d draws", M, exact, N);
    /* each position: Binomial-like with mean N*M/HW = 3827, sd sqrt(N q (1-q)) = 48.6;
     * allow 5 sd (max over 196 positions is ~3 sd) */
    double e = (double)N * M / HW, q = (double)M / HW, sd = sqrt(N * q * (1 - q));
    double worst = 0, chi2 = 0;
    for (int j = 0; j < HW; j++) {
        double z = fabs(freq[j] - e) / sd;
        if (z > worst) worst = z;
        chi2 += (freq[j] - e) * (freq[j] - e) / (e * (1 - q));
    }
    t_ok(worst <= 5.0, "random masking covers all 196 positions evenly: worst |z| %.2f <= 5 "
         "(expected %.0f each, chi2/dof %.2f)", worst, e, chi2 / (HW - 1));
    /* the small grid and M = all positions */
    mask_params p7 = {7, 7, 49, 4, 0, 0.3, 0};
    int c = mask_generate(mask, &p7, 0, 7, 1, 0);
    t_ok(c == 49 && mask_positions(mask, 49, NULL) == 49, "random masking with M = H*W masks everything");
}

static void test_determinism(void) {
    mask_params p = {14, 14, 75, 16, 0, 0.3, 0};
    uint8_t a[196], b[196];
    int same = 1, differ = 0, differ_epoch = 0, differ_seed = 0;
    for (int blockwise = 0; blockwise < 2; blockwise++)
        for (int i = 0; i < 100; i++) {
            mask_generate(a, &p, blockwise, 5, 2, i);
            mask_generate(b, &p, blockwise, 5, 2, i);
            if (memcmp(a, b, 196)) same = 0;
            mask_generate(b, &p, blockwise, 5, 2, i + 1);
            differ += memcmp(a, b, 196) != 0;
            mask_generate(b, &p, blockwise, 5, 3, i);
            differ_epoch += memcmp(a, b, 196) != 0;
            mask_generate(b, &p, blockwise, 6, 2, i);
            differ_seed += memcmp(a, b, 196) != 0;
        }
    t_ok(same, "same (seed, epoch, sample) -> same mask (200 samples, both kinds)");
    t_ok(differ >= 198 && differ_epoch >= 198 && differ_seed >= 198,
         "different sample / epoch / seed -> different mask in %d / %d / %d of 200", differ,
         differ_epoch, differ_seed);
    /* Philox keying: independent of the order masks are drawn in (a rank drawing sample 37
     * alone gets the mask it gets in sequence) */
    mask_generate(a, &p, 1, 9, 4, 37);
    for (int i = 0; i < 37; i++) mask_generate(b, &p, 1, 9, 4, i);
    mask_generate(b, &p, 1, 9, 4, 37);
    t_ok(memcmp(a, b, 196) == 0, "a sample's mask does not depend on what was drawn before");
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

static void test_validation(void) {
    char buf[512];
    mask_params ok = {14, 14, 75, 16, 0, 0.3, 0};
    t_ok(mask_params_error(&ok, 1, buf, sizeof buf) == NULL, "14x14 M=75 min=16 is valid");
    mask_params p = ok;
    p.num_patches = 200;
    const char *m = mask_params_error(&p, 1, buf, sizeof buf);
    t_ok(contains(m, "14x14") && contains(m, "200") && contains(m, "196"),
         "num_patches 200 > 14x14 rejected naming grid and count: %s", m ? m : "(accepted)");
    p = ok; p.min_patches = 80;
    m = mask_params_error(&p, 1, buf, sizeof buf);
    t_ok(contains(m, "min_patches = 80") && contains(m, "75"), "min_patches 80 > num_patches 75 rejected: %s",
         m ? m : "(accepted)");
    p = ok; p.min_patches = 0;
    int r1 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    p = ok; p.max_patches = 10;
    int r2 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    p = ok; p.min_aspect = 0;
    int r3 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    p = ok; p.max_aspect = -1;
    int r4 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    p = ok; p.H = 0;
    int r5 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    p = (mask_params){1, 8, 3, 1, 0, 0.3, 0};
    int r6 = mask_params_error(&p, 1, buf, sizeof buf) != NULL;
    int a6 = mask_params_error(&p, 0, buf, sizeof buf) == NULL;
    t_ok(r1 && r2 && r3 && r4 && r5 && r6 && a6,
         "rejects min 0, max < min, aspect <= 0, H 0, blockwise on 1x8 (random on 1x8 accepted)");

    /* the fatal wrapper: child exits 2 with the message on stderr */
    int fd[2];
    if (pipe(fd) != 0) { t_ok(0, "pipe"); return; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        mask_params bad = ok;
        bad.num_patches = 200;
        mask_params_check(&bad, 1, "job.yaml");
        _exit(0);
    }
    close(fd[1]);
    char err[1024] = {0};
    size_t got = 0;
    ssize_t k;
    while ((k = read(fd[0], err + got, sizeof err - 1 - got)) > 0) got += (size_t)k;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    char *nl = strchr(err, '\n');
    if (nl) *nl = '\0';
    t_ok(WIFEXITED(status) && WEXITSTATUS(status) == BEIT_EXIT_USAGE && contains(err, "job.yaml") &&
             contains(err, "14x14") && contains(err, "200"),
         "mask_params_check exits %d with: %s", WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);
}

static void test_positions(void) {
    const uint8_t m[10] = {0, 1, 0, 0, 1, 1, 0, 0, 0, 1};
    int32_t pos[10];
    int k = mask_positions(m, 10, pos);
    t_ok(k == 4 && pos[0] == 1 && pos[1] == 4 && pos[2] == 5 && pos[3] == 9 &&
             mask_positions(m, 10, NULL) == 4,
         "mask_positions lists 1 4 5 9");
}

int main(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/masking.h5", fx_dir());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        t_ok(0, "open fixture %s (run /usr/bin/python3 tests/fixtures/gen_masking.py)", path);
        return t_done();
    }
    test_round(f);
    test_hand_trace();
    const char *groups[] = {"g14", "g7", "g6x9", "g7ties"};
    for (int i = 0; i < 4; i++) {
        if (group_exists(f, groups[i])) test_vs_python(f, groups[i]);
        else t_ok(0, "masking.h5 has group %s", groups[i]);
    }
    H5Fclose(f);
    test_stats(14, 14, 75, 16, 74.2, 74.8);
    test_stats(7, 7, 20, 4, 19.9, 19.995); /* reference: 19.967, se 0.002 over 10000 draws */
    test_random();
    test_determinism();
    test_validation();
    test_positions();
    return t_done();
}
