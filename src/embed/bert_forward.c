/*
 * The packed-batch BERT forward pass. Dense layers are one GEMM each over
 * all tokens of the batch; attention is two small GEMMs per sentence and
 * head. BLAS threads are the only threads: nothing here runs in parallel
 * around a BLAS call, so the thread count set on OpenBLAS is the total.
 */
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "agentnet/common.h"
#include "embed/bert_forward.h"
#include "embed/kernels.h"

void an__bert_workspace_free(an__bert_workspace_t *ws)
{
    free(ws->buffer);
    ws->buffer = NULL;
    ws->capacity_floats = 0;
}


static int workspace_reserve(an__bert_workspace_t *ws, size_t floats)
{
    if (floats <= ws->capacity_floats)
        return 0;
    float *grown = malloc(floats * sizeof(float));
    if (!grown)
        return AN_ENOMEM;
    free(ws->buffer);
    ws->buffer = grown;
    ws->capacity_floats = floats;
    return 0;
}


/*
 * y[rows][out] = x[rows][in] * weight[out][in]^T + bias: torch.nn.Linear.
 * NOTE: batches of a few tokens also go through OpenBLAS. A plain C
 * weight-streaming kernel measured no faster for one 7-token sentence on a
 * MiniLM-sized model, so small batches have no kernel of their own yet.
 */
static void linear(const float *x, size_t rows, size_t in, const float *weight,
                   const float *bias, size_t out, float *y)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)out, (int)in, 1.0f, x,
                (int)in, weight, (int)in, 0.0f, y, (int)out);
    an__add_bias(y, bias, rows, out);
}


static void embed_tokens(const an__bert_weights_t *w, const int32_t *ids, const size_t *offsets,
                         size_t count, float *hidden)
{
    size_t h = w->config.hidden_size;
    for (size_t s = 0; s < count; s++) {
        for (size_t t = offsets[s]; t < offsets[s + 1]; t++) {
            const float *word = w->word_embeddings + (size_t)ids[t] * h;
            const float *position = w->position_embeddings + (t - offsets[s]) * h;
            float *row = hidden + t * h;
            for (size_t c = 0; c < h; c++)
                row[c] = word[c] + position[c] + w->token_type_row[c];
        }
    }
    an__layer_norm(hidden, w->emb_norm_weight, w->emb_norm_bias, offsets[count], h,
                   w->config.layer_norm_eps);
}


/*
 * Self-attention of each sentence over its own tokens: for every head,
 * softmax(Q K^T / sqrt(head_dim)) V, written into that head's columns of
 * context. qkv rows hold query, key and value side by side.
 */
static void attend(const an__bert_config_t *cfg, const float *qkv, const size_t *offsets,
                   size_t count, float *scores, float *context)
{
    size_t h = cfg->hidden_size;
    size_t heads = cfg->num_attention_heads;
    size_t head_dim = h / heads;
    size_t stride = 3 * h;
    float scale = (float)(1.0 / sqrt((double)head_dim));

    for (size_t s = 0; s < count; s++) {
        size_t first = offsets[s];
        int len = (int)(offsets[s + 1] - first);
        for (size_t head = 0; head < heads; head++) {
            const float *q = qkv + first * stride + head * head_dim;
            const float *k = q + h;
            const float *v = q + 2 * h;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, len, (int)head_dim, scale,
                        q, (int)stride, k, (int)stride, 0.0f, scores, len);
            an__softmax_rows(scores, (size_t)len, (size_t)len);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, len, (int)head_dim, len, 1.0f,
                        scores, len, v, (int)stride, 0.0f,
                        context + first * h + head * head_dim, (int)h);
        }
    }
}


int an__bert_forward(const an__bert_weights_t *weights, const int32_t *ids,
                     const size_t *offsets, size_t count, an__bert_workspace_t *ws,
                     const float **hidden_out)
{
    const an__bert_config_t *cfg = &weights->config;
    size_t h = cfg->hidden_size;
    size_t inter = cfg->intermediate_size;
    size_t tokens = offsets[count];
    size_t longest = 0;
    for (size_t s = 0; s < count; s++) {
        size_t len = offsets[s + 1] - offsets[s];
        longest = len > longest ? len : longest;
    }

    /* hidden, spare (the next hidden), qkv, context, intermediate, one score matrix */
    size_t need = tokens * (h + h + 3 * h + h + inter) + longest * longest;
    if (workspace_reserve(ws, need) != 0)
        return AN_ENOMEM;
    float *hidden = ws->buffer;
    float *spare = hidden + tokens * h;
    float *qkv = spare + tokens * h;
    float *context = qkv + tokens * 3 * h;
    float *intermediate = context + tokens * h;
    float *scores = intermediate + tokens * inter;

    embed_tokens(weights, ids, offsets, count, hidden);

    for (size_t l = 0; l < cfg->num_hidden_layers; l++) {
        const an__bert_layer_t *layer = &weights->layers[l];
        float *swap;

        linear(hidden, tokens, h, layer->qkv_weight, layer->qkv_bias, 3 * h, qkv);
        attend(cfg, qkv, offsets, count, scores, context);
        linear(context, tokens, h, layer->attn_out_weight, layer->attn_out_bias, h, spare);
        an__add_inplace(spare, hidden, tokens * h);
        an__layer_norm(spare, layer->attn_norm_weight, layer->attn_norm_bias, tokens, h,
                       cfg->layer_norm_eps);
        swap = hidden, hidden = spare, spare = swap;

        linear(hidden, tokens, h, layer->inter_weight, layer->inter_bias, inter, intermediate);
        an__gelu_erf(intermediate, tokens * inter);
        linear(intermediate, tokens, inter, layer->out_weight, layer->out_bias, h, spare);
        an__add_inplace(spare, hidden, tokens * h);
        an__layer_norm(spare, layer->out_norm_weight, layer->out_norm_bias, tokens, h,
                       cfg->layer_norm_eps);
        swap = hidden, hidden = spare, spare = swap;
    }

    *hidden_out = hidden;
    return 0;
}
