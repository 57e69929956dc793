/* C ABI tests for liblogitdiv: values against independent references computed here with libm,
 * gradients against finite differences, and the status every bad argument must return.
 * Built and run (also under valgrind) by tests/test_capi.py. Exit code 0 = all checks passed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logitdiv.h"
#include "common.h"

static double close_rel(double a, double b) { return fabs(a - b) <= 1e-12 * fmax(fabs(b), 1e-300); }

/* reference KL(softmax(s) || softmax(t)) in long double */
static double ref_kl(const double *s, const double *t, size_t n) {
    long double ms = -INFINITY, mt = -INFINITY, zs = 0, zt = 0, kl = 0;
    for (size_t i = 0; i < n; i++) { if (s[i] > ms) ms = s[i]; if (t[i] > mt) mt = t[i]; }
    for (size_t i = 0; i < n; i++) { zs += expl(s[i] - ms); zt += expl(t[i] - mt); }
    for (size_t i = 0; i < n; i++) {
        long double lp = s[i] - ms - logl(zs), lq = t[i] - mt - logl(zt);
        kl += expl(lp) * (lp - lq);
    }
    return (double)kl;
}

static double ref_sigmoid_kl(const double *s, const double *t, size_t n) {
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        double p = 1 / (1 + exp(-s[i])), q = 1 / (1 + exp(-t[i]));
        v += p * log(p / q) + (1 - p) * log((1 - p) / (1 - q));
    }
    return v;
}

static void test_values(void) {
    double s[2] = {0.0, 0.0}, t[2] = {0.0, log(3.0)}, v = -1, r = -1;
    CHECK(ld_kl_f64(s, 2, t, 2, 1, 2, NULL, &v, &r, NULL, NULL) == LD_OK, "kl status");
    double expect = 0.5 * log(2.0) + 0.5 * log(2.0 / 3.0);
    CHECK(close_rel(v, expect), "KL([1/2,1/2]||[1/4,3/4]) = %.17g, expected %.17g", v, expect);
    CHECK(close_rel(r, expect), "result = %.17g", r);

    enum { R = 3, C = 7 };
    double a[R * C], b[R * C], vals[R], rv[R], back[R];
    for (int i = 0; i < R * C; i++) { a[i] = sin(1.3 * i) * 3; b[i] = cos(0.7 * i) * 2; }
    CHECK(ld_kl_f64(a, C, b, C, R, C, NULL, vals, NULL, NULL, NULL) == LD_OK, "kl rows");
    CHECK(ld_kl_f64(b, C, a, C, R, C, NULL, rv, NULL, NULL, NULL) == LD_OK, "kl reverse");
    CHECK(ld_sym_kl_f64(a, C, b, C, R, C, NULL, back, NULL, NULL, NULL) == LD_OK, "sym_kl");
    for (int i = 0; i < R; i++) {
        CHECK(fabs(vals[i] - ref_kl(a + i * C, b + i * C, C)) < 1e-13, "kl row %d", i);
        CHECK(fabs(back[i] - vals[i] - rv[i]) < 1e-13, "sym_kl = kl + reverse kl, row %d", i);
    }
    CHECK(ld_sigmoid_kl_f64(a, C, b, C, R, C, NULL, vals, NULL, NULL, NULL) == LD_OK, "sigmoid_kl");
    for (int i = 0; i < R; i++)
        CHECK(fabs(vals[i] - ref_sigmoid_kl(a + i * C, b + i * C, C)) < 1e-12, "sigmoid_kl row %d", i);

    /* strided rows: every other row of a 6-row buffer */
    double wide[2 * R * C];
    for (int i = 0; i < R; i++) memcpy(wide + 2 * i * C, a + i * C, sizeof(double) * C);
    double strided[R];
    CHECK(ld_kl_f64(wide, 2 * C, b, C, R, C, NULL, strided, NULL, NULL, NULL) == LD_OK, "strided");
    ld_kl_f64(a, C, b, C, R, C, NULL, vals, NULL, NULL, NULL);
    for (int i = 0; i < R; i++) CHECK(strided[i] == vals[i], "strided row %d equals contiguous", i);

    /* float32, reductions, mask broadcast with stride 0 */
    float af[R * C], bf[R * C], vf[R];
    for (int i = 0; i < R * C; i++) { af[i] = (float)a[i]; bf[i] = (float)b[i]; }
    ld_options o = ld_options_default();
    o.reduction = LD_REDUCTION_MEAN;
    double mean = 0, sum = 0;
    CHECK(ld_js_f32(af, C, bf, C, R, C, &o, NULL, &mean, NULL, NULL) == LD_OK, "js mean");
    o.reduction = LD_REDUCTION_NONE;
    CHECK(ld_js_f32(af, C, bf, C, R, C, &o, vf, &sum, NULL, NULL) == LD_OK, "js none");
    CHECK(fabs(mean - sum / R) < 1e-12, "mean = sum / rows");
    uint8_t keep[C] = {1, 1, 0, 1, 0, 1, 1};
    o.mask = keep;
    o.mask_stride = 0;
    double masked = 0, ref = 0;
    CHECK(ld_kl_f64(a, C, b, C, 1, C, &o, NULL, &masked, NULL, NULL) == LD_OK, "masked kl");
    double am[5], bm[5];
    for (int i = 0, j = 0; i < C; i++) if (keep[i]) { am[j] = a[i]; bm[j] = b[i]; j++; }
    ref = ref_kl(am, bm, 5);
    CHECK(fabs(masked - ref) < 1e-13, "mask excludes classes: %.17g vs %.17g", masked, ref);
}

