/*
 * The fused attention kernel against a direct double-precision evaluation
 * of softmax(scale Q K^T) V, over head sizes and sentence lengths that hit
 * every block and tail of its loops.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "embed/attention.h"

/* Deterministic values in [-2, 2) from a 32-bit LCG. */
static float next_value(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
}


/* Reference attention for one row i, in double. */
static void reference_row(size_t len, size_t head_dim, double scale, const float *q,
                          const float *k, const float *v, size_t ld, size_t i, double *out)
{
    double *weights = malloc(len * sizeof(double));
    assert_non_null(weights);
    double max = -INFINITY, sum = 0;
    for (size_t j = 0; j < len; j++) {
        double dot = 0;
        for (size_t d = 0; d < head_dim; d++)
            dot += (double)q[i * ld + d] * k[j * ld + d];
        weights[j] = dot * scale;
        max = weights[j] > max ? weights[j] : max;
    }
    for (size_t j = 0; j < len; j++) {
        weights[j] = exp(weights[j] - max);
        sum += weights[j];
    }
    for (size_t d = 0; d < head_dim; d++) {
        double total = 0;
        for (size_t j = 0; j < len; j++)
            total += weights[j] / sum * v[j * ld + d];
        out[d] = total;
    }
    free(weights);
}


/*
 * Runs one case and returns the largest absolute difference from the
 * reference, through an__attention_head_avx512 when wide is set.
 */
static double attention_error(size_t len, size_t head_dim, bool wide)
{
    size_t ld = 3 * head_dim + 5; /* q, k and v side by side, plus a gap, as in the QKV buffer */
    size_t ldo = head_dim + 3;
    float *qkv = malloc(len * ld * sizeof(float));
    float *out = malloc(len * ldo * sizeof(float));
    float *scratch = malloc(an__attention_scratch_floats(len, head_dim) * sizeof(float));
    double *expected = malloc(head_dim * sizeof(double));
    assert_non_null(qkv);
    assert_non_null(out);
    assert_non_null(scratch);
    assert_non_null(expected);

    uint32_t state = (uint32_t)(len * 131 + head_dim);
    for (size_t i = 0; i < len * ld; i++)
        qkv[i] = next_value(&state);
    float scale = 1.0f / sqrtf((float)head_dim);
    if (wide)
        an__attention_head_avx512(len, head_dim, scale, qkv, qkv + head_dim, qkv + 2 * head_dim,
                                  ld, out, ldo, scratch);
    else
        an__attention_head(len, head_dim, scale, qkv, qkv + head_dim, qkv + 2 * head_dim, ld,
                           out, ldo, scratch);

    double worst = 0;
    for (size_t i = 0; i < len; i++) {
        reference_row(len, head_dim, scale, qkv, qkv + head_dim, qkv + 2 * head_dim, ld, i,
                      expected);
        for (size_t d = 0; d < head_dim; d++) {
            double diff = fabs(out[i * ldo + d] - expected[d]);
            worst = diff > worst ? diff : worst;
        }
    }
    free(qkv);
    free(out);
    free(scratch);
    free(expected);
    return worst;
}


static void matches_reference_all_shapes(void **state)
{
    (void)state;
    /* 8 to 64 take the AVX2 path where the CPU has it; 12 and 20 the plain one. */
    const size_t head_dims[] = {8, 12, 16, 20, 24, 32, 40, 64};
    const size_t lengths[] = {1, 2, 5, 6, 7, 13, 16, 17, 31, 64, 100, 129};
    for (size_t h = 0; h < sizeof(head_dims) / sizeof(head_dims[0]); h++) {
        for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
            double error = attention_error(lengths[l], head_dims[h], false);
            if (error > 2e-6)
                fail_msg("head_dim %zu, len %zu: largest difference %.3g, limit 2e-6",
                         head_dims[h], lengths[l], error);
        }
    }
}


static void avx512_matches_reference_all_shapes(void **state)
{
    (void)state;
    if (!an__attention_avx512_usable(32)) {
        print_message("this CPU has no AVX-512F, so the encoder does not use this kernel\n");
        skip();
        return;
    }
    const size_t head_dims[] = {16, 32, 48, 64};
    const size_t lengths[] = {1, 2, 11, 12, 13, 16, 17, 24, 31, 32, 33, 48, 100, 129, 256};
    for (size_t h = 0; h < sizeof(head_dims) / sizeof(head_dims[0]); h++) {
        assert_true(an__attention_avx512_usable(head_dims[h]));
        for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
            double error = attention_error(lengths[l], head_dims[h], true);
            if (error > 2e-6)
                fail_msg("AVX-512, head_dim %zu, len %zu: largest difference %.3g, limit 2e-6",
                         head_dims[h], lengths[l], error);
        }
    }
    assert_false(an__attention_avx512_usable(8));
    assert_false(an__attention_avx512_usable(40));
    assert_false(an__attention_avx512_usable(80));
}


static void single_token_returns_its_value(void **state)
{
    (void)state;
    size_t head_dim = 32, ld = 96;
    float qkv[96], out[32], scratch[2048];
    for (size_t i = 0; i < ld; i++)
        qkv[i] = (float)i - 40.0f;
    an__attention_head(1, head_dim, 0.5f, qkv, qkv + 32, qkv + 64, ld, out, head_dim, scratch);
    for (size_t d = 0; d < head_dim; d++)
        assert_float_equal(out[d], qkv[64 + d], 1e-6);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_reference_all_shapes),
        cmocka_unit_test(avx512_matches_reference_all_shapes),
        cmocka_unit_test(single_token_returns_its_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
