/*
 * The AVX-512 form of attention.c's fused kernel, for heads of 16, 32, 48
 * or 64 dimensions. Twelve query rows by 32 keys keep 24 zmm accumulators
 * for the scores, and twelve rows by 32 value columns for the weighted
 * sum. Keys are padded to a multiple of 16, not 32, so that a short
 * sentence does not pay for keys it lacks: the last step of a row may be a
 * single vector.
 */
#include "embed/attention.h"


#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AN_ATTENTION_AVX512 1
#include "embed/simd512.h"
#endif

/* Query rows per block: twelve rows by two vectors use 24 of the 32 registers. */
#define WIDE_QUERY_BLOCK 12

#define WIDE_MAX_HEAD_DIM 64

#ifdef AN_ATTENTION_AVX512

#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline
#define AVX512_FUNC __attribute__((target("avx512f"))) static

bool an__attention_avx512_usable(size_t head_dim)
{
    return head_dim % 16 == 0 && head_dim <= WIDE_MAX_HEAD_DIM &&
           __builtin_cpu_supports("avx512f");
}


/*
 * The accumulators are named variables, one pair per query row: in the
 * AVX2 kernel, GCC 12 kept an array of them on the stack.
 */
#define DECLARE_ROW(r) __m512 acc##r##_0 = zero, acc##r##_1 = zero;

#define SCORE_STEP(r)                                                                      \
    if ((r) < rows) {                                                                      \
        __m512 x = _mm512_set1_ps(q[(size_t)(r) * ld + d]);                               \
        acc##r##_0 = _mm512_fmadd_ps(x, k0, acc##r##_0);                                   \
        if (vecs > 1)                                                                      \
            acc##r##_1 = _mm512_fmadd_ps(x, k1, acc##r##_1);                               \
    }

