/*
 * Self-attention of one sentence and one head: softmax(scale Q K^T) V.
 */
#ifndef AGENTNET_EMBED_ATTENTION_H
#define AGENTNET_EMBED_ATTENTION_H

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

#endif
