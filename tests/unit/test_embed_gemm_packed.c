/*
 * The packed-weight product (gemm_packed.h) against a double-precision
 * reference: row counts that fill and split the kernel's blocks, output
 * counts that leave part of a panel, the residual and GELU epilogue, and
 * products over a subset of the panels. Reported as skipped, by name, on a
 * CPU without AVX-512F, where the encoder does not use this kernel.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "embed/gemm_packed.h"

/* Deterministic values in [-1, 1) from a 32-bit LCG. */
static float next_value(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}


static float *random_floats(size_t count, uint32_t *state)
{
    float *values = malloc((count ? count : 1) * sizeof(float));
    assert_non_null(values);
    for (size_t i = 0; i < count; i++)
        values[i] = next_value(state);
    return values;
}


static bool skip_without_avx512(void)
{
    if (an__gemm_packed_supported())
        return false;
    print_message("this CPU has no AVX-512F, so the encoder uses OpenBLAS and this kernel "
                  "is not tested here\n");
    skip();
    return true;
}


static double gelu_exact(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}


typedef struct {
    size_t m, n, k;
    bool residual, gelu;
    size_t first_panel, panels; /* panels 0 means all */
} product_case_t;


/*
 * Runs one case and returns its largest difference from the reference,
 * relative to the rounding bound of a float sum of k + 2 terms. That bound
 * is (k + 2) * FLT_EPSILON * (sum of the terms' magnitudes), plus room for
 * the GELU approximation, and any order of summation stays below it.
 * Columns outside the chosen panels must keep their sentinel value.
 */
static double product_error(const product_case_t *pc)
{
    size_t m = pc->m, n = pc->n, k = pc->k;
    uint32_t state = (uint32_t)(m * 7919 + n * 31 + k);
    size_t ldx = k + 3, ldr = n + 5, ldy = n + 2;
    float *x = random_floats(m * ldx, &state);
    float *w = random_floats(n * k, &state);
    float *bias = random_floats(n, &state);
    float *residual = random_floats(m * ldr, &state);
    float *y = malloc(m * ldy * sizeof(float));
    float *packed = aligned_alloc(64, an__gemm_packed_floats(n, k) * sizeof(float));
    assert_non_null(y);
    assert_non_null(packed);
    const float sentinel = 12345.0f;
    for (size_t i = 0; i < m * ldy; i++)
        y[i] = sentinel;

    an__gemm_pack(w, n, k, packed);
    an__gemm_epilogue_t epilogue = {bias, pc->residual ? residual : NULL, ldr, pc->gelu};
    size_t panels = pc->panels ? pc->panels : an__gemm_packed_panels(n);
    an__gemm_packed(m, n, k, x, ldx, packed, pc->first_panel, panels, &epilogue, y, ldy);

    size_t first_col = pc->first_panel * AN_PACK_PANEL;
    size_t end_col = first_col + panels * AN_PACK_PANEL;
    end_col = end_col < n ? end_col : n;
    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            float got = y[i * ldy + j];
            if (j < first_col || j >= end_col) {
                if (got != sentinel)
                    fail_msg("m %zu, n %zu, k %zu: column %zu is outside the panels but was "
                             "written", m, n, k, j);
                continue;
            }
            double expected = bias[j], magnitude = fabs(bias[j]);
            if (pc->residual) {
                expected += residual[i * ldr + j];
                magnitude += fabs(residual[i * ldr + j]);
            }
            for (size_t p = 0; p < k; p++) {
                double term = (double)x[i * ldx + p] * w[j * k + p];
                expected += term;
                magnitude += fabs(term);
            }
            double bound = (double)(k + 2) * FLT_EPSILON * magnitude;
            if (pc->gelu) {
                /* GELU's slope is at most 1.13, and its erf approximation adds 1.5e-7 |x| / 2. */
                double sum = expected;
                expected = gelu_exact(sum);
                bound = bound * 1.13 + 1e-6 * (1.0 + fabs(sum));
            }
            double ratio = fabs(got - expected) / bound;
            worst = ratio > worst ? ratio : worst;
        }
    }
    free(x);
    free(w);
    free(bias);
    free(residual);
    free(y);
    free(packed);
    return worst;
}


static void check_case(product_case_t pc)
{
    double error = product_error(&pc);
    if (error > 1.0)
        fail_msg("m %zu, n %zu, k %zu, residual %d, gelu %d, panels %zu+%zu: difference %.3g "
                 "times the rounding bound", pc.m, pc.n, pc.k, pc.residual, pc.gelu,
                 pc.first_panel, pc.panels, error);
}


