/*
 * Dense layers of batches with few tokens: y = x W^T + bias with x of at
 * most AN_GEMM_TOKENS_MAX rows, W row-major [n][k] as torch.nn.Linear stores
 * it, read once and in place.
 */
#ifndef AGENTNET_EMBED_GEMM_TOKENS_H
#define AGENTNET_EMBED_GEMM_TOKENS_H

#include <stddef.h>

#define AN_GEMM_TOKENS_MAX 32

/* Row stride of the transposed activations for m tokens: m rounded up to 8. */
size_t an__gemm_tokens_stride(size_t m);

/*
 * Writes xt[p][i] = x[i][p] for i < m, p < k, with rows of
 * an__gemm_tokens_stride(m) floats and zeros after column m.
 */
void an__gemm_tokens_transpose(const float *x, size_t m, size_t k, size_t ldx, float *xt);

/*
 * Computes c[i][j] = sum over p < k of x[i][p] * w[j][p] + bias[j], for i < m <=
 * AN_GEMM_TOKENS_MAX and j < n. xt is x transposed by
 * an__gemm_tokens_transpose, and x itself serves the last columns when n is
 * not a multiple of the kernel's block. ldx, ldw and ldc are row strides.
 */
void an__gemm_tokens(size_t m, size_t n, size_t k, const float *x, size_t ldx, const float *xt,
                     const float *w, size_t ldw, const float *bias, float *c, size_t ldc);

#endif