#define SCORE_STORE(r)                                                                     \
    if ((r) < rows) {                                                                      \
        _mm512_storeu_ps(scores + (size_t)(r) * padded + j, _mm512_mul_ps(acc##r##_0, factor)); \
        if (vecs > 1)                                                                      \
            _mm512_storeu_ps(scores + (size_t)(r) * padded + j + 16,                      \
                             _mm512_mul_ps(acc##r##_1, factor));                           \
    }

#define FOR_EACH_ROW(X)                                                                    \
    X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

/* scores[r][j .. j + 16 vecs) = scale * q[r] . k[j ..], for r < rows. */
AVX512_INLINE void score_vectors(int rows, int vecs, size_t head_dim, __m512 factor,
                                 const float *q, size_t ld, const float *kt, size_t padded,
                                 size_t j, float *scores)
{
    const __m512 zero = _mm512_setzero_ps();
    FOR_EACH_ROW(DECLARE_ROW)
    for (size_t d = 0; d < head_dim; d++) {
        __m512 k0 = _mm512_loadu_ps(kt + d * padded + j);
        __m512 k1 = vecs > 1 ? _mm512_loadu_ps(kt + d * padded + j + 16) : zero;
        FOR_EACH_ROW(SCORE_STEP)
    }
    FOR_EACH_ROW(SCORE_STORE)
}


AVX512_INLINE void score_rows(int rows, size_t head_dim, float scale, const float *q, size_t ld,
                              const float *kt, size_t padded, float *scores)
{
    __m512 factor = _mm512_set1_ps(scale);
    size_t j = 0;
    for (; j + 32 <= padded; j += 32)
        score_vectors(rows, 2, head_dim, factor, q, ld, kt, padded, j, scores);
    if (j < padded)
        score_vectors(rows, 1, head_dim, factor, q, ld, kt, padded, j, scores);
}


#define VALUE_STEP(r)                                                                      \
    if ((r) < rows) {                                                                      \
        __m512 w = _mm512_set1_ps(p[(size_t)(r) * ldp + j]);                              \
        acc##r##_0 = _mm512_fmadd_ps(w, x0, acc##r##_0);                                   \
        if (vecs > 1)                                                                      \
            acc##r##_1 = _mm512_fmadd_ps(w, x1, acc##r##_1);                               \
    }

#define VALUE_STORE(r)                                                                     \
    if ((r) < rows) {                                                                      \
        _mm512_storeu_ps(out + (size_t)(r) * ldo, acc##r##_0);                            \
        if (vecs > 1)                                                                      \
            _mm512_storeu_ps(out + (size_t)(r) * ldo + 16, acc##r##_1);                   \
    }

/* out[r][0 .. 16 vecs) = sum over j < len of p[r][j] * v[j][0 ..], for r < rows. */
AVX512_INLINE void weigh_values(int rows, int vecs, size_t len, const float *p, size_t ldp,
                                const float *v, size_t ldv, float *out, size_t ldo)
{
    const __m512 zero = _mm512_setzero_ps();
    FOR_EACH_ROW(DECLARE_ROW)
    for (size_t j = 0; j < len; j++) {
        __m512 x0 = _mm512_loadu_ps(v + j * ldv);
        __m512 x1 = vecs > 1 ? _mm512_loadu_ps(v + j * ldv + 16) : zero;
        FOR_EACH_ROW(VALUE_STEP)
    }
    FOR_EACH_ROW(VALUE_STORE)
}


/* The lanes of the vector at row[j] that lie below len. */
static __mmask16 tail_mask(size_t len, size_t j)
{
    return len - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (len - j)) - 1);
}


/*
 * Softmax of row[0 .. len) in place, as an__softmax_rows computes it: shift
 * by the maximum, e^x by the same polynomial, and the sum in double.
 */
AVX512_FUNC void softmax_row(float *row, size_t len)
{
    __m512 top = _mm512_set1_ps(row[0]);
    for (size_t j = 0; j < len; j += 16)
        top = _mm512_mask_max_ps(top, tail_mask(len, j), top, _mm512_loadu_ps(row + j));
    __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(top));

    __m512d sum_lo = _mm512_setzero_pd(), sum_hi = _mm512_setzero_pd();
    for (size_t j = 0; j < len; j += 16) {
        __mmask16 lanes = tail_mask(len, j);
        __m512 x = _mm512_maskz_loadu_ps(lanes, row + j);
        __m512 e = _mm512_maskz_mov_ps(lanes, an__exp_nonpositive_512(_mm512_sub_ps(x, shift)));
        _mm512_mask_storeu_ps(row + j, lanes, e);
        sum_lo = _mm512_add_pd(sum_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        sum_hi = _mm512_add_pd(sum_hi, _mm512_cvtps_pd(_mm256_castpd_ps(
                                           _mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double total = _mm512_reduce_add_pd(_mm512_add_pd(sum_lo, sum_hi));
    __m512 scale = _mm512_set1_ps((float)(1.0 / total));
    for (size_t j = 0; j < len; j += 16) {
        __mmask16 lanes = tail_mask(len, j);
        _mm512_mask_storeu_ps(row + j, lanes, _mm512_mul_ps(_mm512_loadu_ps(row + j), scale));
    }
}


/* Expands call(n) for each block height n, so that every row count is a constant. */
#define ROW_CASES(call)                                                                    \
    switch (rows) {                                                                        \
    case 12: call(12); break;                                                              \
    case 11: call(11); break;                                                              \
    case 10: call(10); break;                                                              \
    case 9: call(9); break;                                                                \
    case 8: call(8); break;                                                                \
    case 7: call(7); break;                                                                \
    case 6: call(6); break;                                                                \
    case 5: call(5); break;                                                                \
    case 4: call(4); break;                                                                \
    case 3: call(3); break;                                                                \
    case 2: call(2); break;                                                                \
    default: call(1); break;                                                               \
    }

AVX512_FUNC void score_block(int rows, size_t head_dim, float scale, const float *q, size_t ld,
                             const float *kt, size_t padded, float *scores)
{
#define SCORE_CALL(n) score_rows(n, head_dim, scale, q, ld, kt, padded, scores)
    ROW_CASES(SCORE_CALL)
#undef SCORE_CALL
}


AVX512_FUNC void value_block(int rows, int vecs, size_t len, const float *p, size_t ldp,
                             const float *v, size_t ldv, float *out, size_t ldo)
{
#define VALUE_CALL_2(n) weigh_values(n, 2, len, p, ldp, v, ldv, out, ldo)
#define VALUE_CALL_1(n) weigh_values(n, 1, len, p, ldp, v, ldv, out, ldo)
    if (vecs == 2) {
        ROW_CASES(VALUE_CALL_2)
    } else {
        ROW_CASES(VALUE_CALL_1)
    }
#undef VALUE_CALL_2
#undef VALUE_CALL_1
}


static const an__attention_kernels_t avx512_kernels = {WIDE_QUERY_BLOCK, 32, score_block,
                                                       softmax_row, value_block};

void an__attention_head_avx512(size_t len, size_t head_dim, float scale, const float *q,
                               const float *k, const float *v, size_t ld, float *out,
                               size_t ldo, float *scratch)
{
    an__attention_fused(&avx512_kernels, len, head_dim, scale, q, k, v, ld, out, ldo, scratch);
}

#else

bool an__attention_avx512_usable(size_t head_dim)
{
    (void)head_dim;
    return false;
}


void an__attention_head_avx512(size_t len, size_t head_dim, float scale, const float *q,
                               const float *k, const float *v, size_t ld, float *out,
                               size_t ldo, float *scratch)
{
    an__attention_head(len, head_dim, scale, q, k, v, ld, out, ldo, scratch);
}

#endif