static void test_gradients(void) {
    enum { C = 5 };
    double s[C] = {0.3, -1.2, 2.0, 0.7, -0.4}, t[C] = {0.1, -0.8, 1.5, 1.1, -0.9};
    double gs[C], gt[C], r;
    ld_options o = ld_options_default();
    o.temperature = 1.7;
    typedef ld_status (*fn)(const double *, size_t, const double *, size_t, size_t, size_t, const ld_options *, double *, double *, double *, double *);
    fn fns[5] = {ld_kl_f64, ld_sym_kl_f64, ld_js_f64, ld_sigmoid_kl_f64, ld_sigmoid_sym_kl_f64};
    for (int k = 0; k < 5; k++) {
        CHECK(fns[k](s, C, t, C, 1, C, &o, NULL, &r, gs, gt) == LD_OK, "grad call %d", k);
        for (int i = 0; i < C; i++) {
            double h = 1e-6, sp[C], sm[C], up, dn;
            memcpy(sp, s, sizeof s); memcpy(sm, s, sizeof s);
            sp[i] += h; sm[i] -= h;
            fns[k](sp, C, t, C, 1, C, &o, NULL, &up, NULL, NULL);
            fns[k](sm, C, t, C, 1, C, &o, NULL, &dn, NULL, NULL);
            CHECK(fabs((up - dn) / (2 * h) - gs[i]) < 1e-7, "fn %d d/ds[%d]", k, i);
            double tp[C], tm[C];
            memcpy(tp, t, sizeof t); memcpy(tm, t, sizeof t);
            tp[i] += h; tm[i] -= h;
            fns[k](s, C, tp, C, 1, C, &o, NULL, &up, NULL, NULL);
            fns[k](s, C, tm, C, 1, C, &o, NULL, &dn, NULL, NULL);
            CHECK(fabs((up - dn) / (2 * h) - gt[i]) < 1e-7, "fn %d d/dt[%d]", k, i);
        }
    }
}

