/*
 * The small-batch product with the usual roles of a GEMM micro-kernel
 * swapped: the weights are broadcast one element at a time and the tokens
 * fill the vector lanes. With at most 32 tokens, one to four vectors of
 * tokens by twelve, six, four or three output features keep twelve accumulators in
 * registers, and every weight is loaded once per call. Dot products along k,
 * as in an__gemm_nt, need horizontal sums and reload each weight row once
 * per block of four tokens.
 */
#include "embed/gemm_tokens.h"

#include "embed/gemm_small.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AN_TOKENS_AVX2 1
#endif

size_t an__gemm_tokens_stride(size_t m)
{
    return (m + 7) & ~(size_t)7;
}


void an__gemm_tokens_transpose(const float *x, size_t m, size_t k, size_t ldx, float *xt)
{
    size_t stride = an__gemm_tokens_stride(m);
    for (size_t p = 0; p < k; p++) {
        float *row = xt + p * stride;
        for (size_t i = 0; i < m; i++)
            row[i] = x[i * ldx + p];
        for (size_t i = m; i < stride; i++)
            row[i] = 0.0f;
    }
}


#ifdef AN_TOKENS_AVX2

/* Output features per block for one to four vectors of tokens. */
static const size_t features_per_block[5] = {0, 12, 6, 4, 3};

/* Writes one feature's sums for m tokens into column 0 of c, plus its bias. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
store_feature(size_t m, __m256 s0, __m256 s1, __m256 s2, __m256 s3, float bias, float *c,
              size_t ldc)
{
    float lanes[AN_GEMM_TOKENS_MAX];
    _mm256_storeu_ps(lanes, s0);
    _mm256_storeu_ps(lanes + 8, s1);
    _mm256_storeu_ps(lanes + 16, s2);
    _mm256_storeu_ps(lanes + 24, s3);
    /* m is at most AN_GEMM_TOKENS_MAX. The explicit bound keeps GCC from warning about lanes. */
    size_t count = m < AN_GEMM_TOKENS_MAX ? m : AN_GEMM_TOKENS_MAX;
    for (size_t i = 0; i < count; i++)
        c[i * ldc] = lanes[i] + bias;
}


/*
 * The accumulators are named variables, not an array: GCC 12 kept an array
 * of them on the stack and stored all of them on every step of k.
 */
#define DECLARE_FEATURE(f)                                                                 \
    __m256 acc##f##_0 = zero, acc##f##_1 = zero, acc##f##_2 = zero, acc##f##_3 = zero;

#define STEP_FEATURE(f)                                                                    \
    if ((f) < feats) {                                                                     \
        __m256 weight = _mm256_broadcast_ss(w + (size_t)(f) * ldw + p);                   \
        acc##f##_0 = _mm256_fmadd_ps(weight, x0, acc##f##_0);                              \
        if (vecs > 1)                                                                      \
            acc##f##_1 = _mm256_fmadd_ps(weight, x1, acc##f##_1);                          \
        if (vecs > 2)                                                                      \
            acc##f##_2 = _mm256_fmadd_ps(weight, x2, acc##f##_2);                          \
        if (vecs > 3)                                                                      \
            acc##f##_3 = _mm256_fmadd_ps(weight, x3, acc##f##_3);                          \
    }

#define STORE_FEATURE(f)                                                                   \
    if ((f) < feats)                                                                       \
        store_feature(m, acc##f##_0, acc##f##_1, acc##f##_2, acc##f##_3, bias[f], c + (f), ldc);

#define FOR_EACH_FEATURE(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* One block: features 0 .. feats of w (rows ldw apart) for all m tokens. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
tokens_block(int vecs, int feats, size_t m, size_t k, const float *xt, size_t stride,
             const float *w, size_t ldw, const float *bias, float *c, size_t ldc)
{
    const __m256 zero = _mm256_setzero_ps();
    FOR_EACH_FEATURE(DECLARE_FEATURE)
    for (size_t p = 0; p < k; p++) {
        const float *row = xt + p * stride;
        __m256 x0 = _mm256_loadu_ps(row);
        __m256 x1 = vecs > 1 ? _mm256_loadu_ps(row + 8) : zero;
        __m256 x2 = vecs > 2 ? _mm256_loadu_ps(row + 16) : zero;
        __m256 x3 = vecs > 3 ? _mm256_loadu_ps(row + 24) : zero;
        FOR_EACH_FEATURE(STEP_FEATURE)
    }
    FOR_EACH_FEATURE(STORE_FEATURE)
}


__attribute__((target("avx2,fma"))) static void
gemm_tokens_avx2(size_t m, size_t n, size_t k, const float *xt, const float *w, size_t ldw,
                 const float *bias, float *c, size_t ldc, size_t *done)
{
    size_t stride = an__gemm_tokens_stride(m);
    int vecs = (int)(stride / 8);
    size_t feats = features_per_block[vecs];
    size_t j = 0;
    for (; j + feats <= n; j += feats) {
        const float *wj = w + j * ldw;
        if (vecs == 1)
            tokens_block(1, 12, m, k, xt, stride, wj, ldw, bias + j, c + j, ldc);
        else if (vecs == 2)
            tokens_block(2, 6, m, k, xt, stride, wj, ldw, bias + j, c + j, ldc);
        else if (vecs == 3)
            tokens_block(3, 4, m, k, xt, stride, wj, ldw, bias + j, c + j, ldc);
        else
            tokens_block(4, 3, m, k, xt, stride, wj, ldw, bias + j, c + j, ldc);
    }
    *done = j;
}


static int cpu_has_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#endif


void an__gemm_tokens(size_t m, size_t n, size_t k, const float *x, size_t ldx, const float *xt,
                     const float *w, size_t ldw, const float *bias, float *c, size_t ldc)
{
    size_t done = 0;
#ifdef AN_TOKENS_AVX2
    if (m > 0 && m <= AN_GEMM_TOKENS_MAX && cpu_has_avx2_fma())
        gemm_tokens_avx2(m, n, k, xt, w, ldw, bias, c, ldc, &done);
#else
    (void)xt;
#endif
    if (done < n)
        an__gemm_nt(m, n - done, k, 1.0f, x, ldx, w + done * ldw, ldw, bias + done, c + done,
                    ldc);
}
