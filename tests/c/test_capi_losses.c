/* C ABI tests of the losses in liblogitdiv: values against references computed independently here
 * with libm (long double where it matters), gradients against central finite differences for every
 * loss, float32 against float64, and the exact status of every bad argument.
 * Built and run (also under valgrind) by tests/test_capi.py. Exit code 0 = all checks passed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logitdiv.h"
#include "common.h"

/* |a − b| ≤ tol · max(1, |b|) */
static int near(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(1.0, fabs(b)); }

/* ---------------------------------------------------------------------------------------------
 * Independent references (long double, textbook forms). */

static long double lse_l(const double *x, size_t n, double tau) {
    long double m = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++) if (x[i] / tau > m) m = x[i] / tau;
    for (size_t i = 0; i < n; i++) z += expl(x[i] / tau - m);
    return m + logl(z);
}

/* −Σ t_i log p_i, p = softmax(s/τ), t = (1−ε)·onehot(y) + ε/C */
static double ref_ce(const double *s, size_t n, int64_t y, double eps, double tau) {
    long double l = lse_l(s, n, tau), mean = 0;
    for (size_t i = 0; i < n; i++) mean += s[i] / tau;
    mean /= n;
    return (double)((1 - eps) * (l - s[y] / tau) + eps * (l - mean));
}

/* −Σ y_i log p_i */
static double ref_ce_soft(const double *s, const double *y, size_t n) {
    long double l = lse_l(s, n, 1.0), v = 0;
    for (size_t i = 0; i < n; i++) v += y[i] * (l - s[i]);
    return (double)v;
}

/* KL(softmax(a/τ) ‖ softmax(b/τ)) */
static double ref_kl(const double *a, const double *b, size_t n, double tau) {
    long double la = lse_l(a, n, tau), lb = lse_l(b, n, tau), kl = 0;
    for (size_t i = 0; i < n; i++) {
        long double lp = a[i] / tau - la, lq = b[i] / tau - lb;
        kl += expl(lp) * (lp - lq);
    }
    return (double)kl;
}

static long double softplus_l(long double x) { return x > 0 ? x + log1pl(expl(-x)) : log1pl(expl(x)); }

/* Σ w_i [pw_i y_i softplus(−x_i) + (1 − y_i) softplus(x_i)] */
static double ref_bce(const double *s, const double *y, const double *pw, const double *w, size_t n) {
    long double v = 0;
    for (size_t i = 0; i < n; i++)
        v += (w ? w[i] : 1) * ((pw ? pw[i] : 1) * y[i] * softplus_l(-s[i]) + (1 - y[i]) * softplus_l(s[i]));
    return (double)v;
}

/* log(1 + Σ (1−y_i) e^{s_i}) + log(1 + Σ y_i e^{−s_i}) over the classes with present[i] (NULL: all) */
static double ref_multilabel(const double *s, const double *y, const uint8_t *present, size_t n) {
    long double zn = 1, zp = 1;
    for (size_t i = 0; i < n; i++) {
        if (present && !present[i]) continue;
        zn += (1 - y[i]) * expl(s[i]);
        zp += y[i] * expl(-s[i]);
    }
    return (double)(logl(zn) + logl(zp));
}

/* −log(γ + (1−γ) p_y)/(1−γ) */
static double ref_gamma(const double *s, size_t n, int64_t y, double gamma) {
    long double p = expl(s[y] - lse_l(s, n, 1.0));
    return (double)(-logl(gamma + (1 - gamma) * p) / (1 - gamma));
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }

/* R-Drop, softmax kind: CE(s1, y) + CE(s2, y) + α/2 (KL(p1‖p2) + KL(p2‖p1)) */
static double ref_rdrop_softmax(const double *s1, const double *s2, int64_t y, size_t n, double alpha) {
    return ref_ce(s1, n, y, 0, 1) + ref_ce(s2, n, y, 0, 1) + alpha / 2 * (ref_kl(s1, s2, n, 1) + ref_kl(s2, s1, n, 1));
}

/* R-Drop, sigmoid kind: multilabel CE of s1 and s2 + α/2 Σ (σ(s1) − σ(s2))(s1 − s2) */
static double ref_rdrop_sigmoid(const double *s1, const double *s2, const double *y, size_t n, double alpha) {
    double kl = 0;
    for (size_t j = 0; j < n; j++) kl += (sigmoid(s1[j]) - sigmoid(s2[j])) * (s1[j] - s2[j]);
    return ref_multilabel(s1, y, NULL, n) + ref_multilabel(s2, y, NULL, n) + alpha / 2 * kl;
}

/* ---------------------------------------------------------------------------------------------
 * Central finite differences of `result` against the gradients a loss returns. */

typedef struct {
    size_t rows, cols;
    const int64_t *labels;
    const double *probs;
    const int64_t *positives;
    size_t npos;
    size_t batch, heads, len;
    uint32_t layout;
    const uint8_t *tokens;
    const ld_options *o;
} ctx_t;

typedef ld_status (*loss_fn)(const ctx_t *c, const double *x1, const double *x2, double *r, double *g1, double *g2);

static void fd_check(const char *name, loss_fn f, const ctx_t *c, double *x1, double *x2, size_t n, double tol) {
    double *g1 = calloc(n, sizeof(double)), *g2 = calloc(n, sizeof(double)), r;
    CHECK(f(c, x1, x2, &r, g1, x2 ? g2 : NULL) == LD_OK, "%s: gradient call: %s", name, ld_last_error_message());
    CHECK(isfinite(r), "%s: finite value", name);
    for (int which = 0; which < (x2 ? 2 : 1); which++) {
        double *x = which ? x2 : x1, *g = which ? g2 : g1;
        for (size_t i = 0; i < n; i++) {
            double keep = x[i], h = 1e-6 * fmax(1.0, fabs(keep)), up, dn;
            x[i] = keep + h;
            f(c, x1, x2, &up, NULL, NULL);
            x[i] = keep - h;
            f(c, x1, x2, &dn, NULL, NULL);
            x[i] = keep;
            double fd = (up - dn) / (2 * h);
            CHECK(fabs(fd - g[i]) <= tol * fmax(1.0, fabs(fd)), "%s: d/dx%d[%zu]: analytic %.12g, finite difference %.12g",
                  name, which + 1, i, g[i], fd);
        }
    }
    free(g1);
    free(g2);
}

static ld_status f_softmax(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    return ld_softmax_ce_f64(x, c->cols, c->rows, c->cols, c->labels, c->probs, c->cols, c->o, NULL, r, g);
}
static ld_status f_bce(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    return ld_bce_f64(x, c->cols, c->rows, c->cols, c->probs, c->cols, c->o, NULL, r, g);
}
static ld_status f_multilabel(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    return ld_multilabel_ce_f64(x, c->cols, c->rows, c->cols, c->probs, c->cols, c->o, NULL, r, g);
}
static ld_status f_sparse(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    return ld_sparse_multilabel_ce_f64(x, c->cols, c->rows, c->cols, c->positives, c->npos, c->npos, c->o, NULL, r, g);
}
static ld_status f_gp(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    size_t width = c->layout == LD_POSITIVES_SPANS ? 2 * c->npos : c->npos;
    return ld_globalpointer_ce_f64(x, c->len * c->len, c->batch, c->heads, c->len, c->positives, width, c->npos, c->layout,
                                   c->tokens, c->len, c->o, NULL, r, g);
}
static ld_status f_gamma(const ctx_t *c, const double *x, const double *x2, double *r, double *g, double *g2) {
    (void)x2; (void)g2;
    return ld_gamma_ce_f64(x, c->cols, c->rows, c->cols, c->labels, c->o, NULL, r, g);
}
static ld_status f_kd(const ctx_t *c, const double *s, const double *t, double *r, double *gs, double *gt) {
    return ld_kd_loss_f64(s, c->cols, t, c->cols, c->rows, c->cols, c->labels, c->probs, c->cols, c->o, NULL, r, gs, gt);
}
static ld_status f_rdrop(const ctx_t *c, const double *a, const double *b, double *r, double *ga, double *gb) {
    return ld_rdrop_loss_f64(a, c->cols, b, c->cols, c->rows, c->cols, c->labels, c->probs, c->cols, c->o, NULL, r, ga, gb);
}

