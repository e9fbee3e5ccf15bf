/*
 * Encoder kernels. Sums that decide the output (LayerNorm statistics, the
 * softmax denominator, the L2 norm) accumulate in double, so their rounding
 * does not grow with the row width.
 *
 * exp and erf are computed here rather than by libm. glibc's expf and erff
 * are scalar calls that stop the compiler from vectorising the GELU and
 * softmax loops, and those loops then took about a third of the time of a
 * batch of 32 sentences of 128 tokens on a MiniLM-sized model. On x86-64 the hot kernels are built twice, for AVX2
 * with FMA and for the baseline, and the loader picks one per CPU
 * (GCC's target_clones); other targets get the portable build only.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "embed/kernels.h"

/*
 * Nothing here reads the floating-point exception flags, and without this
 * GCC 12 will not if-convert, so will not vectorise, the exp and erf loops.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

/*
 * Not under ThreadSanitizer: it instruments the ifunc resolvers that
 * target_clones generates, and they run before its runtime is set up, so
 * the program crashes at load (GCC 12).
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__)
#define AN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define AN_MULTIVERSION
#endif

/*
 * e^x for x <= 0 with a relative error below 2.5e-7 (measured over
 * [-87, 0]), branch-free so loops over it vectorise. It splits x = n ln 2 + r
 * with |r| <= ln 2 / 2, takes e^r from its degree-6 Taylor polynomial and
 * 2^n from the exponent bits. Inputs below -87 return 0 (e^-87 is 1.6e-38,
 * near FLT_MIN).
 */
static inline float exp_nonpositive(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f; /* ln 2 split so n * ln2_hi is exact */
    const float ln2_lo = 1.42860682030941723e-6f;
    int zero = x < -87.0f;
    x = x < -87.0f ? -87.0f : x;

    /* Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call. */
    const float round_shift = 12582912.0f;
    float n = (x * log2e + round_shift) - round_shift;
    float r = x - n * ln2_hi - n * ln2_lo;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;

    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    /* Computed before the select, so the compiler need not speculate a multiply to vectorise. */
    float value = p * scale;
    return zero ? 0.0f : value;
}


/*
 * erf(x) by Abramowitz and Stegun's formula 7.1.26 (Handbook of
 * Mathematical Functions, 1964): 1 - t (a1 + t (a2 + ... a5)) e^(-x^2) with
 * t = 1 / (1 + p |x|), absolute error at most 1.5e-7, odd in x. GELU
 * through it is within 5e-7 of the exact one over [-10, 10].
 */
static inline float erf_approx(float x)
{
    float a = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float poly = 1.061405429f;
    poly = poly * t - 1.453152027f;
    poly = poly * t + 1.421413741f;
    poly = poly * t - 0.284496736f;
    poly = poly * t + 0.254829592f;
    float y = 1.0f - poly * t * exp_nonpositive(-a * a);
    return x < 0 ? -y : y;
}


AN_MULTIVERSION
void an__add_bias(float *x, const float *bias, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        for (size_t c = 0; c < cols; c++)
            row[c] += bias[c];
    }
}


AN_MULTIVERSION
void an__add_inplace(float *restrict x, const float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}


/*
 * The sums below keep eight partial sums, one per lane, in double and add
 * them at the end. The compiler vectorises lanes like these but not one
 * running sum, whose order it must keep, and a running double sum made
 * LayerNorm and softmax wait on one addition's latency per element. The
 * order is fixed by the code, so results do not depend on the CPU.
 */
#define SUM_LANES 8

static inline double finish_lanes(const double lanes[SUM_LANES])
{
    double total = 0;
    for (size_t l = 0; l < SUM_LANES; l++)
        total += lanes[l];
    return total;
}


static inline double sum_floats(const float *x, size_t n)
{
    double lanes[SUM_LANES] = {0};
    size_t c = 0;
    for (; c + SUM_LANES <= n; c += SUM_LANES) {
        for (size_t l = 0; l < SUM_LANES; l++)
            lanes[l] += x[c + l];
    }
    for (; c < n; c++)
        lanes[0] += x[c];
    return finish_lanes(lanes);
}


static inline double sum_squared_deviations(const float *x, size_t n, float mean)
{
    double lanes[SUM_LANES] = {0};
    size_t c = 0;
    for (; c + SUM_LANES <= n; c += SUM_LANES) {
        for (size_t l = 0; l < SUM_LANES; l++) {
            double d = (double)(x[c + l] - mean);
            lanes[l] += d * d;
        }
    }
    for (; c < n; c++) {
        double d = (double)(x[c] - mean);
        lanes[0] += d * d;
    }
    return finish_lanes(lanes);
}


static inline float max_floats(const float *x, size_t n)
{
    float lanes[SUM_LANES];
    for (size_t l = 0; l < SUM_LANES; l++)
        lanes[l] = x[0];
    size_t c = 0;
    for (; c + SUM_LANES <= n; c += SUM_LANES) {
        for (size_t l = 0; l < SUM_LANES; l++)
            lanes[l] = x[c + l] > lanes[l] ? x[c + l] : lanes[l];
    }
    for (; c < n; c++)
        lanes[0] = x[c] > lanes[0] ? x[c] : lanes[0];
    float max = lanes[0];
    for (size_t l = 1; l < SUM_LANES; l++)
        max = lanes[l] > max ? lanes[l] : max;
    return max;
}


AN_MULTIVERSION
void an__layer_norm(float *x, const float *gamma, const float *beta, size_t rows, size_t cols,
                    float eps)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float mean = (float)(sum_floats(row, cols) / (double)cols);
        double squares = sum_squared_deviations(row, cols, mean);
        float inv_std = (float)(1.0 / sqrt(squares / (double)cols + eps));
        for (size_t c = 0; c < cols; c++)
            row[c] = (row[c] - mean) * inv_std * gamma[c] + beta[c];
    }
}


AN_MULTIVERSION
void an__gelu_erf(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erf_approx(x[i] * inv_sqrt2));
}


AN_MULTIVERSION
void an__softmax_rows(float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float max = max_floats(row, cols);
        for (size_t c = 0; c < cols; c++)
            row[c] = exp_nonpositive(row[c] - max);
        float inv = (float)(1.0 / sum_floats(row, cols));
        for (size_t c = 0; c < cols; c++)
            row[c] *= inv;
    }
}


AN_MULTIVERSION
void an__gemm_nn_small(size_t m, size_t n, size_t k, const float *restrict p, size_t ldp,
                       const float *restrict v, size_t ldv, float *restrict c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        for (size_t x = 0; x < n; x++)
            row[x] = 0.0f;
        for (size_t j = 0; j < k; j++) {
            float weight = p[i * ldp + j];
            const float *value = v + j * ldv;
            for (size_t x = 0; x < n; x++)
                row[x] += weight * value[x];
        }
    }
}


void an__l2_normalize(float *x, size_t n)
{
    double squares = 0;
    for (size_t i = 0; i < n; i++)
        squares += (double)x[i] * x[i];
    double norm = sqrt(squares);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}
