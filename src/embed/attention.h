/*
 * Self-attention of one sentence and one head: softmax(scale Q K^T) V.
 */
#ifndef AGENTNET_EMBED_ATTENTION_H
#define AGENTNET_EMBED_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>

/* Floats of scratch an__attention_head needs for a sentence of len tokens. */
size_t an__attention_scratch_floats(size_t len, size_t head_dim);

/*
 * Writes softmax(scale q k^T) v into out, row by row. q, k and v point at
 * the head's first column in the sentence's first row. Their rows are ld
 * floats apart, and those of out are ldo floats apart. scratch must hold
 * an__attention_scratch_floats(len, head_dim) floats, so nothing is
 * allocated here.
 *
 * With AVX2 and FMA, and a head_dim that is a multiple of 8 up to 64, the
 * keys are first transposed into scratch. Then each block of query rows
 * goes through scores, softmax and the weighted sum of values while its
 * scores are in L1. Other cases use the plain kernels of kernels.h.
 */
void an__attention_head(size_t len, size_t head_dim, float scale, const float *q,
                        const float *k, const float *v, size_t ld, float *out, size_t ldo,
                        float *scratch);

/*
 * True when an__attention_head_avx512 runs its AVX-512 kernel for heads of
 * head_dim: a multiple of 16 up to 64, on a CPU with AVX-512F.
 */
bool an__attention_avx512_usable(size_t head_dim);

/*
 * an__attention_head on AVX-512 (attention_avx512.c), with the same
 * arguments and scratch. Call it only where an__attention_avx512_usable().
 */
void an__attention_head_avx512(size_t len, size_t head_dim, float scale, const float *q,
                               const float *k, const float *v, size_t ld, float *out,
                               size_t ldo, float *scratch);

/*
 * Shared by both fused kernels: kt[d][j] = k[j][d] with rows of padded
 * floats, zero from len on; and the head's value rows copied next to each
 * other, head_dim floats apart.
 */
void an__attention_transpose_keys(size_t len, size_t padded, size_t head_dim, const float *k,
                                  size_t ld, float *kt);
void an__attention_pack_values(size_t len, size_t head_dim, const float *v, size_t ld,
                               float *packed);

#endif
