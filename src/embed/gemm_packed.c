/*
 * The packed-weight product. A block of up to twelve rows of x by one panel
 * of 32 output features keeps 24 accumulators in zmm registers. Each step
 * of k loads the panel's 32 contiguous weights as two vectors. It then
 * broadcasts one value of each row of x. Rows are taken in
 * blocks small enough for their share of x to stay in L2 while every panel
 * passes over them.
 */
#include "embed/gemm_packed.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define AN_PACKED_AVX512 1
#include "embed/simd512.h"
#endif

/* Rows of x per kernel call: 24 accumulators, two weights and a broadcast fit in 32 registers. */
#define MAX_ROWS 12

/* Bytes of x one row block may span, so that it stays in L2 while the panels pass. */
#define ROW_BLOCK_BYTES (256 * 1024)

size_t an__gemm_packed_panels(size_t n)
{
    return (n + AN_PACK_PANEL - 1) / AN_PACK_PANEL;
}


size_t an__gemm_packed_floats(size_t n, size_t k)
{
    return an__gemm_packed_panels(n) * AN_PACK_PANEL * k;
}


void an__gemm_pack(const float *w, size_t n, size_t k, float *packed)
{
    size_t panels = an__gemm_packed_panels(n);
    memset(packed, 0, panels * AN_PACK_PANEL * k * sizeof(float));
    for (size_t j = 0; j < n; j++) {
        float *dst = packed + (j / AN_PACK_PANEL) * AN_PACK_PANEL * k + j % AN_PACK_PANEL;
        const float *src = w + j * k;
        for (size_t p = 0; p < k; p++)
            dst[p * AN_PACK_PANEL] = src[p];
    }
}


#ifdef AN_PACKED_AVX512

bool an__gemm_packed_supported(void)
{
    return __builtin_cpu_supports("avx512f");
}


/* The operands of one kernel call: a block of rows of x by one panel. */
typedef struct {
    size_t k;
    const float *x;
    size_t ldx;
    const float *panel;     /* k steps of AN_PACK_PANEL weights */
    const float *bias;      /* the panel's first bias */
    const float *residual;  /* the block's first residual row at the panel's column, or NULL */
    size_t ldr;
    bool gelu;
    __mmask16 mask_lo, mask_hi; /* output columns of the panel below n */
    float *y;
    size_t ldy;
} block_args_t;


/* x * (1 + erf(x / sqrt 2)) / 2 with kernels.c's erf: Abramowitz and Stegun 7.1.26. */
__attribute__((target("avx512f"), always_inline)) static inline __m512 gelu_512(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f));
    __m512 a = _mm512_abs_ps(z);
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), one));
    __m512 poly = _mm512_set1_ps(1.061405429f);
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-1.453152027f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(1.421413741f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(-0.284496736f));
    poly = _mm512_fmadd_ps(poly, t, _mm512_set1_ps(0.254829592f));
    __m512 e = an__exp_nonpositive_512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a));
    __m512 erf_abs = _mm512_fnmadd_ps(_mm512_mul_ps(poly, t), e, one);
    /* erf is odd: give it the sign of z. */
    __m512 sign = _mm512_castsi512_ps(
        _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32((int)0x80000000u)));
    __m512 erf = _mm512_castsi512_ps(
        _mm512_or_si512(_mm512_castps_si512(erf_abs), _mm512_castps_si512(sign)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(one, erf));
}


/* Applies the epilogue to one row's two vectors and stores the columns below n. */
__attribute__((target("avx512f"), always_inline)) static inline void
store_row(const block_args_t *b, size_t row, __m512 lo, __m512 hi, __m512 bias_lo,
          __m512 bias_hi)
{
    lo = _mm512_add_ps(lo, bias_lo);
    hi = _mm512_add_ps(hi, bias_hi);
    if (b->residual) {
        const float *res = b->residual + row * b->ldr;
        lo = _mm512_add_ps(lo, _mm512_maskz_loadu_ps(b->mask_lo, res));
        hi = _mm512_add_ps(hi, _mm512_maskz_loadu_ps(b->mask_hi, res + 16));
    }
    if (b->gelu) {
        lo = gelu_512(lo);
        hi = gelu_512(hi);
    }
    float *out = b->y + row * b->ldy;
    _mm512_mask_storeu_ps(out, b->mask_lo, lo);
    _mm512_mask_storeu_ps(out + 16, b->mask_hi, hi);
}


/*
 * The accumulators are named variables, not an array: in the similar
 * kernel of gemm_tokens.c, GCC 12 kept such an array on the stack.
 */
#define DECLARE_ROW(r) __m512 lo##r = _mm512_setzero_ps(), hi##r = _mm512_setzero_ps();

