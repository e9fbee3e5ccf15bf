/*
 * Attention for one sentence and head, fused so that a block of query rows
 * goes through its scores, softmax and weighted sum of values while the
 * scores are still in L1.
 *
 * Q K^T is a product with an inner dimension of head_dim (32 in MiniLM),
 * too short for dot products with horizontal sums to pay off. The keys are
 * transposed once into scratch instead, so each score block is a sum over
 * head_dim of a broadcast query element times eight consecutive keys: six
 * query rows by sixteen keys keep twelve accumulators in registers. The
 * weighted sum of values does the same with six query rows by sixteen value
 * columns.
 */
#include "embed/attention.h"

#include "embed/gemm_small.h"
#include "embed/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AN_ATTENTION_AVX2 1
#endif

/* Query rows per block: six rows by two vectors use twelve of the sixteen registers. */
#define QUERY_BLOCK 6

/* The transposed keys of a longer head would not stay in L1 next to the values. */
#define FAST_MAX_HEAD_DIM 64

/* Score rows that scratch holds: the AVX-512 kernel's query block of twelve. */
#define SCRATCH_SCORE_ROWS 12

static size_t round_up16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}


size_t an__attention_scratch_floats(size_t len, size_t head_dim)
{
    size_t padded = round_up16(len);
    size_t fused = 2 * head_dim * padded + SCRATCH_SCORE_ROWS * padded;
    size_t plain = len * len;
    return fused > plain ? fused : plain;
}


/* Transposes the keys: kt[d][j] = k[j][d]. The columns from len to padded are zero. */
static void transpose_keys(size_t len, size_t padded, size_t head_dim, const float *k,
                           size_t ld, float *kt)
{
    for (size_t d = 0; d < head_dim; d++) {
        float *row = kt + d * padded;
        for (size_t j = 0; j < len; j++)
            row[j] = k[j * ld + d];
        for (size_t j = len; j < padded; j++)
            row[j] = 0.0f;
    }
}


/*
 * Copies the head's value rows next to each other. In place they are
 * 3 * hidden floats apart (4,608 bytes in MiniLM), a stride that maps them
 * onto a few L1 sets. Read in place, they missed L1 on most passes.
 */
static void pack_values(size_t len, size_t head_dim, const float *v, size_t ld, float *packed)
{
    for (size_t j = 0; j < len; j++) {
        for (size_t d = 0; d < head_dim; d++)
            packed[j * head_dim + d] = v[j * ld + d];
    }
}


void an__attention_fused(const an__attention_kernels_t *kernels, size_t len, size_t head_dim,
                         float scale, const float *q, const float *k, const float *v, size_t ld,
                         float *out, size_t ldo, float *scratch)
{
    size_t padded = round_up16(len);
    float *kt = scratch;
    float *values = kt + head_dim * padded;
    float *scores = values + head_dim * padded;
    size_t block = (size_t)kernels->query_block;
    transpose_keys(len, padded, head_dim, k, ld, kt);
    pack_values(len, head_dim, v, ld, values);

    for (size_t i = 0; i < len; i += block) {
        int rows = len - i < block ? (int)(len - i) : (int)block;
        kernels->scores(rows, head_dim, scale, q + i * ld, ld, kt, padded, scores);
        for (int r = 0; r < rows; r++)
            kernels->softmax(scores + (size_t)r * padded, len);
        for (size_t c = 0; c < head_dim; c += kernels->columns) {
            int vecs = head_dim - c >= kernels->columns ? 2 : 1;
            kernels->values(rows, vecs, len, scores, padded, values + c, head_dim,
                            out + i * ldo + c, ldo);
        }
    }
}


static void attention_plain(size_t len, size_t head_dim, float scale, const float *q,
                            const float *k, const float *v, size_t ld, float *out, size_t ldo,
                            float *scores)
{
    an__gemm_nt(len, len, head_dim, scale, q, ld, k, ld, NULL, scores, len);
    an__softmax_rows(scores, len, len);
    an__gemm_nn_small(len, head_dim, len, scores, len, v, ld, out, ldo);
}


#ifdef AN_ATTENTION_AVX2

#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define AVX2_FUNC __attribute__((target("avx2,fma"))) static

/* scores[r][j] = scale * q[r] . k[j] for r < rows and every j below padded. */
AVX2_INLINE void score_rows(int rows, size_t head_dim, float scale, const float *q, size_t ld,
                            const float *kt, size_t padded, float *scores)
{
    __m256 factor = _mm256_set1_ps(scale);
    for (size_t j = 0; j < padded; j += 16) {
        __m256 acc[QUERY_BLOCK][2];
        for (int r = 0; r < rows; r++)
            acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (size_t d = 0; d < head_dim; d++) {
            __m256 k0 = _mm256_loadu_ps(kt + d * padded + j);
            __m256 k1 = _mm256_loadu_ps(kt + d * padded + j + 8);
            for (int r = 0; r < rows; r++) {
                __m256 x = _mm256_broadcast_ss(q + r * ld + d);
                acc[r][0] = _mm256_fmadd_ps(x, k0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, k1, acc[r][1]);
            }
        }
        for (int r = 0; r < rows; r++) {
            _mm256_storeu_ps(scores + r * padded + j, _mm256_mul_ps(acc[r][0], factor));
            _mm256_storeu_ps(scores + r * padded + j + 8, _mm256_mul_ps(acc[r][1], factor));
        }
    }
}


