/*
 * AVX-512 helpers shared by the packed GEMM and the AVX-512 attention.
 * Include only where <immintrin.h> is available (x86-64 with GCC or Clang);
 * the functions are compiled for AVX-512F whatever the file's target.
 */
#ifndef AGENTNET_EMBED_SIMD512_H
#define AGENTNET_EMBED_SIMD512_H

#include <immintrin.h>

/*
 * e^x for x <= 0, the same formula as exp_nonpositive() in kernels.c: a
 * degree-6 Taylor polynomial of e^r with x = n ln 2 + r, scaled by 2^n.
 */
__attribute__((target("avx512f"), always_inline)) static inline __m512
an__exp_nonpositive_512(__m512 x)
{
    const __m512 floor_in = _mm512_set1_ps(-87.0f);
    __mmask16 underflow = _mm512_cmp_ps_mask(x, floor_in, _CMP_LT_OQ);
    x = _mm512_max_ps(x, floor_in);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_maskz_mov_ps((__mmask16)~underflow, _mm512_scalef_ps(p, n));
}

#endif