#define STEP_ROW(r)                                                                        \
    if ((r) < rows) {                                                                      \
        __m512 xr = _mm512_set1_ps(x[(size_t)(r) * ldx + p]);                             \
        lo##r = _mm512_fmadd_ps(xr, w_lo, lo##r);                                          \
        hi##r = _mm512_fmadd_ps(xr, w_hi, hi##r);                                          \
    }

#define STORE_ROW(r)                                                                       \
    if ((r) < rows)                                                                        \
        store_row(b, (r), lo##r, hi##r, bias_lo, bias_hi);

#define FOR_EACH_ROW(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx512f"), always_inline)) static inline void
panel_block(const int rows, const block_args_t *b)
{
    const float *x = b->x;
    const float *panel = b->panel;
    size_t ldx = b->ldx;
    FOR_EACH_ROW(DECLARE_ROW)
    for (size_t p = 0; p < b->k; p++) {
        __m512 w_lo = _mm512_loadu_ps(panel + p * AN_PACK_PANEL);
        __m512 w_hi = _mm512_loadu_ps(panel + p * AN_PACK_PANEL + 16);
        FOR_EACH_ROW(STEP_ROW)
    }
    __m512 bias_lo = _mm512_maskz_loadu_ps(b->mask_lo, b->bias);
    __m512 bias_hi = _mm512_maskz_loadu_ps(b->mask_hi, b->bias + 16);
    FOR_EACH_ROW(STORE_ROW)
}


#define DEFINE_BLOCK(r)                                                                    \
    __attribute__((target("avx512f"))) static void block_##r(const block_args_t *b)       \
    {                                                                                      \
        panel_block((r) + 1, b);                                                           \
    }

FOR_EACH_ROW(DEFINE_BLOCK)

#define BLOCK_ENTRY(r) block_##r,

/* block_fns[r - 1] handles blocks of r rows. */
static void (*const block_fns[MAX_ROWS])(const block_args_t *) = {FOR_EACH_ROW(BLOCK_ENTRY)};

static __mmask16 columns_mask(size_t columns)
{
    return columns >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << columns) - 1);
}


void an__gemm_packed(size_t m, size_t n, size_t k, const float *x, size_t ldx,
                     const float *packed, size_t first_panel, size_t panels,
                     const an__gemm_epilogue_t *epilogue, float *y, size_t ldy)
{
    size_t block_rows = ROW_BLOCK_BYTES / (k * sizeof(float) * MAX_ROWS) * MAX_ROWS;
    block_rows = block_rows < MAX_ROWS ? MAX_ROWS : block_rows;
    block_args_t b = {.k = k, .ldx = ldx, .ldr = epilogue->ldr, .gelu = epilogue->gelu,
                      .ldy = ldy};

    for (size_t first_row = 0; first_row < m; first_row += block_rows) {
        size_t rows = m - first_row < block_rows ? m - first_row : block_rows;
        size_t strips = (rows + MAX_ROWS - 1) / MAX_ROWS;
        for (size_t j = first_panel; j < first_panel + panels; j++) {
            size_t column = j * AN_PACK_PANEL;
            size_t columns = n - column < AN_PACK_PANEL ? n - column : AN_PACK_PANEL;
            b.panel = packed + column * k;
            b.bias = epilogue->bias + column;
            b.mask_lo = columns_mask(columns);
            b.mask_hi = columns > 16 ? columns_mask(columns - 16) : 0;
            /* Rows are shared out evenly over the strips: 16 rows run as 8 and 8, not 12 and 4. */
            size_t done = 0;
            for (size_t s = 0; s < strips; s++) {
                size_t strip = (rows - done + (strips - s) - 1) / (strips - s);
                size_t row = first_row + done;
                b.x = x + row * ldx;
                b.residual = epilogue->residual ? epilogue->residual + row * epilogue->ldr + column
                                                : NULL;
                b.y = y + row * ldy + column;
                block_fns[strip - 1](&b);
                done += strip;
            }
        }
    }
}

#else

bool an__gemm_packed_supported(void)
{
    return false;
}


void an__gemm_packed(size_t m, size_t n, size_t k, const float *x, size_t ldx,
                     const float *packed, size_t first_panel, size_t panels,
                     const an__gemm_epilogue_t *epilogue, float *y, size_t ldy)
{
    /* Unreachable: the loader packs weights only where an__gemm_packed_supported(). */
    (void)m, (void)n, (void)k, (void)x, (void)ldx, (void)packed, (void)first_panel;
    (void)panels, (void)epilogue, (void)y, (void)ldy;
    abort();
}

#endif