static void test_bad_arguments(void) {
    double s[8] = {0}, t[8] = {0}, r;
    ld_options o = ld_options_default();
    CHECK(ld_kl_f64(NULL, 4, t, 4, 2, 4, NULL, NULL, &r, NULL, NULL) == LD_NULL_POINTER, "NULL s");
    CHECK(strlen(ld_last_error_message()) > 0, "a message after a failure");
    CHECK(ld_kl_f64(s, 4, NULL, 4, 2, 4, NULL, NULL, &r, NULL, NULL) == LD_NULL_POINTER, "NULL t");
    CHECK(ld_kl_f64(s, 3, t, 4, 2, 4, NULL, NULL, &r, NULL, NULL) == LD_BAD_SHAPE, "stride < cols");
    CHECK(strstr(ld_last_error_message(), "stride 3") != NULL, "message names the stride: %s", ld_last_error_message());
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 0, NULL, NULL, &r, NULL, NULL) == LD_BAD_SHAPE, "zero classes");
    CHECK(ld_kl_f64(s, SIZE_MAX / 2, t, 4, 3, 4, NULL, NULL, &r, NULL, NULL) == LD_BAD_SHAPE, "size overflow");
    CHECK(ld_kl_f64(s, 4, t, 4, SIZE_MAX, 4, NULL, NULL, &r, NULL, NULL) == LD_BAD_SHAPE, "rows overflow");
    CHECK(ld_kl_f64((const double *)((const char *)s + 1), 4, t, 4, 1, 4, NULL, NULL, &r, NULL, NULL) == LD_MISALIGNED, "misaligned");
    /* a misaligned result pointer is refused too (it was written through unchecked) */
    double two[2];
    CHECK(ld_kl_f64(s, 4, t, 4, 1, 4, NULL, NULL, (double *)((char *)two + 1), NULL, NULL) == LD_MISALIGNED, "misaligned result");
    o.temperature = -1;
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "temperature < 0");
    o.temperature = NAN;
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "temperature NaN");
    o = ld_options_default();
    o.beta = 1.5;
    CHECK(ld_js_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "beta > 1");
    o = ld_options_default();
    o.reduction = 9;
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "unknown reduction");
    o = ld_options_default();
    double w[4] = {1, -1, 1, 1};
    o.weights = w;
    CHECK(ld_sigmoid_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "negative weight");
    w[1] = 1;
    CHECK(ld_sigmoid_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_OK, "weights ok");
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_ARGUMENT, "weights on softmax kl");
    o = ld_options_default();
    uint8_t m[4] = {1, 1, 1, 1};
    o.mask = m;
    o.mask_stride = 2;
    CHECK(ld_kl_f64(s, 4, t, 4, 2, 4, &o, NULL, &r, NULL, NULL) == LD_BAD_SHAPE, "mask stride < cols");
    /* nothing to compute: no rows, NULL inputs are fine */
    r = -1;
    CHECK(ld_kl_f64(NULL, 4, NULL, 4, 0, 4, NULL, NULL, &r, NULL, NULL) == LD_OK && r == 0, "zero rows");
    CHECK(strcmp(ld_status_message(LD_BAD_SHAPE), "sizes or strides do not fit together") == 0, "status message");
    CHECK(strcmp(ld_status_message(77), "unknown status") == 0, "unknown status message");
}

static void test_conventions_and_threads(void) {
    double s[3] = {0.5, -INFINITY, 1.0}, t[3] = {0.2, -INFINITY, 0.8}, g[3], v;
    CHECK(ld_kl_f64(s, 3, t, 3, 1, 3, NULL, &v, NULL, g, NULL) == LD_OK && isfinite(v) && g[1] == 0, "-inf in both rows");
    double t2[3] = {0.2, 0.1, -INFINITY};
    CHECK(ld_kl_f64(t, 3, t2, 3, 1, 3, NULL, &v, NULL, g, NULL) == LD_OK && isinf(v) && isnan(g[0]), "support mismatch");
    CHECK(ld_set_num_threads(2) == LD_OK && ld_get_num_threads() == 2, "threads");
    enum { R = 64, C = 4096 };
    float *a = malloc(sizeof(float) * R * C), *b = malloc(sizeof(float) * R * C);
    for (int i = 0; i < R * C; i++) { a[i] = (float)sin(i * 0.01); b[i] = (float)sin(i * 0.01 + 1e-3); }
    double one, two;
    ld_sym_kl_f32(a, C, b, C, R, C, NULL, NULL, &two, NULL, NULL);
    ld_set_num_threads(1);
    ld_sym_kl_f32(a, C, b, C, R, C, NULL, NULL, &one, NULL, NULL);
    CHECK(one == two, "bit-identical across thread counts: %.17g vs %.17g", one, two);
    ld_set_num_threads(0);
    free(a);
    free(b);
    CHECK(strlen(ld_version()) >= 5, "version");
}

