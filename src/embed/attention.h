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
 * Returns true when an__attention_head_avx512 runs its AVX-512 kernel for
 * heads of head_dim: a multiple of 16 up to 64, on a CPU with AVX-512F.
 */
bool an__attention_avx512_usable(size_t head_dim);

/*
 * Computes an__attention_head on AVX-512 (attention_avx512.c), with the same
 * arguments and scratch. Call it only where an__attention_avx512_usable().
 */
void an__attention_head_avx512(size_t len, size_t head_dim, float scale, const float *q,
                               const float *k, const float *v, size_t ld, float *out,
                               size_t ldo, float *scratch);

/*
 * The blocks one instruction set gives the fused kernel: scores of a block
 * of query rows against the transposed keys, softmax of one row, and the
 * weighted sum of the packed values for one or two vectors of columns.
 */
typedef struct {
    int query_block;    /* query rows per block, at most 12 */
    size_t columns;     /* value columns that two vectors cover */
    void (*scores)(int rows, size_t head_dim, float scale, const float *q, size_t ld,
                   const float *kt, size_t padded, float *out);
    void (*softmax)(float *row, size_t len);
    void (*values)(int rows, int vecs, size_t len, const float *p, size_t ldp, const float *v,
                   size_t ldv, float *out, size_t ldo);
} an__attention_kernels_t;

/*
 * Runs an__attention_head's fused form on the given blocks. It transposes
 * the keys and packs the values into scratch, then takes each block of
 * query rows through scores, softmax and values while its scores are in L1.
 */
void an__attention_fused(const an__attention_kernels_t *kernels, size_t len, size_t head_dim,
                         float scale, const float *q, const float *k, const float *v, size_t ld,
                         float *out, size_t ldo, float *scratch);

#endif
