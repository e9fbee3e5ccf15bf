/*
 * The dense parts of an encoder layer on packed weights (gemm_packed.h):
 * the fused query, key and value projection, and everything after
 * attention. bert_forward.c uses them when the model's weights were packed
 * at load, and runs attention itself.
 */
#ifndef AGENTNET_EMBED_BERT_PACKED_H
#define AGENTNET_EMBED_BERT_PACKED_H

#include <stddef.h>

#include "embed/bert_forward.h"
#include "embed/thread_pool.h"

/*
 * Packs the four weight matrices of every layer in place, in the order
 * and layout an__gemm_pack() gives. Each weight's region of memory must
 * hold an__gemm_packed_floats() of its shape. scratch must hold that many
 * floats for the largest matrix. Sets weights->packed.
 */
void an__bert_pack_weights(an__bert_weights_t *weights, float *scratch);

/* Returns the floats of scratch that an__bert_pack_weights needs for this model. */
size_t an__bert_pack_scratch_floats(const an__bert_config_t *config);

/* Computes qkv[tokens][3 hidden] = hidden x W_qkv^T + b_qkv over the pool. */
void an__bert_packed_qkv(an__thread_pool_t *pool, const an__bert_config_t *config,
                         const an__bert_layer_t *layer, const float *hidden, size_t tokens,
                         float *qkv);

/*
 * Runs the rest of the layer after attention over the pool:
 *   mid = LayerNorm(hidden + context W_o^T + b_o)
 *   out = LayerNorm(mid + GELU(mid W_i^T + b_i) W_out^T + b_out)
 * mid and intermediate ([tokens][intermediate_size]) are scratch. out must
 * not alias hidden, context or mid.
 */
void an__bert_packed_after_attention(an__thread_pool_t *pool, const an__bert_config_t *config,
                                     const an__bert_layer_t *layer, const float *hidden,
                                     const float *context, size_t tokens, float *mid,
                                     float *intermediate, float *out);

#endif