/* Issue 17 (14): an output that shares memory with an input or another output is LD_BAD_ARGUMENT,
 * for every divergence and a loss, and nothing is written; buffers that only look close (an output
 * in the gap between the rows of a strided input) are fine. */
static void test_overlapping_outputs(void) {
    enum { R = 2, C = 3 };
    double buf[R * C + R + 1], t[R * C], g[R * C], r;
    for (int i = 0; i < R * C; i++) { buf[i] = 0.25 * i; t[i] = 0.5 - 0.125 * i; }
    ld_status (*fns[])(const double *, size_t, const double *, size_t, size_t, size_t, const ld_options *, double *,
                       double *, double *, double *) = {ld_kl_f64, ld_sym_kl_f64, ld_js_f64, ld_sigmoid_kl_f64,
                                                          ld_sigmoid_sym_kl_f64};
    for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
        double keep[R * C];
        memcpy(keep, buf, sizeof keep);
        /* values = s + cols: the second row of s */
        CHECK(fns[k](buf, C, t, C, R, C, NULL, buf + C, NULL, NULL, NULL) == LD_BAD_ARGUMENT, "fn %zu: values inside s", k);
        CHECK(strstr(ld_last_error_message(), "overlaps") != NULL, "message: %s", ld_last_error_message());
        CHECK(memcmp(keep, buf, sizeof keep) == 0, "fn %zu: s unchanged", k);
        CHECK(fns[k](buf, C, t, C, R, C, NULL, NULL, NULL, NULL, buf) == LD_BAD_ARGUMENT, "fn %zu: grad_t = s", k);
        CHECK(fns[k](buf, C, t, C, R, C, NULL, NULL, buf + R * C - 1, NULL, NULL) == LD_BAD_ARGUMENT, "fn %zu: result in s", k);
        CHECK(fns[k](buf, C, t, C, R, C, NULL, NULL, NULL, g, g) == LD_BAD_ARGUMENT, "fn %zu: grad_s = grad_t", k);
        CHECK(fns[k](buf, C, t, C, R, C, NULL, buf + R * C, &r, g, NULL) == LD_OK, "fn %zu: values right after s", k);
    }
    /* an output in the gap of a strided input (row stride 2C) is not an overlap */
    double wide[R * 2 * C];
    for (int i = 0; i < R * 2 * C; i++) wide[i] = 0.1 * i;
    double v[R];
    CHECK(ld_kl_f64(wide, 2 * C, t, C, R, C, NULL, wide + C, NULL, NULL, NULL) == LD_OK, "values in the gap of s");
    CHECK(ld_kl_f64(wide, 2 * C, t, C, R, C, NULL, v, NULL, NULL, NULL) == LD_OK && v[0] == wide[C] && v[1] == wide[C + 1],
          "the same values written in the gap: %g %g", v[0], v[1]);
    CHECK(ld_kl_f64(wide, 2 * C, t, C, R, C, NULL, wide + 2 * C - 1, NULL, NULL, NULL) == LD_BAD_ARGUMENT,
          "values running into the second row of s");
    /* a loss: grad over its own logits */
    int64_t labels[R] = {0, 2};
    CHECK(ld_softmax_ce_f64(buf, C, R, C, labels, NULL, 0, NULL, NULL, NULL, buf) == LD_BAD_ARGUMENT, "softmax_ce grad = logits");
    CHECK(ld_softmax_ce_f64(buf, C, R, C, labels, NULL, 0, NULL, NULL, (double *)(void *)labels, NULL) == LD_BAD_ARGUMENT,
          "softmax_ce result over the labels");
}

int main(void) {
    test_overlapping_outputs();
    test_values();
    test_gradients();
    test_bad_arguments();
    test_conventions_and_threads();
    return checks_summary();
}