/* ---------------------------------------------------------------------------------------------
 * Test data: R rows of C classes. */

enum { R = 4, C = 6 };
static double S[R * C], T[R * C], P[R * C], Y01[R * C], YSOFT[R * C];
static const int64_t LABELS[R] = {2, 0, -100, 5};

static void make_data(void) {
    for (int i = 0; i < R * C; i++) {
        S[i] = 2.5 * sin(1.3 * i + 0.2);
        T[i] = 2.0 * cos(0.7 * i) + 0.3;
        YSOFT[i] = 0.5 + 0.45 * sin(2.1 * i);        /* in (0, 1) */
        Y01[i] = (i % 4 == 1 || i % 7 == 3) ? 1 : 0; /* dense 0/1 labels */
    }
    for (int r = 0; r < R; r++) { /* probability rows summing to 1 */
        double z = 0;
        for (int i = 0; i < C; i++) z += P[r * C + i] = 1.0 + sin(0.9 * (r * C + i));
        for (int i = 0; i < C; i++) P[r * C + i] /= z;
    }
}

static void to_f32(float *out, const double *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)in[i];
}

/* ---------------------------------------------------------------------------------------------
 * softmax_ce */

static void test_softmax_ce(void) {
    double v[R], r, sum = 0;
    ld_options o = ld_options_default();
    CHECK(ld_softmax_ce_f64(S, C, R, C, LABELS, NULL, 0, &o, v, &r, NULL) == LD_OK, "softmax_ce: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = LABELS[i] == -100 ? 0 : ref_ce(S + i * C, C, LABELS[i], 0, 1);
        CHECK(near(v[i], ref, 1e-13), "softmax_ce row %d: %.17g vs %.17g", i, v[i], ref);
        sum += ref;
    }
    CHECK(near(r, sum, 1e-13), "softmax_ce result is the sum for NONE");
    o.reduction = LD_REDUCTION_MEAN;
    CHECK(ld_softmax_ce_f64(S, C, R, C, LABELS, NULL, 0, &o, NULL, &r, NULL) == LD_OK && near(r, sum / 3, 1e-13),
          "softmax_ce MEAN over the 3 rows not ignored: %.17g vs %.17g", r, sum / 3);
    o.reduction = LD_REDUCTION_BATCHMEAN;
    CHECK(ld_softmax_ce_f64(S, C, R, C, LABELS, NULL, 0, &o, NULL, &r, NULL) == LD_OK && near(r, sum / 4, 1e-13),
          "softmax_ce BATCHMEAN over all 4 rows");

    /* label smoothing and temperature */
    o = ld_options_default();
    o.label_smoothing = 0.1;
    o.temperature = 1.7;
    CHECK(ld_softmax_ce_f64(S, C, R, C, LABELS, NULL, 0, &o, v, NULL, NULL) == LD_OK, "softmax_ce ε, τ");
    for (int i = 0; i < R; i++) {
        double ref = LABELS[i] == -100 ? 0 : ref_ce(S + i * C, C, LABELS[i], 0.1, 1.7);
        CHECK(near(v[i], ref, 1e-13), "softmax_ce ε=0.1 τ=1.7 row %d: %.17g vs %.17g", i, v[i], ref);
    }

    /* probabilities, strided logits (every other row of a wider buffer) */
    double wide[R * 2 * C];
    for (int i = 0; i < R; i++) memcpy(wide + i * 2 * C, S + i * C, sizeof(double) * C);
    CHECK(ld_softmax_ce_f64(wide, 2 * C, R, C, NULL, P, C, NULL, v, NULL, NULL) == LD_OK, "softmax_ce probabilities");
    for (int i = 0; i < R; i++)
        CHECK(near(v[i], ref_ce_soft(S + i * C, P + i * C, C), 1e-13), "softmax_ce probabilities row %d", i);

    /* ignore_index: changed, and the ignored row's gradient is zero */
    int64_t lab[R] = {2, 7, 0, 5};
    double g[R * C];
    o = ld_options_default();
    o.ignore_index = 7;
    CHECK(ld_softmax_ce_f64(S, C, R, C, lab, NULL, 0, &o, v, NULL, g) == LD_OK, "softmax_ce ignore_index 7");
    int zero = 1;
    for (int i = 0; i < C; i++) zero &= g[C + i] == 0;
    CHECK(v[1] == 0 && zero, "the row labelled ignore_index gives 0 and a zero gradient");
    CHECK(near(v[2], ref_ce(S + 2 * C, C, 0, 0, 1), 1e-13), "row 2 is read with ignore_index 7");

    /* row mask and class mask (one row broadcast with stride 0) */
    uint8_t keep_rows[R] = {1, 0, 1, 1}, keep[C] = {1, 0, 1, 1, 0, 1};
    o = ld_options_default();
    o.row_mask = keep_rows;
    o.mask = keep;
    o.mask_stride = 0;
    int64_t lab2[R] = {0, 1, 2, 5};
    CHECK(ld_softmax_ce_f64(S, C, R, C, lab2, NULL, 0, &o, v, NULL, g) == LD_OK, "softmax_ce masks: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double kept[C];
        int n = 0, y = 0;
        for (int j = 0; j < C; j++) if (keep[j]) { if (j == lab2[i]) y = n; kept[n++] = S[i * C + j]; }
        double ref = keep_rows[i] ? ref_ce(kept, n, y, 0, 1) : 0;
        CHECK(near(v[i], ref, 1e-13), "softmax_ce masked row %d: %.17g vs %.17g", i, v[i], ref);
        CHECK(g[i * C + 1] == 0 && g[i * C + 4] == 0, "masked classes have zero gradient, row %d", i);
    }
    o.reduction = LD_REDUCTION_MEAN;
    double mean;
    CHECK(ld_softmax_ce_f64(S, C, R, C, lab2, NULL, 0, &o, NULL, &mean, NULL) == LD_OK, "softmax_ce masks, mean");
    CHECK(near(mean, (v[0] + v[2] + v[3]) / 3, 1e-13), "MEAN counts the rows the row mask keeps: %.17g", mean);

    /* gradients */
    ctx_t c = {.rows = R, .cols = C, .labels = LABELS};
    double x[R * C];
    memcpy(x, S, sizeof x);
    o = ld_options_default();
    o.label_smoothing = 0.1;
    o.temperature = 1.7;
    o.reduction = LD_REDUCTION_MEAN;
    c.o = &o;
    fd_check("softmax_ce labels ε τ mean", f_softmax, &c, x, NULL, R * C, 1e-7);
    o = ld_options_default();
    o.reduction = LD_REDUCTION_BATCHMEAN;
    c.labels = NULL;
    c.probs = P;
    fd_check("softmax_ce probabilities batchmean", f_softmax, &c, x, NULL, R * C, 1e-7);

    /* float32 against float64 */
    float sf[R * C], vf[R], gf[R * C];
    double v64[R], g64[R * C];
    to_f32(sf, S, R * C);
    double s32[R * C];
    for (int i = 0; i < R * C; i++) s32[i] = sf[i];
    CHECK(ld_softmax_ce_f32(sf, C, R, C, LABELS, NULL, 0, NULL, vf, NULL, gf) == LD_OK, "softmax_ce_f32");
    ld_softmax_ce_f64(s32, C, R, C, LABELS, NULL, 0, NULL, v64, NULL, g64);
    for (int i = 0; i < R; i++) CHECK(near(vf[i], v64[i], 1e-6), "softmax_ce f32 row %d: %g vs %g", i, vf[i], v64[i]);
    for (int i = 0; i < R * C; i++) CHECK(fabs(gf[i] - g64[i]) < 1e-6, "softmax_ce f32 grad %d", i);
    float pf[R * C];
    to_f32(pf, P, R * C);
    CHECK(ld_softmax_ce_f32(sf, C, R, C, NULL, pf, C, NULL, vf, NULL, NULL) == LD_OK, "softmax_ce_f32 probabilities");
    for (int i = 0; i < R; i++) CHECK(near(vf[i], ref_ce_soft(S + i * C, P + i * C, C), 1e-5), "softmax_ce f32 probabilities row %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * bce and multilabel_ce */

static void test_bce_multilabel(void) {
    double v[R], r, g[R * C];
    double pw[C] = {1.0, 2.0, 0.5, 3.0, 1.0, 0.0}, w[C] = {1.0, 0.5, 2.0, 1.0, 0.0, 1.5};
    CHECK(ld_bce_f64(S, C, R, C, YSOFT, C, NULL, v, &r, NULL) == LD_OK, "bce");
    for (int i = 0; i < R; i++) CHECK(near(v[i], ref_bce(S + i * C, YSOFT + i * C, NULL, NULL, C), 1e-13), "bce row %d", i);
    ld_options o = ld_options_default();
    o.pos_weight = pw;
    o.pos_weight_stride = 0;
    o.weights = w;
    o.weights_stride = 0;
    CHECK(ld_bce_f64(S, C, R, C, YSOFT, C, &o, v, NULL, NULL) == LD_OK, "bce pos_weight weights: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = ref_bce(S + i * C, YSOFT + i * C, pw, w, C);
        CHECK(near(v[i], ref, 1e-13), "bce pos_weight, weights row %d: %.17g vs %.17g", i, v[i], ref);
    }
    /* closed form for one element: softplus(x) − y x with pos_weight 1 */
    double x1 = 0.7, y1 = 0.25, v1;
    CHECK(ld_bce_f64(&x1, 1, 1, 1, &y1, 1, NULL, &v1, NULL, NULL) == LD_OK, "bce one element");
    CHECK(near(v1, log1p(exp(x1)) - y1 * x1, 1e-15), "bce closed form: %.17g", v1);

    ctx_t c = {.rows = R, .cols = C, .probs = YSOFT, .o = &o};
    double x[R * C];
    memcpy(x, S, sizeof x);
    o.reduction = LD_REDUCTION_SUM;
    fd_check("bce pos_weight weights sum", f_bce, &c, x, NULL, R * C, 1e-7);

    /* multilabel: soft and 0/1 labels */
    CHECK(ld_multilabel_ce_f64(S, C, R, C, YSOFT, C, NULL, v, NULL, NULL) == LD_OK, "multilabel_ce");
    for (int i = 0; i < R; i++) CHECK(near(v[i], ref_multilabel(S + i * C, YSOFT + i * C, NULL, C), 1e-13), "multilabel soft row %d", i);
    CHECK(ld_multilabel_ce_f64(S, C, R, C, Y01, C, NULL, v, NULL, g) == LD_OK, "multilabel_ce 0/1");
    for (int i = 0; i < R; i++) {
        long double zn = 1, zp = 1; /* log(1 + Σ_neg e^s) + log(1 + Σ_pos e^−s) */
        for (int j = 0; j < C; j++) { if (Y01[i * C + j]) zp += expl(-S[i * C + j]); else zn += expl(S[i * C + j]); }
        CHECK(near(v[i], (double)(logl(zn) + logl(zp)), 1e-13), "multilabel 0/1 closed form row %d", i);
    }
    ld_options om = ld_options_default();
    om.reduction = LD_REDUCTION_MEAN;
    fd_check("multilabel_ce soft mean", f_multilabel, &(ctx_t){.rows = R, .cols = C, .probs = YSOFT, .o = &om}, x, NULL, R * C, 1e-7);

    float sf[R * C], yf[R * C], vf[R];
    to_f32(sf, S, R * C);
    to_f32(yf, YSOFT, R * C);
    CHECK(ld_bce_f32(sf, C, R, C, yf, C, NULL, vf, NULL, NULL) == LD_OK, "bce_f32");
    for (int i = 0; i < R; i++) CHECK(near(vf[i], ref_bce(S + i * C, YSOFT + i * C, NULL, NULL, C), 1e-5), "bce f32 row %d", i);
    CHECK(ld_multilabel_ce_f32(sf, C, R, C, yf, C, NULL, vf, NULL, NULL) == LD_OK, "multilabel_ce_f32");
    for (int i = 0; i < R; i++) CHECK(near(vf[i], ref_multilabel(S + i * C, YSOFT + i * C, NULL, C), 1e-5), "multilabel f32 row %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * sparse_multilabel_ce */

static void test_sparse(void) {
    enum { K = 3 };
    int64_t pos[R * K] = {1, 3, -1, /**/ -1, -1, -1, /**/ 5, 0, 2, /**/ 4, -1, 1};
    double dense[R * C] = {0}, v[R], vd[R], r;
    for (int i = 0; i < R * K; i++) if (pos[i] != -1) dense[(i / K) * C + pos[i]] = 1;
    CHECK(ld_sparse_multilabel_ce_f64(S, C, R, C, pos, K, K, NULL, v, &r, NULL) == LD_OK, "sparse: %s", ld_last_error_message());
    CHECK(ld_multilabel_ce_f64(S, C, R, C, dense, C, NULL, vd, NULL, NULL) == LD_OK, "dense");
    for (int i = 0; i < R; i++) {
        double ref = ref_multilabel(S + i * C, dense + i * C, NULL, C);
        CHECK(near(v[i], ref, 1e-13), "sparse row %d: %.17g vs %.17g", i, v[i], ref);
        CHECK(near(v[i], vd[i], 1e-13), "sparse = dense multilabel, row %d", i);
    }
    /* another pad value, and a wider stride */
    int64_t pos2[R * 4];
    for (int i = 0; i < R; i++) for (int k = 0; k < 4; k++) pos2[i * 4 + k] = k < K ? (pos[i * K + k] == -1 ? 99 : pos[i * K + k]) : 99;
    ld_options o = ld_options_default();
    o.pad = 99;
    double v2[R];
    CHECK(ld_sparse_multilabel_ce_f64(S, C, R, C, pos2, 4, K, &o, v2, NULL, NULL) == LD_OK, "sparse pad 99: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) CHECK(v2[i] == v[i], "pad 99, stride 4: row %d", i);
    /* no positives at all (npos = 0, NULL positives): log(1 + Σ e^s) */
    CHECK(ld_sparse_multilabel_ce_f64(S, C, 1, C, NULL, 0, 0, NULL, v2, NULL, NULL) == LD_OK, "sparse npos 0");
    long double z = 1;
    for (int j = 0; j < C; j++) z += expl(S[j]);
    CHECK(near(v2[0], (double)logl(z), 1e-13), "sparse npos 0 value");

    double x[R * C];
    memcpy(x, S, sizeof x);
    o = ld_options_default();
    o.reduction = LD_REDUCTION_MEAN;
    fd_check("sparse_multilabel_ce mean", f_sparse, &(ctx_t){.rows = R, .cols = C, .positives = pos, .npos = K, .o = &o}, x, NULL,
             R * C, 1e-7);

    float sf[R * C], vf[R];
    to_f32(sf, S, R * C);
    CHECK(ld_sparse_multilabel_ce_f32(sf, C, R, C, pos, K, K, NULL, vf, NULL, NULL) == LD_OK, "sparse f32");
    for (int i = 0; i < R; i++) CHECK(near(vf[i], v[i], 1e-5), "sparse f32 row %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * globalpointer_ce: logits (B, H, L, L) */

enum { GB = 2, GH = 2, GL = 4, GK = 3 };

static void test_globalpointer(void) {
    double s[GB * GH * GL * GL], v[GB * GH], vf[GB * GH], r;
    for (int i = 0; i < GB * GH * GL * GL; i++) s[i] = 2.0 * sin(0.37 * i + 1.0);
    uint8_t tokens[GB * GL] = {1, 1, 1, 1, /**/ 1, 1, 1, 0};
    /* (start, end) spans, padding (-1, -1) */
    int64_t spans[GB * GH * GK * 2] = {
        0, 1, 2, 3, -1, -1, /* b0 h0 */
        1, 1, -1, -1, -1, -1, /* b0 h1 */
        0, 2, 1, 2, 2, 2, /* b1 h0 */
        -1, -1, -1, -1, -1, -1, /* b1 h1: none */
    };
    int64_t flat[GB * GH * GK];
    for (int i = 0; i < GB * GH * GK; i++)
        flat[i] = spans[2 * i] == -1 ? -1 : spans[2 * i] * GL + spans[2 * i + 1];
    ld_options o = ld_options_default();
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, tokens, GL, &o, v, &r, NULL), LD_OK, NULL);
    double sum = 0;
    for (int b = 0; b < GB; b++)
        for (int h = 0; h < GH; h++) {
            int row = b * GH + h;
            double y[GL * GL] = {0};
            uint8_t present[GL * GL];
            for (int i = 0; i < GL; i++)
                for (int j = 0; j < GL; j++) present[i * GL + j] = i <= j && tokens[b * GL + i] && tokens[b * GL + j];
            for (int k = 0; k < GK; k++) if (flat[row * GK + k] != -1) y[flat[row * GK + k]] = 1;
            double ref = ref_multilabel(s + row * GL * GL, y, present, GL * GL);
            CHECK(near(v[row], ref, 1e-13), "globalpointer (b %d, h %d): %.17g vs %.17g", b, h, v[row], ref);
            sum += ref;
        }
    CHECK(near(r, sum, 1e-13), "globalpointer NONE result is the sum");
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, flat, GK, GK, LD_POSITIVES_FLAT, tokens, GL, &o, vf, NULL, NULL), LD_OK, NULL);
    for (int i = 0; i < GB * GH; i++) CHECK(vf[i] == v[i], "flat indices = spans, row %d", i);
    o.reduction = LD_REDUCTION_SUM_HEADS_MEAN_BATCH;
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, tokens, GL, &o, NULL, &r, NULL), LD_OK, NULL);
    CHECK(near(r, sum / GB, 1e-13), "GPLinker reduction: sum / B = %.17g, got %.17g", sum / GB, r);
    o.reduction = LD_REDUCTION_BATCHMEAN;
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, tokens, GL, &o, NULL, &r, NULL), LD_OK, NULL);
    CHECK(near(r, sum / (GB * GH), 1e-13), "bert4keras reduction: sum / (B·heads)");
    /* the token mask repeated for every batch with stride 0; no token mask */
    uint8_t one_row[GL] = {1, 1, 1, 0};
    double va[GB * GH], vb[GB * GH];
    o = ld_options_default();
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, one_row, 0, &o, va, NULL, NULL), LD_OK, NULL);
    CHECK(va[2] == v[2] && va[3] == v[3], "token mask with stride 0 repeats one row");
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, NULL, 0, &o, vb, NULL, NULL), LD_OK, NULL);
    CHECK(vb[0] == v[0] && vb[1] == v[1], "no token mask = all tokens kept");

    /* gradients, zero on the absent spans */
    double g[GB * GH * GL * GL];
    o.reduction = LD_REDUCTION_SUM_HEADS_MEAN_BATCH;
    EXPECT(ld_globalpointer_ce_f64(s, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, tokens, GL, &o, NULL, NULL, g), LD_OK, NULL);
    int zeros = 1;
    for (int b = 0; b < GB; b++)
        for (int h = 0; h < GH; h++)
            for (int i = 0; i < GL; i++)
                for (int j = 0; j < GL; j++)
                    if (i > j || !tokens[b * GL + i] || !tokens[b * GL + j]) zeros &= g[((b * GH + h) * GL + i) * GL + j] == 0;
    CHECK(zeros, "globalpointer gradient is 0 on the lower triangle and masked tokens");
    ctx_t c = {.batch = GB, .heads = GH, .len = GL, .positives = spans, .npos = GK, .layout = LD_POSITIVES_SPANS, .tokens = tokens, .o = &o};
    fd_check("globalpointer_ce sum_heads_mean_batch", f_gp, &c, s, NULL, GB * GH * GL * GL, 1e-7);
    o.reduction = LD_REDUCTION_MEAN;
    c.positives = flat;
    c.layout = LD_POSITIVES_FLAT;
    fd_check("globalpointer_ce flat mean", f_gp, &c, s, NULL, GB * GH * GL * GL, 1e-7);

    float sf[GB * GH * GL * GL], v32[GB * GH];
    to_f32(sf, s, GB * GH * GL * GL);
    EXPECT(ld_globalpointer_ce_f32(sf, GL * GL, GB, GH, GL, spans, 2 * GK, GK, LD_POSITIVES_SPANS, tokens, GL, NULL, v32, NULL, NULL), LD_OK, NULL);
    for (int i = 0; i < GB * GH; i++) CHECK(near(v32[i], v[i], 1e-5), "globalpointer f32 row %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * gamma_ce */

static void test_gamma(void) {
    double v[R], v0[R], g[R * C];
    ld_options o = ld_options_default();
    o.gamma = 0.3;
    CHECK(ld_gamma_ce_f64(S, C, R, C, LABELS, &o, v, NULL, NULL) == LD_OK, "gamma_ce: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = LABELS[i] == -100 ? 0 : ref_gamma(S + i * C, C, LABELS[i], 0.3);
        CHECK(near(v[i], ref, 1e-13), "gamma_ce γ=0.3 row %d: %.17g vs %.17g", i, v[i], ref);
    }
    /* γ = 0 is the softmax CE */
    CHECK(ld_gamma_ce_f64(S, C, R, C, LABELS, NULL, v, NULL, NULL) == LD_OK, "gamma_ce γ=0");
    CHECK(ld_softmax_ce_f64(S, C, R, C, LABELS, NULL, 0, NULL, v0, NULL, NULL) == LD_OK, "softmax_ce");
    for (int i = 0; i < R; i++) CHECK(near(v[i], v0[i], 1e-14), "gamma_ce(γ=0) = softmax_ce, row %d", i);

    double x[R * C];
    memcpy(x, S, sizeof x);
    o.gamma = 0.7;
    o.reduction = LD_REDUCTION_MEAN;
    fd_check("gamma_ce γ=0.7 mean", f_gamma, &(ctx_t){.rows = R, .cols = C, .labels = LABELS, .o = &o}, x, NULL, R * C, 1e-7);

    /* threshold b: value −max(b, r)·log p_y, gradient max(b, r)·(p − onehot(y)) (surrogate) */
    o = ld_options_default();
    o.gamma = 0.5;
    o.threshold = 0.6;
    CHECK(ld_gamma_ce_f64(S, C, R, C, LABELS, &o, v, NULL, g) == LD_OK, "gamma_ce threshold: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        if (LABELS[i] == -100) continue;
        long double l = lse_l(S + i * C, C, 1.0), py = expl(S[i * C + LABELS[i]] - l);
        double rr = (double)(py / (0.5 + 0.5 * py)), w = fmax(0.6, rr);
        CHECK(near(v[i], -w * (double)logl(py), 1e-13), "gamma_ce threshold value row %d", i);
        for (int j = 0; j < C; j++) {
            double p = (double)expl(S[i * C + j] - l), expect = w * (p - (j == LABELS[i]));
            CHECK(fabs(g[i * C + j] - expect) < 1e-14, "gamma_ce threshold gradient row %d class %d", i, j);
        }
    }

    float sf[R * C], vf[R];
    to_f32(sf, S, R * C);
    o = ld_options_default();
    o.gamma = 0.3;
    CHECK(ld_gamma_ce_f32(sf, C, R, C, LABELS, &o, vf, NULL, NULL) == LD_OK, "gamma_ce f32");
    for (int i = 0; i < R; i++)
        CHECK(near(vf[i], LABELS[i] == -100 ? 0 : ref_gamma(S + i * C, C, LABELS[i], 0.3), 1e-5), "gamma_ce f32 row %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * kd_loss and rdrop_loss */

static void test_kd_rdrop(void) {
    double v[R];
    ld_options o = ld_options_default();
    o.temperature = 2.0;
    o.alpha = 0.3;
    CHECK(ld_kd_loss_f64(S, C, T, C, R, C, LABELS, NULL, 0, &o, v, NULL, NULL, NULL) == LD_OK, "kd_loss: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = LABELS[i] == -100 ? 0 : 0.7 * ref_ce(S + i * C, C, LABELS[i], 0, 1) + 0.3 * 4.0 * ref_kl(T + i * C, S + i * C, C, 2.0);
        CHECK(near(v[i], ref, 1e-13), "kd_loss row %d: %.17g vs %.17g", i, v[i], ref);
    }
    o.t2 = 0;
    CHECK(ld_kd_loss_f64(S, C, T, C, R, C, NULL, NULL, 0, &o, v, NULL, NULL, NULL) == LD_OK, "kd_loss without labels, t2 = 0");
    for (int i = 0; i < R; i++)
        CHECK(near(v[i], 0.3 * ref_kl(T + i * C, S + i * C, C, 2.0), 1e-13), "kd_loss no labels, no T² row %d", i);
    CHECK(ld_kd_loss_f64(S, C, T, C, R, C, NULL, P, C, &o, v, NULL, NULL, NULL) == LD_OK, "kd_loss probabilities");
    for (int i = 0; i < R; i++) {
        double ref = 0.7 * ref_ce_soft(S + i * C, P + i * C, C) + 0.3 * ref_kl(T + i * C, S + i * C, C, 2.0);
        CHECK(near(v[i], ref, 1e-13), "kd_loss probabilities row %d", i);
    }

    double a[R * C], b[R * C];
    memcpy(a, S, sizeof a);
    memcpy(b, T, sizeof b);
    o = ld_options_default();
    o.temperature = 2.0;
    o.alpha = 0.3;
    o.label_smoothing = 0.05;
    o.reduction = LD_REDUCTION_MEAN;
    ctx_t c = {.rows = R, .cols = C, .labels = LABELS, .o = &o};
    fd_check("kd_loss student and teacher, mean", f_kd, &c, a, b, R * C, 1e-7);

    /* R-Drop, softmax kind */
    o = ld_options_default();
    o.alpha = 4.0;
    CHECK(ld_rdrop_loss_f64(S, C, T, C, R, C, LABELS, NULL, 0, &o, v, NULL, NULL, NULL) == LD_OK, "rdrop: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = LABELS[i] == -100 ? 0 : ref_rdrop_softmax(S + i * C, T + i * C, LABELS[i], C, 4.0);
        CHECK(near(v[i], ref, 1e-13), "rdrop softmax row %d: %.17g vs %.17g", i, v[i], ref);
    }
    o.reduction = LD_REDUCTION_SUM;
    c.o = &o;
    fd_check("rdrop softmax sum", f_rdrop, &c, a, b, R * C, 1e-7);

    /* R-Drop, sigmoid kind: multilabel CE + α/2 Σ (σ(s1) − σ(s2))(s1 − s2) */
    o = ld_options_default();
    o.alpha = 1.0;
    o.kind = LD_RDROP_SIGMOID;
    CHECK(ld_rdrop_loss_f64(S, C, T, C, R, C, NULL, YSOFT, C, &o, v, NULL, NULL, NULL) == LD_OK, "rdrop sigmoid: %s", ld_last_error_message());
    for (int i = 0; i < R; i++) {
        double ref = ref_rdrop_sigmoid(S + i * C, T + i * C, YSOFT + i * C, C, 1.0);
        CHECK(near(v[i], ref, 1e-13), "rdrop sigmoid row %d: %.17g vs %.17g", i, v[i], ref);
    }
    o.reduction = LD_REDUCTION_BATCHMEAN;
    fd_check("rdrop sigmoid batchmean", f_rdrop, &(ctx_t){.rows = R, .cols = C, .probs = YSOFT, .o = &o}, a, b, R * C, 1e-7);

    float sf[R * C], tf[R * C], vf[R], gsf[R * C], gtf[R * C];
    double g64s[R * C], g64t[R * C], v64[R];
    to_f32(sf, S, R * C);
    to_f32(tf, T, R * C);
    double s32[R * C], t32[R * C];
    for (int i = 0; i < R * C; i++) { s32[i] = sf[i]; t32[i] = tf[i]; }
    o = ld_options_default();
    o.temperature = 2.0;
    o.alpha = 0.3;
    CHECK(ld_kd_loss_f32(sf, C, tf, C, R, C, LABELS, NULL, 0, &o, vf, NULL, gsf, gtf) == LD_OK, "kd f32");
    ld_kd_loss_f64(s32, C, t32, C, R, C, LABELS, NULL, 0, &o, v64, NULL, g64s, g64t);
    for (int i = 0; i < R; i++) CHECK(near(vf[i], v64[i], 1e-6), "kd f32 row %d", i);
    for (int i = 0; i < R * C; i++) CHECK(fabs(gsf[i] - g64s[i]) < 1e-6 && fabs(gtf[i] - g64t[i]) < 1e-6, "kd f32 grads %d", i);
    o = ld_options_default();
    o.alpha = 4.0;
    CHECK(ld_rdrop_loss_f32(sf, C, tf, C, R, C, LABELS, NULL, 0, &o, vf, NULL, gsf, gtf) == LD_OK, "rdrop f32");
    ld_rdrop_loss_f64(s32, C, t32, C, R, C, LABELS, NULL, 0, &o, v64, NULL, g64s, g64t);
    for (int i = 0; i < R; i++) CHECK(near(vf[i], v64[i], 1e-6), "rdrop f32 row %d", i);
    for (int i = 0; i < R * C; i++) CHECK(fabs(gsf[i] - g64s[i]) < 1e-5 && fabs(gtf[i] - g64t[i]) < 1e-5, "rdrop f32 grads %d", i);
}

/* ---------------------------------------------------------------------------------------------
 * Bad arguments: exact statuses, and messages naming the expected and actual values. */

static void test_bad_arguments(void) {
    double s[8] = {0, 1, 2, 3, 3, 2, 1, 0}, y[8] = {0}, r, g[8];
    int64_t lab[2] = {1, 2};
    int64_t pos[4] = {0, 1, 2, -1};
    ld_options o = ld_options_default();

    /* NULL pointers */
    EXPECT(ld_softmax_ce_f64(NULL, 4, 2, 4, lab, NULL, 0, NULL, NULL, &r, NULL), LD_NULL_POINTER, "logits is NULL");
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, NULL, NULL, 0, NULL, NULL, &r, NULL), LD_NULL_POINTER, "both NULL");
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, y, 4, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "not both");
    EXPECT(ld_bce_f64(s, 4, 2, 4, NULL, 4, NULL, NULL, &r, NULL), LD_NULL_POINTER, "target is NULL");
    EXPECT(ld_multilabel_ce_f32(NULL, 4, 2, 4, NULL, 4, NULL, NULL, &r, NULL), LD_NULL_POINTER, NULL);
    EXPECT(ld_sparse_multilabel_ce_f64(s, 4, 2, 4, NULL, 2, 2, NULL, NULL, &r, NULL), LD_NULL_POINTER, "positives is NULL");
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, NULL, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_NULL_POINTER, "positives is NULL");
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, NULL, NULL, NULL, &r, NULL), LD_NULL_POINTER, "labels is NULL");
    o.alpha = 0.5;
    EXPECT(ld_kd_loss_f64(s, 4, NULL, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_NULL_POINTER, "teacher is NULL");
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, NULL, NULL, 0, &o, NULL, &r, NULL, NULL), LD_OK, NULL); /* labels optional */
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, NULL, NULL, 0, &o, NULL, &r, NULL, NULL), LD_NULL_POINTER, "both NULL");
    EXPECT(ld_rdrop_loss_f32(NULL, 4, NULL, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_NULL_POINTER, "s1 is NULL");
    /* nothing to compute: zero rows, NULL inputs are fine, the result is 0 */
    r = -1;
    EXPECT(ld_softmax_ce_f64(NULL, 4, 0, 4, NULL, NULL, 0, NULL, NULL, &r, NULL), LD_OK, NULL);
    CHECK(r == 0, "zero rows give 0");
    r = -1;
    EXPECT(ld_globalpointer_ce_f64(NULL, 16, 0, 2, 4, NULL, 0, 0, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_OK, NULL);
    CHECK(r == 0, "zero batches give 0");

    /* shapes and strides */
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 0, lab, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "got 0");
    EXPECT(ld_bce_f64(s, 3, 2, 4, y, 4, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "row stride 3 is shorter than a row of 4");
    EXPECT(ld_bce_f64(s, 4, 2, 4, y, 2, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "target: row stride 2");
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, NULL, y, 3, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "target_probs: row stride 3");
    EXPECT(ld_softmax_ce_f64(s, SIZE_MAX / 4, 3, 4, lab, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "overflow");
    EXPECT(ld_gamma_ce_f64(s, 4, SIZE_MAX, 4, lab, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "overflow");
    EXPECT(ld_sparse_multilabel_ce_f64(s, 4, 2, 4, pos, 1, 2, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "positives: row stride 1 is shorter than a row of 2");
    EXPECT(ld_kd_loss_f64(s, 4, s, 2, 2, 4, NULL, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_SHAPE, "teacher: row stride 2");
    EXPECT(ld_globalpointer_ce_f64(s, 4, 1, 0, 2, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "heads must be at least 1; got 0");
    EXPECT(ld_globalpointer_ce_f64(s, 4, 1, 1, 0, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "len");
    EXPECT(ld_globalpointer_ce_f64(s, 4, SIZE_MAX, 2, 2, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "overflows");
    EXPECT(ld_globalpointer_ce_f64(s, 4, 1, 1, SIZE_MAX, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "overflows");
    EXPECT(ld_globalpointer_ce_f64(s, 3, 2, 1, 2, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "logits: row stride 3 is shorter than a row of 4");
    /* spans take 2·npos numbers a row: a stride of npos is short */
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, pos, 1, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "positives: row stride 1 is shorter than a row of 2");
    uint8_t tok[4] = {1, 1, 1, 1};
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, pos, 2, 1, LD_POSITIVES_SPANS, tok, 1, NULL, NULL, &r, NULL), LD_BAD_SHAPE, "token_mask: row stride 1");
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, pos, 2, 1, 2, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "positives_layout must be an ld_positives");

    /* alignment */
    EXPECT(ld_softmax_ce_f64((const double *)((const char *)s + 1), 4, 1, 4, lab, NULL, 0, NULL, NULL, &r, NULL), LD_MISALIGNED, "logits is not aligned");
    EXPECT(ld_softmax_ce_f64(s, 4, 1, 4, (const int64_t *)((const char *)lab + 4), NULL, 0, NULL, NULL, &r, NULL), LD_MISALIGNED, "labels is not aligned");
    EXPECT(ld_bce_f64(s, 4, 1, 4, y, 4, NULL, NULL, &r, (double *)((char *)g + 2)), LD_MISALIGNED, "grad is not aligned");
    {
        _Alignas(16) char raw[sizeof(ld_options) + 16];
        EXPECT(ld_softmax_ce_f64(s, 4, 1, 4, lab, NULL, 0, (const ld_options *)(raw + 4), NULL, &r, NULL), LD_MISALIGNED, "options is not aligned");
    }

    /* options out of range */
    o = ld_options_default();
    o.label_smoothing = 1.5;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "label_smoothing must lie in [0, 1]; got 1.5");
    o.label_smoothing = -0.1;
    EXPECT(ld_softmax_ce_f32((const float *)s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "got -0.1");
    o.label_smoothing = NAN;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "label_smoothing");
    o = ld_options_default();
    o.temperature = 0;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "temperature must be finite and > 0; got 0");
    o = ld_options_default();
    o.reduction = LD_REDUCTION_SUM_HEADS_MEAN_BATCH;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "applies to ld_globalpointer_ce only");
    o.reduction = 5;
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "(0 to 4 for ld_globalpointer_ce); got 5");
    o.reduction = 17;
    EXPECT(ld_bce_f64(s, 4, 2, 4, y, 4, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "(0 to 3); got 17");
    o = ld_options_default();
    o.gamma = 1.0;
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, lab, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "gamma must lie in [0, 1); got 1");
    o.gamma = -0.2;
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, lab, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "got -0.2");
    o.gamma = 0.5;
    o.threshold = 1.5;
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, lab, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "threshold must lie in [0, 1]; got 1.5");
    o = ld_options_default();
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "needs options.alpha");
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, NULL, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "needs options.alpha");
    o.alpha = -0.5;
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "alpha must lie in [0, 1]; got -0.5");
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "alpha must be finite and ≥ 0; got -0.5");
    o.alpha = 1.5;
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "got 1.5");
    o.alpha = 0.5;
    o.t2 = 2;
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "options.t2 must be 0 or 1; got 2");
    o = ld_options_default();
    o.alpha = 1;
    o.kind = 7;
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "options.kind must be an ld_rdrop_kind");
    o.kind = LD_RDROP_SIGMOID;
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "not class indices");
    o.label_smoothing = 0.1;
    EXPECT(ld_rdrop_loss_f64(s, 4, s, 4, 2, 4, NULL, y, 4, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "label_smoothing applies to the softmax kind only");
    double pw[4] = {1, 1, -2, 1}, w[4] = {1, 1, 1, 1};
    o = ld_options_default();
    o.pos_weight = pw;
    EXPECT(ld_bce_f64(s, 4, 2, 4, y, 4, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "pos_weight must be finite and ≥ 0; got -2 at row 0, class 2");
    o.pos_weight = NULL;
    w[3] = NAN;
    o.weights = w;
    EXPECT(ld_bce_f64(s, 4, 2, 4, y, 4, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "weights must be finite and ≥ 0; got NaN at row 0, class 3");
    o.weights = NULL;
    uint8_t m[4] = {1, 1, 1, 1};
    o.mask = m;
    o.mask_stride = 2;
    EXPECT(ld_multilabel_ce_f64(s, 4, 2, 4, y, 4, &o, NULL, &r, NULL), LD_BAD_SHAPE, "options.mask: row stride 2");

    /* an option the function does not read must keep its default */
    o = ld_options_default();
    o.gamma = 0.5;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.gamma is not read by ld_softmax_ce_f64");
    o = ld_options_default();
    o.temperature = 2;
    EXPECT(ld_bce_f32((const float *)s, 4, 1, 4, (const float *)y, 4, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.temperature is not read by ld_bce_f32: leave it at its default (1); got 2");
    o = ld_options_default();
    o.weights = w;
    EXPECT(ld_multilabel_ce_f64(s, 4, 2, 4, y, 4, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.weights is not read by ld_multilabel_ce_f64");
    o = ld_options_default();
    o.mask = m;
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, pos, 2, 1, LD_POSITIVES_SPANS, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.mask is not read by ld_globalpointer_ce_f64");
    o = ld_options_default();
    o.row_mask = m;
    EXPECT(ld_kl_f64(s, 4, s, 4, 2, 4, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "options.row_mask is not read by ld_kl_f64");
    o = ld_options_default();
    o.beta = 0.3;
    EXPECT(ld_kl_f64(s, 4, s, 4, 2, 4, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "options.beta is not read by ld_kl_f64: leave it at its default (0.5); got 0.3");
    EXPECT(ld_js_f64(s, 4, s, 4, 2, 4, &o, NULL, &r, NULL, NULL), LD_OK, NULL);
    o = ld_options_default();
    o.alpha = 0.5;
    EXPECT(ld_sigmoid_kl_f32((const float *)s, 4, (const float *)s, 4, 2, 4, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "options.alpha is not read by ld_sigmoid_kl_f32: leave it at its default (NaN: unset); got 0.5");
    o = ld_options_default();
    o.threshold = 0.5;
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, lab, NULL, 0, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.threshold");
    o = ld_options_default();
    o.pad = 0;
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, lab, &o, NULL, &r, NULL), LD_BAD_ARGUMENT, "options.pad is not read by ld_gamma_ce_f64");

    /* labels out of range: the row and the value */
    int64_t bad[2] = {1, 4};
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, bad, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "target at row 1 is 4; class indices must lie in [0, 4)");
    bad[0] = -1;
    EXPECT(ld_gamma_ce_f64(s, 4, 2, 4, bad, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "target at row 0 is -1");
    o = ld_options_default();
    o.alpha = 0.5;
    EXPECT(ld_kd_loss_f64(s, 4, s, 4, 2, 4, bad, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "target at row 0 is -1");
    EXPECT(ld_rdrop_loss_f32((const float *)s, 4, (const float *)s, 4, 2, 4, bad, NULL, 0, &o, NULL, &r, NULL, NULL), LD_BAD_ARGUMENT, "target at row 0 is -1");
    /* probabilities out of range */
    double yb[8] = {0, 0.5, 0.5, 0, 0.25, 0.25, -0.5, 1};
    EXPECT(ld_softmax_ce_f64(s, 4, 2, 4, NULL, yb, 4, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "got -0.5 at row 1, class 2");
    yb[6] = 1.5;
    EXPECT(ld_bce_f64(s, 4, 2, 4, yb, 4, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "must lie in [0, 1]; got 1.5 at row 1, class 2");
    yb[6] = NAN;
    EXPECT(ld_multilabel_ce_f64(s, 4, 2, 4, yb, 4, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "got NaN at row 1, class 2");
    /* positives: out of range, duplicated */
    int64_t dup[4] = {0, 1, 2, 2};
    EXPECT(ld_sparse_multilabel_ce_f64(s, 4, 2, 4, dup, 2, 2, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "class 2 is listed twice among the positives of row 1");
    int64_t out_of_range[4] = {0, 1, 9, -1};
    EXPECT(ld_sparse_multilabel_ce_f64(s, 4, 2, 4, out_of_range, 2, 2, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "positive class 9 at row 1 is out of range");
    /* GlobalPointer, L = 2, B = 2, heads = 1: one span per row */
    int64_t span_dup[8] = {0, 1, -1, -1, /**/ 1, 1, 1, 1};
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, span_dup, 4, 2, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "span (1, 1) is listed twice among the positives of batch 1, head 0");
    int64_t span_bad[4] = {0, 1, 0, 2};
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, span_bad, 2, 1, LD_POSITIVES_SPANS, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "span (0, 2) of batch 1, head 0 is out of range");
    int64_t flat_bad[2] = {3, 4};
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, flat_bad, 1, 1, LD_POSITIVES_FLAT, NULL, 0, NULL, NULL, &r, NULL), LD_BAD_ARGUMENT, "positive class 4 at row 1 is out of range");
    /* and a good call still works after all that */
    EXPECT(ld_globalpointer_ce_f64(s, 4, 2, 1, 2, span_bad, 2, 1, LD_POSITIVES_FLAT, NULL, 0, NULL, NULL, &r, NULL), LD_OK, NULL);
}

/* Many rows in parallel: the same bits whatever the thread count. */
static void test_threads(void) {
    enum { RR = 256, CC = 300 };
    double *s = malloc(sizeof(double) * RR * CC), *t = malloc(sizeof(double) * RR * CC);
    int64_t *lab = malloc(sizeof(int64_t) * RR);
    for (int i = 0; i < RR * CC; i++) { s[i] = sin(0.013 * i); t[i] = cos(0.011 * i); }
    for (int i = 0; i < RR; i++) lab[i] = (i * 37) % CC;
    ld_options o = ld_options_default();
    o.alpha = 0.5;
    o.temperature = 3;
    double one, two;
    CHECK(ld_set_num_threads(2) == LD_OK, "threads");
    ld_kd_loss_f64(s, CC, t, CC, RR, CC, lab, NULL, 0, &o, NULL, &two, NULL, NULL);
    ld_set_num_threads(1);
    ld_kd_loss_f64(s, CC, t, CC, RR, CC, lab, NULL, 0, &o, NULL, &one, NULL, NULL);
    ld_set_num_threads(0);
    CHECK(one == two && isfinite(one), "kd_loss bit-identical across thread counts: %.17g vs %.17g", one, two);
    free(s);
    free(t);
    free(lab);
}


/* Random calls to every loss with small odd shapes and arguments in and out of range: never
 * LD_PANIC, a message with every failure, and (under valgrind) no read or write out of bounds. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int rnd_int(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }
static double rnd_unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static double pick(const double *xs, int n) { return xs[rnd_int(0, n - 1)]; }

static void test_random_calls(void) {
    enum { MAXR = 5, MAXC = 9, MAXK = 4 };
    static const double eps_v[] = {0, 0.1, 1, 1.5, -0.1}, gamma_v[] = {0, 0.3, 0.99, 1, -1},
                        thr_v[] = {NAN, 0, 0.5, 1, 2}, alpha_v[] = {NAN, 0, 0.4, 1, 3, -1},
                        tau_v[] = {1, 1, 0.5, 3, 0};
    int panics = 0, silent = 0, ok = 0;
    for (int it = 0; it < 400; it++) {
        size_t rows = (size_t)rnd_int(0, MAXR), cols = (size_t)rnd_int(1, MAXC), npos = (size_t)rnd_int(0, MAXK);
        double a[MAXR * MAXC], b[MAXR * MAXC], y[MAXR * MAXC], v[MAXR], ga[MAXR * MAXC], gb[MAXR * MAXC], r;
        float af[MAXR * MAXC], bf[MAXR * MAXC], yf[MAXR * MAXC], vf[MAXR], gaf[MAXR * MAXC], gbf[MAXR * MAXC];
        int64_t lab[MAXR], pos[MAXR * 2 * MAXK];
        uint8_t cmask[MAXC], rmask[MAXR], tok[MAXR * MAXC];
        double w[MAXC];
        for (size_t i = 0; i < MAXR * MAXC; i++) {
            a[i] = rnd_int(0, 15) == 0 ? -INFINITY : 10 * rnd_unit() - 5;
            b[i] = rnd_int(0, 15) == 0 ? -INFINITY : 10 * rnd_unit() - 5;
            y[i] = rnd_int(0, 3) == 0 ? (double)rnd_int(0, 1) : rnd_unit();
            af[i] = (float)a[i]; bf[i] = (float)b[i]; yf[i] = (float)y[i];
            tok[i] = (uint8_t)rnd_int(0, 3) != 0;
        }
        for (size_t i = 0; i < MAXR; i++) { lab[i] = rnd_int(0, 6) == 0 ? -100 : rnd_int(0, (int)cols - 1); rmask[i] = (uint8_t)rnd_int(0, 3) != 0; }
        if (rnd_int(0, 5) == 0) { /* one label or probability out of range */
            lab[rnd_int(0, MAXR - 1)] = rnd_int(0, 1) ? -1 : (int64_t)cols;
            int k = rnd_int(0, MAXR * MAXC - 1);
            y[k] = rnd_int(0, 1) ? -0.25 : 1.5;
            yf[k] = (float)y[k];
        }
        for (size_t i = 0; i < MAXR * 2 * MAXK; i++) pos[i] = rnd_int(-1, (int)cols - (rnd_int(0, 9) != 0));
        for (size_t i = 0; i < MAXC; i++) { cmask[i] = (uint8_t)rnd_int(0, 3) != 0; w[i] = rnd_int(0, 9) == 0 ? -1 : 2 * rnd_unit(); }
        ld_options o = ld_options_default();
        o.reduction = (uint32_t)(rnd_int(0, 9) == 0 ? 4 : rnd_int(0, 3));
        int f32 = rnd_int(0, 1), which = rnd_int(0, 7);
        int masks = which != 4 && rnd_int(0, 1);
        if (masks) { o.mask = cmask; o.mask_stride = 0; o.row_mask = rmask; }
        ld_status st;
        switch (which) {
        case 0:
            o.label_smoothing = pick(eps_v, 5); o.temperature = pick(tau_v, 5); o.ignore_index = rnd_int(0, 1) ? -100 : -1;
            st = rnd_int(0, 1)
                ? (f32 ? ld_softmax_ce_f32(af, cols, rows, cols, lab, NULL, 0, &o, vf, &r, gaf) : ld_softmax_ce_f64(a, cols, rows, cols, lab, NULL, 0, &o, v, &r, ga))
                : (f32 ? ld_softmax_ce_f32(af, cols, rows, cols, NULL, yf, cols, &o, vf, &r, gaf) : ld_softmax_ce_f64(a, cols, rows, cols, NULL, y, cols, &o, v, &r, ga));
            break;
        case 1:
            if (rnd_int(0, 1)) { o.pos_weight = w; o.weights = rnd_int(0, 1) ? w : NULL; }
            st = f32 ? ld_bce_f32(af, cols, rows, cols, yf, cols, &o, vf, &r, gaf) : ld_bce_f64(a, cols, rows, cols, y, cols, &o, v, &r, ga);
            break;
        case 2:
            st = f32 ? ld_multilabel_ce_f32(af, cols, rows, cols, yf, cols, &o, vf, &r, gaf) : ld_multilabel_ce_f64(a, cols, rows, cols, y, cols, &o, v, &r, ga);
            break;
        case 3:
            o.pad = -1;
            st = f32 ? ld_sparse_multilabel_ce_f32(af, cols, rows, cols, pos, npos, npos, &o, vf, &r, gaf)
                     : ld_sparse_multilabel_ce_f64(a, cols, rows, cols, pos, npos, npos, &o, v, &r, ga);
            break;
        case 4: {
            size_t len = (size_t)rnd_int(1, 3), heads = (size_t)rnd_int(1, 2), batch = rows / heads;
            uint32_t layout = (uint32_t)rnd_int(0, 2);
            size_t width = layout == LD_POSITIVES_SPANS ? 2 * npos : npos;
            for (size_t i = 0; i < MAXR * 2 * MAXK; i++) pos[i] = rnd_int(-1, (layout == LD_POSITIVES_SPANS ? (int)len : (int)(len * len)) - (rnd_int(0, 9) != 0));
            const uint8_t *tm = rnd_int(0, 1) ? tok : NULL;
            st = f32 ? ld_globalpointer_ce_f32(af, len * len, batch, heads, len, pos, width, npos, layout, tm, len, &o, vf, &r, gaf)
                     : ld_globalpointer_ce_f64(a, len * len, batch, heads, len, pos, width, npos, layout, tm, len, &o, v, &r, ga);
            break;
        }
        case 5:
            o.gamma = pick(gamma_v, 5); o.threshold = pick(thr_v, 5);
            st = f32 ? ld_gamma_ce_f32(af, cols, rows, cols, lab, &o, vf, &r, gaf) : ld_gamma_ce_f64(a, cols, rows, cols, lab, &o, v, &r, ga);
            break;
        case 6: {
            o.alpha = pick(alpha_v, 6); o.temperature = pick(tau_v, 5); o.t2 = (uint32_t)rnd_int(0, 1); o.label_smoothing = pick(eps_v, 3);
            int t = rnd_int(0, 2);
            const int64_t *l = t == 0 ? lab : NULL;
            st = f32 ? ld_kd_loss_f32(af, cols, bf, cols, rows, cols, l, t == 1 ? yf : NULL, cols, &o, vf, &r, gaf, gbf)
                     : ld_kd_loss_f64(a, cols, b, cols, rows, cols, l, t == 1 ? y : NULL, cols, &o, v, &r, ga, gb);
            break;
        }
        default: {
            o.alpha = pick(alpha_v, 6); o.kind = (uint32_t)rnd_int(0, 1);
            if (o.kind == LD_RDROP_SOFTMAX) o.label_smoothing = pick(eps_v, 3);
            int t = o.kind == LD_RDROP_SIGMOID ? 1 : rnd_int(0, 1);
            const int64_t *l = t == 0 ? lab : NULL;
            st = f32 ? ld_rdrop_loss_f32(af, cols, bf, cols, rows, cols, l, t == 1 ? yf : NULL, cols, &o, vf, &r, gaf, gbf)
                     : ld_rdrop_loss_f64(a, cols, b, cols, rows, cols, l, t == 1 ? y : NULL, cols, &o, v, &r, ga, gb);
            break;
        }
        }
        panics += st == LD_PANIC;
        silent += st != LD_OK && strlen(ld_last_error_message()) == 0;
        ok += st == LD_OK;
        if (st == LD_PANIC) fprintf(stderr, "panic at iteration %d (loss %d): %s\n", it, which, ld_last_error_message());
    }
    CHECK(panics == 0, "%d random calls panicked", panics);
    CHECK(silent == 0, "%d random failures left no message", silent);
    CHECK(ok > 120 && ok < 360, "random calls: %d of 400 succeeded (both outcomes exercised)", ok);
}

int main(void) {
    make_data();
    test_softmax_ce();
    test_bce_multilabel();
    test_sparse();
    test_globalpointer();
    test_gamma();
    test_kd_rdrop();
    test_bad_arguments();
    test_threads();
    test_random_calls();
    return checks_summary();
}
