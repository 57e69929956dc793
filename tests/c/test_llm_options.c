/* The C ABI of the LLM-training options: ld_softmax_ce_ex_* with options.class_weight, z_loss,
 * softcap and the extra outputs (z-term, correct rows, accuracy), ld_tv_* and the soft cap of the
 * softmax divergences, in every reduction, float64 and float32; and the status of bad settings.
 * It prints every result with 17 digits; tests/test_llm_options.py builds it, runs it (also under
 * valgrind) and checks the numbers against PyTorch float64 references on the same inputs. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "logitdiv.h"

enum { ROWS = 5, COLS = 7, N = ROWS * COLS };

static void print_row(const char *name, int r, const double *x, int n) {
    printf("%s %d", name, r);
    for (int i = 0; i < n; i++) printf(" %.17g", x[i]);
    printf("\n");
}

static void print_row_f(const char *name, int r, const float *x, int n) {
    printf("%s %d", name, r);
    for (int i = 0; i < n; i++) printf(" %.9g", (double)x[i]);
    printf("\n");
}

int main(void) {
    double s[N], t[N], w[COLS];
    float sf[N], tf[N];
    /* the same formulas as the Python side */
    for (int i = 0; i < N; i++) {
        s[i] = 3.0 * sin(0.37 * i + 0.11);
        t[i] = 2.0 * cos(0.23 * i - 0.4);
        sf[i] = (float)s[i];
        tf[i] = (float)t[i];
    }
    for (int j = 0; j < COLS; j++) w[j] = 0.25 + 0.5 * j;
    const int64_t labels[ROWS] = {3, -100, 0, 6, 2};

    for (uint32_t r = 0; r < 4; r++) {
        ld_options o = ld_options_default();
        o.reduction = r;
        o.class_weight = w;
        o.z_loss = 1e-3;
        o.softcap = 2.5;
        o.label_smoothing = 0.1;
        double values[ROWS], grad[N], z[ROWS], correct[ROWS], result = NAN, z_result = NAN, accuracy = NAN;
        ld_status st = ld_softmax_ce_ex_f64(s, COLS, ROWS, COLS, labels, NULL, 0, &o, values, &result, grad, z,
                                            &z_result, correct, &accuracy);
        printf("ce_status %d %d\n", (int)r, (int)st);
        printf("ce %d %.17g %.17g %.17g\n", (int)r, result, z_result, accuracy);
        print_row("ce_values", (int)r, values, ROWS);
        print_row("ce_grad", (int)r, grad, N);
        print_row("ce_z", (int)r, z, ROWS);
        print_row("ce_correct", (int)r, correct, ROWS);
        /* the plain entry point reads the same options */
        double plain = NAN;
        st = ld_softmax_ce_f64(s, COLS, ROWS, COLS, labels, NULL, 0, &o, NULL, &plain, NULL);
        printf("ce_plain %d %d %.17g\n", (int)r, (int)st, plain);

        ld_options d = ld_options_default();
        d.reduction = r;
        d.softcap = 2.0;
        d.temperature = 1.5;
        double tv_values[ROWS], gs[N], gt[N], tv_result = NAN;
        st = ld_tv_f64(s, COLS, t, COLS, ROWS, COLS, &d, tv_values, &tv_result, gs, gt);
        printf("tv_status %d %d\n", (int)r, (int)st);
        printf("tv %d %.17g\n", (int)r, tv_result);
        print_row("tv_values", (int)r, tv_values, ROWS);
        print_row("tv_grad_s", (int)r, gs, N);
        print_row("tv_grad_t", (int)r, gt, N);
        double kl_result = NAN;
        st = ld_kl_f64(s, COLS, t, COLS, ROWS, COLS, &d, NULL, &kl_result, NULL, NULL);
        printf("kl_capped %d %d %.17g\n", (int)r, (int)st, kl_result);
    }

    /* float32, mean */
    {
        ld_options o = ld_options_default();
        o.reduction = LD_REDUCTION_MEAN;
        o.class_weight = w;
        o.z_loss = 1e-3;
        o.softcap = 2.5;
        float grad[N], z[ROWS], correct[ROWS];
        double result = NAN, z_result = NAN, accuracy = NAN;
        ld_status st = ld_softmax_ce_ex_f32(sf, COLS, ROWS, COLS, labels, NULL, 0, &o, NULL, &result, grad, z,
                                            &z_result, correct, &accuracy);
        printf("ce32_status 2 %d\n", (int)st);
        printf("ce32 2 %.17g %.17g %.17g\n", result, z_result, accuracy);
        print_row_f("ce32_grad", 2, grad, N);
        ld_options d = ld_options_default();
        d.reduction = LD_REDUCTION_MEAN;
        double tv_result = NAN;
        float gs[N], gt[N];
        st = ld_tv_f32(sf, COLS, tf, COLS, ROWS, COLS, &d, NULL, &tv_result, gs, gt);
        printf("tv32_status 2 %d\n", (int)st);
        printf("tv32 2 %.17g\n", tv_result);
        print_row_f("tv32_grad_s", 2, gs, N);
    }

    /* bad settings: the status, and the message naming the option */
    {
        double result;
        ld_options o = ld_options_default();
        o.softcap = -1.0;
        ld_status st = ld_softmax_ce_f64(s, COLS, ROWS, COLS, labels, NULL, 0, &o, NULL, &result, NULL);
        printf("bad softcap_negative %d %s\n", (int)st, strstr(ld_last_error_message(), "softcap") ? "named" : "unnamed");
        o = ld_options_default();
        o.z_loss = NAN;
        st = ld_softmax_ce_f64(s, COLS, ROWS, COLS, labels, NULL, 0, &o, NULL, &result, NULL);
        printf("bad z_loss_nan %d %s\n", (int)st, strstr(ld_last_error_message(), "z_loss") ? "named" : "unnamed");
        o = ld_options_default();
        double neg[COLS] = {1, 1, -1, 1, 1, 1, 1};
        o.class_weight = neg;
        st = ld_softmax_ce_f64(s, COLS, ROWS, COLS, labels, NULL, 0, &o, NULL, &result, NULL);
        printf("bad class_weight_negative %d %s\n", (int)st, strstr(ld_last_error_message(), "weight") ? "named" : "unnamed");
        o = ld_options_default();
        o.class_weight = w;
        st = ld_kl_f64(s, COLS, t, COLS, ROWS, COLS, &o, NULL, &result, NULL, NULL);
        printf("bad class_weight_kl %d %s\n", (int)st, strstr(ld_last_error_message(), "class_weight") ? "named" : "unnamed");
        o = ld_options_default();
        o.z_loss = 1e-3;
        st = ld_tv_f64(s, COLS, t, COLS, ROWS, COLS, &o, NULL, &result, NULL, NULL);
        printf("bad z_loss_tv %d %s\n", (int)st, strstr(ld_last_error_message(), "z_loss") ? "named" : "unnamed");
        o = ld_options_default();
        o.softcap = 2.0;
        st = ld_sigmoid_kl_f64(s, COLS, t, COLS, ROWS, COLS, &o, NULL, &result, NULL, NULL);
        printf("bad softcap_sigmoid %d %s\n", (int)st, strstr(ld_last_error_message(), "softcap") ? "named" : "unnamed");
        o = ld_options_default();
        o.softcap = 2.0;
        st = ld_bce_f64(s, COLS, ROWS, COLS, s, COLS, &o, NULL, &result, NULL);
        printf("bad softcap_bce %d %s\n", (int)st, strstr(ld_last_error_message(), "softcap") ? "named" : "unnamed");
    }
    return 0;
}