AVX2_FUNC void score_block(int rows, size_t head_dim, float scale, const float *q, size_t ld,
                           const float *kt, size_t padded, float *scores)
{
    switch (rows) {
    case 6: score_rows(6, head_dim, scale, q, ld, kt, padded, scores); break;
    case 5: score_rows(5, head_dim, scale, q, ld, kt, padded, scores); break;
    case 4: score_rows(4, head_dim, scale, q, ld, kt, padded, scores); break;
    case 3: score_rows(3, head_dim, scale, q, ld, kt, padded, scores); break;
    case 2: score_rows(2, head_dim, scale, q, ld, kt, padded, scores); break;
    default: score_rows(1, head_dim, scale, q, ld, kt, padded, scores); break;
    }
}


/*
 * The accumulators of weigh_values are named variables: GCC 12 kept an
 * array of them on the stack and stored each one on every step of j.
 */
#define DECLARE_ROW(r) __m256 acc##r##_0 = zero, acc##r##_1 = zero;

#define STEP_ROW(r)                                                                        \
    if ((r) < rows) {                                                                      \
        __m256 w = _mm256_broadcast_ss(p + (size_t)(r) * ldp + j);                        \
        acc##r##_0 = _mm256_fmadd_ps(w, x0, acc##r##_0);                                   \
        if (vecs > 1)                                                                      \
            acc##r##_1 = _mm256_fmadd_ps(w, x1, acc##r##_1);                               \
    }

#define STORE_ROW(r)                                                                       \
    if ((r) < rows) {                                                                      \
        _mm256_storeu_ps(out + (size_t)(r) * ldo, acc##r##_0);                            \
        if (vecs > 1)                                                                      \
            _mm256_storeu_ps(out + (size_t)(r) * ldo + 8, acc##r##_1);                    \
    }

#define FOR_EACH_ROW(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* out[r][0..8 vecs) = sum over j < len of p[r][j] * v[j][0..8 vecs), for r < rows. */
AVX2_INLINE void weigh_values(int rows, int vecs, size_t len, const float *p, size_t ldp,
                              const float *v, size_t ld, float *out, size_t ldo)
{
    const __m256 zero = _mm256_setzero_ps();
    FOR_EACH_ROW(DECLARE_ROW)
    for (size_t j = 0; j < len; j++) {
        __m256 x0 = _mm256_loadu_ps(v + j * ld);
        __m256 x1 = vecs > 1 ? _mm256_loadu_ps(v + j * ld + 8) : zero;
        FOR_EACH_ROW(STEP_ROW)
    }
    FOR_EACH_ROW(STORE_ROW)
}


#define WEIGH_CASES(vecs)                                                                  \
    switch (rows) {                                                                        \
    case 6: weigh_values(6, vecs, len, p, ldp, v, ld, out, ldo); break;                   \
    case 5: weigh_values(5, vecs, len, p, ldp, v, ld, out, ldo); break;                   \
    case 4: weigh_values(4, vecs, len, p, ldp, v, ld, out, ldo); break;                   \
    case 3: weigh_values(3, vecs, len, p, ldp, v, ld, out, ldo); break;                   \
    case 2: weigh_values(2, vecs, len, p, ldp, v, ld, out, ldo); break;                   \
    default: weigh_values(1, vecs, len, p, ldp, v, ld, out, ldo); break;                  \
    }

/* Up to six rows by one or two vectors: twelve accumulators, like score_rows. */
AVX2_FUNC void value_block(int rows, int vecs, size_t len, const float *p, size_t ldp,
                           const float *v, size_t ld, float *out, size_t ldo)
{
    if (vecs == 2) {
        WEIGH_CASES(2)
    } else {
        WEIGH_CASES(1)
    }
}


static void softmax_row(float *row, size_t len)
{
    an__softmax_rows(row, 1, len);
}


static const an__attention_kernels_t avx2_kernels = {QUERY_BLOCK, 16, score_block, softmax_row,
                                                     value_block};

static int cpu_has_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#endif


void an__attention_head(size_t len, size_t head_dim, float scale, const float *q,
                        const float *k, const float *v, size_t ld, float *out, size_t ldo,
                        float *scratch)
{
#ifdef AN_ATTENTION_AVX2
    if (head_dim % 8 == 0 && head_dim <= FAST_MAX_HEAD_DIM && cpu_has_avx2_fma()) {
        an__attention_fused(&avx2_kernels, len, head_dim, scale, q, k, v, ld, out, ldo, scratch);
        return;
    }
#endif
    attention_plain(len, head_dim, scale, q, k, v, ld, out, ldo, scratch);
}
