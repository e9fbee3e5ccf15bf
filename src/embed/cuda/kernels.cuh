/*
 * CUDA kernels of the encoder, everything but the matrix products (which
 * go to cuBLAS), each behind a host function that launches it on a stream
 * and returns the launch error. They mirror kernels.c and pooling.c, with
 * the bias additions fused into the step that follows each GEMM.
 */
#ifndef AGENTNET_EMBED_CUDA_KERNELS_CUH
#define AGENTNET_EMBED_CUDA_KERNELS_CUH

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

/*
 * Writes LayerNorm(word[ids[t]] + position[positions[t]] + token_type_row)
 * into row t of out (tokens rows, hidden wide).
 */
cudaError_t an__cuda_embed_layer_norm(const int32_t *ids, const int32_t *positions,
                                      const float *word, const float *position,
                                      const float *token_type_row, const float *gamma,
                                      const float *beta, float eps, int tokens, int hidden,
                                      float *out, cudaStream_t stream);

/* Adds bias (cols floats) to each of rows rows of x. */
cudaError_t an__cuda_add_bias(float *x, const float *bias, int rows, int cols,
                              cudaStream_t stream);

/* Sets x to GELU(x + bias) row by row, GELU in its erf form. */
cudaError_t an__cuda_bias_gelu(float *x, const float *bias, int rows, int cols,
                               cudaStream_t stream);

/* Sets each row of x to LayerNorm(x + bias + residual), in place. */
cudaError_t an__cuda_bias_residual_layer_norm(float *x, const float *bias, const float *residual,
                                              const float *gamma, const float *beta, float eps,
                                              int rows, int cols, cudaStream_t stream);

/*
 * Self-attention of each sentence over its own tokens, per head:
 * softmax(Q K^T / sqrt(head_dim)) V into that head's columns of context.
 * qkv rows hold query, key and value side by side (3 * hidden wide);
 * offsets contains sentences + 1 token offsets and longest the longest
 * sentence. Returns cudaErrorInvalidValue when a sentence is too long for
 * the kernel's shared memory (over 12,000 tokens or so).
 */
cudaError_t an__cuda_attention(const float *qkv, const int32_t *offsets, int sentences,
                               int longest, int hidden, int heads, float *context,
                               cudaStream_t stream);

/*
 * Pools each sentence's rows of hidden into its row of pooled (dims wide,
 * the AN__POOL_* modes side by side in bit order), then L2-normalises the
 * row when normalize is set.
 */
cudaError_t an__cuda_pool(const float *hidden, const int32_t *offsets, int sentences, int hidden_size,
                          unsigned modes, int normalize, int dims, float *pooled,
                          cudaStream_t stream);

#endif
