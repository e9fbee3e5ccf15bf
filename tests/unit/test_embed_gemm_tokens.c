/*
 * The small-batch dense-layer product against a double-precision
 * reference, for every token count it accepts and output counts that leave
 * partial blocks.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "embed/gemm_tokens.h"

/* Deterministic values in [-1, 1) from a 32-bit LCG. */
static float next_value(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
}


static float *random_floats(size_t count, uint32_t *state)
{
    float *values = malloc(count * sizeof(float));
    assert_non_null(values);
    for (size_t i = 0; i < count; i++)
        values[i] = next_value(state);
    return values;
}


/*
 * Returns the largest difference of one case from the reference, relative
 * to the worst-case rounding bound of a float sum of k + 1 terms:
 * (k + 1) * FLT_EPSILON * (|bias| + sum of |x w|). Any order of summation
 * stays below 1; a wrong element gives far more.
 */
static double product_error(size_t m, size_t n, size_t k)
{
    uint32_t state = (uint32_t)(m * 7919 + n * 31 + k);
    size_t ldx = k + 3, ldw = k + 1, ldc = n + 2;
    float *x = random_floats(m * ldx, &state);
    float *w = random_floats(n * ldw, &state);
    float *bias = random_floats(n, &state);
    float *c = calloc(m * ldc, sizeof(float));
    float *xt = malloc(k * an__gemm_tokens_stride(m) * sizeof(float));
    assert_non_null(c);
    assert_non_null(xt);

    an__gemm_tokens_transpose(x, m, k, ldx, xt);
    an__gemm_tokens(m, n, k, x, ldx, xt, w, ldw, bias, c, ldc);

    double worst = 0;
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double expected = bias[j], magnitude = fabs(bias[j]);
            for (size_t p = 0; p < k; p++) {
                double term = (double)x[i * ldx + p] * w[j * ldw + p];
                expected += term;
                magnitude += fabs(term);
            }
            double bound = (double)(k + 1) * FLT_EPSILON * magnitude;
            double ratio = fabs(c[i * ldc + j] - expected) / bound;
            worst = ratio > worst ? ratio : worst;
        }
    }
    free(x);
    free(w);
    free(bias);
    free(c);
    free(xt);
    return worst;
}


static void matches_reference_all_sizes(void **state)
{
    (void)state;
    const size_t outputs[] = {1, 5, 12, 13, 48, 50};
    const size_t inner[] = {1, 7, 64, 385};
    for (size_t m = 1; m <= AN_GEMM_TOKENS_MAX; m++) {
        for (size_t o = 0; o < sizeof(outputs) / sizeof(outputs[0]); o++) {
            for (size_t q = 0; q < sizeof(inner) / sizeof(inner[0]); q++) {
                double error = product_error(m, outputs[o], inner[q]);
                if (error > 1.0)
                    fail_msg("m %zu, n %zu, k %zu: difference %.3g times the rounding bound", m,
                             outputs[o], inner[q], error);
            }
        }
    }
}


static void transpose_pads_with_zeros(void **state)
{
    (void)state;
    float x[3 * 2] = {1, 2, 3, 4, 5, 6}; /* 3 tokens, 2 features */
    float xt[2 * 8];
    assert_int_equal(an__gemm_tokens_stride(3), 8);
    an__gemm_tokens_transpose(x, 3, 2, 2, xt);
    assert_float_equal(xt[0], 1, 0);
    assert_float_equal(xt[1], 3, 0);
    assert_float_equal(xt[2], 5, 0);
    assert_float_equal(xt[3], 0, 0);
    assert_float_equal(xt[8], 2, 0);
    assert_float_equal(xt[10], 6, 0);
    assert_float_equal(xt[15], 0, 0);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_reference_all_sizes),
        cmocka_unit_test(transpose_pads_with_zeros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
