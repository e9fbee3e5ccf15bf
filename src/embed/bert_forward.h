/*
 * The BERT encoder's forward pass over a packed batch, and pooling. Inputs
 * are token ids of several sentences laid end to end with no padding: the
 * dense layers run on the real tokens only, and attention runs per sentence,
 * so no token attends across a sentence boundary. Loading the weights is
 * bert_model.c's business.
 */
#ifndef AGENTNET_EMBED_BERT_FORWARD_H
#define AGENTNET_EMBED_BERT_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "embed/st_config.h"
#include "embed/thread_pool.h"

/* One encoder layer, float32, row-major; linear weights are [out][in] as in PyTorch. */
typedef struct {
    const float *qkv_weight;        /* [3 * hidden][hidden]: query, key, value rows */
    const float *qkv_bias;          /* [3 * hidden] */
    const float *attn_out_weight;   /* [hidden][hidden] */
    const float *attn_out_bias;
    const float *attn_norm_weight;  /* LayerNorm after attention */
    const float *attn_norm_bias;
    const float *inter_weight;      /* [intermediate][hidden] */
    const float *inter_bias;
    const float *out_weight;        /* [hidden][intermediate] */
    const float *out_bias;
    const float *out_norm_weight;   /* LayerNorm after the feed-forward */
    const float *out_norm_bias;
} an__bert_layer_t;

typedef struct {
    an__bert_config_t config;
    const float *word_embeddings;     /* [vocab_size][hidden] */
    const float *position_embeddings; /* [max_position_embeddings][hidden] */
    const float *token_type_row;      /* row 0 of token_type_embeddings, [hidden] */
    const float *emb_norm_weight;
    const float *emb_norm_bias;
    an__bert_layer_t *layers;         /* [num_hidden_layers] */
    bool packed;                      /* the layers' four weight matrices are in
                                         an__gemm_pack()'s layout (bert_packed.c) */
} an__bert_weights_t;

/*
 * Scratch memory of the forward pass, grown to the largest batch seen and
 * reused, so steady-state calls allocate nothing. Zero-initialise it and
 * release it with an__bert_workspace_free(). pool is the owner's: the
 * forward pass runs its non-BLAS work on it, and a NULL pool runs that work
 * on the calling thread.
 */
typedef struct {
    float *buffer;
    size_t capacity_floats;
    an__thread_pool_t *pool;
} an__bert_workspace_t;

void an__bert_workspace_free(an__bert_workspace_t *ws);

/*
 * Runs the encoder on count sentences packed in ids: sentence s is
 * ids[offsets[s]] .. ids[offsets[s + 1] - 1], [CLS] and [SEP] included,
 * each sentence at least one and at most max_position_embeddings tokens,
 * every id below vocab_size. Writes the final hidden states of all tokens,
 * in the same packed order, to *hidden_out, which points into ws and is
 * valid until the next call. Returns AN_ENOMEM when ws cannot grow.
 */
int an__bert_forward(const an__bert_weights_t *weights, const int32_t *ids,
                     const size_t *offsets, size_t count, an__bert_workspace_t *ws,
                     const float **hidden_out);

/* Output width of pooling hidden_size-wide states with the given AN__POOL_* modes. */
size_t an__pool_dims(unsigned modes, size_t hidden_size);

/*
 * Pools one sentence's tokens hidden-state rows (tokens >= 1, hidden_size
 * wide) into out (an__pool_dims floats): each mode's vector in the order
 * CLS, max, mean, mean_sqrt_len, as sentence-transformers concatenates them.
 */
void an__pool(unsigned modes, const float *hidden, size_t tokens, size_t hidden_size,
              float *out);

#endif