static void matches_reference_all_sizes(void **state)
{
    (void)state;
    if (skip_without_avx512())
        return;
    const size_t rows[] = {1, 2, 5, 11, 12, 13, 16, 24, 25, 47, 100};
    const size_t outputs[] = {1, 15, 16, 17, 32, 45, 64, 96};
    const size_t inner[] = {1, 7, 64, 385};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
        for (size_t o = 0; o < sizeof(outputs) / sizeof(outputs[0]); o++)
            for (size_t q = 0; q < sizeof(inner) / sizeof(inner[0]); q++)
                check_case((product_case_t){rows[r], outputs[o], inner[q], false, false, 0, 0});
}


/* Enough rows times k for several row blocks of the kernel's L2 blocking. */
static void many_rows_match_reference(void **state)
{
    (void)state;
    if (skip_without_avx512())
        return;
    check_case((product_case_t){700, 40, 384, false, false, 0, 0});
    check_case((product_case_t){300, 33, 1536, true, false, 0, 0});
}


static void residual_and_gelu_are_applied(void **state)
{
    (void)state;
    if (skip_without_avx512())
        return;
    const size_t rows[] = {1, 12, 30};
    const size_t outputs[] = {16, 45, 64};
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        for (size_t o = 0; o < sizeof(outputs) / sizeof(outputs[0]); o++) {
            check_case((product_case_t){rows[r], outputs[o], 64, true, false, 0, 0});
            check_case((product_case_t){rows[r], outputs[o], 64, false, true, 0, 0});
            check_case((product_case_t){rows[r], outputs[o], 64, true, true, 0, 0});
        }
    }
}


/* GELU over a wide range of inputs, far negative ones included, where erf's exp underflows. */
static void gelu_of_large_inputs(void **state)
{
    (void)state;
    if (skip_without_avx512())
        return;
    enum { N = 64 };
    float w[N], bias[N], x = 1.0f, y[N];
    float packed[N];
    for (size_t j = 0; j < N; j++) {
        w[j] = 0.0f;
        bias[j] = -40.0f + 80.0f * (float)j / (N - 1);
    }
    an__gemm_pack(w, N, 1, packed);
    an__gemm_epilogue_t epilogue = {bias, NULL, 0, true};
    an__gemm_packed(1, N, 1, &x, 1, packed, 0, an__gemm_packed_panels(N), &epilogue, y, N);
    for (size_t j = 0; j < N; j++) {
        double expected = gelu_exact(bias[j]);
        if (fabs(y[j] - expected) > 1e-6 + 1e-6 * fabs(expected))
            fail_msg("GELU(%g): got %.9g, expected %.9g", bias[j], y[j], expected);
    }
}


static void subset_of_panels_writes_only_them(void **state)
{
    (void)state;
    if (skip_without_avx512())
        return;
    check_case((product_case_t){13, 100, 50, false, false, 1, 1});
    check_case((product_case_t){13, 100, 50, true, true, 2, 2});
    check_case((product_case_t){4, 96, 9, false, false, 0, 2});
}


static void pack_layout(void **state)
{
    (void)state;
    const float w[3 * 2] = {1, 2, 3, 4, 5, 6}; /* 3 outputs, 2 inputs */
    assert_int_equal(an__gemm_packed_panels(3), 1);
    assert_int_equal(an__gemm_packed_panels(33), 2);
    assert_int_equal(an__gemm_packed_floats(3, 2), 64);
    float packed[64];
    an__gemm_pack(w, 3, 2, packed);
    const float expected_p0[4] = {1, 3, 5, 0};
    const float expected_p1[4] = {2, 4, 6, 0};
    for (size_t j = 0; j < 4; j++) {
        assert_float_equal(packed[j], expected_p0[j], 0);
        assert_float_equal(packed[AN_PACK_PANEL + j], expected_p1[j], 0);
    }
    assert_float_equal(packed[AN_PACK_PANEL - 1], 0, 0);
    assert_float_equal(packed[2 * AN_PACK_PANEL - 1], 0, 0);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_reference_all_sizes),
        cmocka_unit_test(many_rows_match_reference),
        cmocka_unit_test(residual_and_gelu_are_applied),
        cmocka_unit_test(gelu_of_large_inputs),
        cmocka_unit_test(subset_of_panels_writes_only_them),
        cmocka_unit_test(pack_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
