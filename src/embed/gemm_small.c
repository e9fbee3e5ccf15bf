/*
 * C = alpha A W^T + bias for small m. Each output is a dot product of a row
 * of A and a row of W, both contiguous in k. The kernel takes two rows of W
 * at a time and runs them against every row of A in blocks of four, so the
 * two W rows stay in L1 while A, small by assumption, comes from L1 or L2.
 * Eight accumulators of eight floats each stay in registers.
 */
#include <stdbool.h>

#include "embed/gemm_small.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AN_GEMM_AVX2 1
#endif

static float dot_portable(const float *x, const float *y, size_t k)
{
    float sum = 0;
    for (size_t p = 0; p < k; p++)
        sum += x[p] * y[p];
    return sum;
}


static void gemm_nt_portable(size_t m, size_t n, size_t k, float alpha, const float *a,
                             size_t lda, const float *w, size_t ldw, const float *bias, float *c,
                             size_t ldc)
{
    for (size_t j = 0; j < n; j++) {
        float b = bias ? bias[j] : 0.0f;
        for (size_t i = 0; i < m; i++)
            c[i * ldc + j] = alpha * dot_portable(a + i * lda, w + j * ldw, k) + b;
    }
}


#ifdef AN_GEMM_AVX2

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}


/* Rows i0 .. i0 + rows (rows <= 4) of A against rows j0 .. j0 + cols (cols <= 2) of W. */
__attribute__((target("avx2,fma"))) static void block_avx2(size_t rows, size_t cols, size_t k,
                                                            const float *a, size_t lda,
                                                            const float *w, size_t ldw,
                                                            const float *next_w,
                                                            float out[4][2])
{
    __m256 acc[4][2];
    for (size_t i = 0; i < 4; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();

    size_t k8 = k & ~(size_t)7;
    const float *w1 = cols > 1 ? w + ldw : w;
    const float *a1 = rows > 1 ? a + lda : a;
    const float *a2 = rows > 2 ? a + 2 * lda : a;
    const float *a3 = rows > 3 ? a + 3 * lda : a;
    for (size_t p = 0; p < k8; p += 8) {
        _mm_prefetch((const char *)(next_w + p), _MM_HINT_T0);
        _mm_prefetch((const char *)(next_w + ldw + p), _MM_HINT_T0);
        __m256 x0 = _mm256_loadu_ps(w + p);
        __m256 x1 = _mm256_loadu_ps(w1 + p);
        __m256 y = _mm256_loadu_ps(a + p);
        acc[0][0] = _mm256_fmadd_ps(y, x0, acc[0][0]);
        acc[0][1] = _mm256_fmadd_ps(y, x1, acc[0][1]);
        y = _mm256_loadu_ps(a1 + p);
        acc[1][0] = _mm256_fmadd_ps(y, x0, acc[1][0]);
        acc[1][1] = _mm256_fmadd_ps(y, x1, acc[1][1]);
        y = _mm256_loadu_ps(a2 + p);
        acc[2][0] = _mm256_fmadd_ps(y, x0, acc[2][0]);
        acc[2][1] = _mm256_fmadd_ps(y, x1, acc[2][1]);
        y = _mm256_loadu_ps(a3 + p);
        acc[3][0] = _mm256_fmadd_ps(y, x0, acc[3][0]);
        acc[3][1] = _mm256_fmadd_ps(y, x1, acc[3][1]);
    }

    const float *arow[4] = {a, a1, a2, a3};
    const float *wrow[2] = {w, w1};
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++) {
            float sum = hsum256(acc[i][j]);
            for (size_t p = k8; p < k; p++)
                sum += arow[i][p] * wrow[j][p];
            out[i][j] = sum;
        }
    }
}


__attribute__((target("avx2,fma"))) static void gemm_nt_avx2(size_t m, size_t n, size_t k,
                                                              float alpha, const float *a,
                                                              size_t lda, const float *w,
                                                              size_t ldw, const float *bias,
                                                              float *c, size_t ldc)
{
    for (size_t j = 0; j < n; j += 2) {
        size_t cols = n - j < 2 ? n - j : 2;
        for (size_t i = 0; i < m; i += 4) {
            size_t rows = m - i < 4 ? m - i : 4;
            float out[4][2];
            /* Rows j + 4 and j + 5 of W are prefetched, or row j again near the end. */
            const float *next_w = j + 6 <= n ? w + (j + 4) * ldw : w + j * ldw;
            block_avx2(rows, cols, k, a + i * lda, lda, w + j * ldw, ldw, next_w, out);
            for (size_t r = 0; r < rows; r++) {
                for (size_t q = 0; q < cols; q++)
                    c[(i + r) * ldc + j + q] = alpha * out[r][q] + (bias ? bias[j + q] : 0.0f);
            }
        }
    }
}


/* libgcc fills the CPU model before main, so this is two loads of a global. */
static bool cpu_has_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#endif


void an__gemm_nt(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                 const float *w, size_t ldw, const float *bias, float *c, size_t ldc)
{
#ifdef AN_GEMM_AVX2
    if (cpu_has_avx2_fma()) {
        gemm_nt_avx2(m, n, k, alpha, a, lda, w, ldw, bias, c, ldc);
        return;
    }
#endif
    gemm_nt_portable(m, n, k, alpha, a, lda, w, ldw, bias, c, ldc);
}
