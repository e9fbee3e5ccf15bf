/*
 * Element-wise and row-wise kernels of the encoder, and the
 * attention-weighted sum of values. The other matrix products are in
 * gemm_packed.c, BLAS, gemm_tokens.c and gemm_small.c. Loops are plain and
 * contiguous so the compiler vectorises them, and none of them allocates or
 * starts threads.
 */
#ifndef AGENTNET_EMBED_KERNELS_H
#define AGENTNET_EMBED_KERNELS_H

#include <stddef.h>

/* Sets each of rows rows of x (cols wide) to that row plus bias. */
void an__add_bias(float *x, const float *bias, size_t rows, size_t cols);

/* x[i] += y[i] for n elements. */
void an__add_inplace(float *x, const float *y, size_t n);

/*
 * Normalises each row of x in place to zero mean and unit variance (biased
 * variance, eps added before the square root), then scales by gamma and
 * shifts by beta, as torch.nn.LayerNorm does.
 */
void an__layer_norm(float *x, const float *gamma, const float *beta, size_t rows, size_t cols,
                    float eps);

/* GELU in its exact form, x * (1 + erf(x / sqrt 2)) / 2, in place. */
void an__gelu_erf(float *x, size_t n);

/* Softmax of each row in place, shifted by the row maximum for stability. */
void an__softmax_rows(float *x, size_t rows, size_t cols);

/*
 * c[i][0..n) = sum over j < k of p[i][j] * v[j][0..n) for i < m: the
 * attention-weighted sum of value rows. ldp, ldv and ldc are row strides
 * in floats. Meant for the small n of one attention head.
 */
void an__gemm_nn_small(size_t m, size_t n, size_t k, const float *p, size_t ldp, const float *v,
                       size_t ldv, float *c, size_t ldc);

/* Divides x by its L2 norm, clamped below at 1e-12 as torch.nn.functional.normalize does. */
void an__l2_normalize(float *x, size_t n);

#endif
