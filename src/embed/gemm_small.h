/*
 * A matrix product for few rows of activations: the encoder's dense layers
 * when the batch contains few tokens, and the attention scores. It reads the
 * weights where they lie instead of packing them, as BLAS does on every
 * call; for a batch of a few tokens that packing costs more than the
 * product.
 */
#ifndef AGENTNET_EMBED_GEMM_SMALL_H
#define AGENTNET_EMBED_GEMM_SMALL_H

#include <stddef.h>

/*
 * c[i][j] = alpha * dot(a[i][0..k), w[j][0..k)) + bias[j] for i < m, j < n:
 * C = alpha A W^T + bias, with W row-major [n][k] as torch.nn.Linear stores
 * its weight. lda, ldw and ldc are row strides in floats; bias may be NULL.
 * Picks AVX2 with FMA at run time where the CPU has them.
 */
void an__gemm_nt(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                 const float *w, size_t ldw, const float *bias, float *c, size_t ldc);

#endif
