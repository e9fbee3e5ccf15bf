/*
 * The packed-batch BERT forward pass. Dense layers are one GEMM each over
 * all tokens of the batch; attention is two small products per sentence and
 * head. The workspace's pool runs all of it, so the model's thread count is
 * never exceeded. With weights packed at load (AVX-512 CPUs), the dense
 * layers run in bert_packed.c. Otherwise each is split into single-threaded
 * OpenBLAS calls, or, for few tokens, an__gemm_tokens.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/common.h"
#include "embed/attention.h"
#include "embed/bert_packed.h"
#include "embed/bert_forward.h"
#include "embed/blas.h"
#include "embed/gemm_small.h"
#include "embed/gemm_tokens.h"
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
 * Batches of up to this many tokens run their dense layers on
 * an__gemm_tokens, split over output columns, instead of BLAS. Each BLAS
 * call packs the weights it uses, and an__gemm_tokens reads them in place.
 */
#define SMALL_GEMM_MAX_TOKENS AN_GEMM_TOKENS_MAX

/* Output columns per task when an__gemm_tokens is split over the pool: whole kernel blocks. */
#define SMALL_GEMM_TASK_COLUMNS 48

/*
 * Rows or columns per BLAS call, at least, when a large batch's dense layer
 * is split over the pool. Each call packs the whole of the side it does not
 * split, so slices stay large: fewer than this many per thread gives one
 * slice per thread.
 */
#define BLAS_TASK_MIN_ROWS 256

/* Rows per task of the residual and LayerNorm step. */
#define ROW_TASK_ROWS 16

typedef struct {
    const float *x;
    size_t rows, in, out;
    const float *weight, *bias;
    float *y;
    bool gelu;
    const float *xt;            /* x transposed, for an__gemm_tokens */
    bool by_columns;            /* linear_blas_task slices output columns, not rows */
    size_t slice;               /* rows or columns per task of linear_blas_task */
} linear_job_t;


static void linear_columns_task(void *ctx, size_t task, size_t worker)
{
    const linear_job_t *job = ctx;
    size_t first = task * SMALL_GEMM_TASK_COLUMNS;
    size_t cols = job->out - first < SMALL_GEMM_TASK_COLUMNS ? job->out - first
                                                             : SMALL_GEMM_TASK_COLUMNS;
    (void)worker;
    an__gemm_tokens(job->rows, cols, job->in, job->x, job->in, job->xt,
                    job->weight + first * job->in, job->in, job->bias + first, job->y + first,
                    job->out);
    if (job->gelu) {
        for (size_t r = 0; r < job->rows; r++)
            an__gelu_erf(job->y + r * job->out + first, cols);
    }
}


/*
 * Sets y[r][0..cols) to bias for each row, so that BLAS can add the product
 * onto it (beta 1) instead of clearing y first and adding the bias after.
 */
static void fill_bias(float *y, size_t ldy, const float *bias, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(y + r * ldy, bias, cols * sizeof(float));
}


/* GELU over rows rows of cols values, ldy floats apart. */
static void gelu_rows(float *y, size_t ldy, size_t rows, size_t cols)
{
    if (ldy == cols) {
        an__gelu_erf(y, rows * cols);
        return;
    }
    for (size_t r = 0; r < rows; r++)
        an__gelu_erf(y + r * ldy, cols);
}


/*
 * One slice of a large batch's dense layer: a single-threaded BLAS product
 * over a range of rows (the slice is a row range) or of output columns,
 * then GELU while the slice is still in cache.
 */
static void linear_blas_task(void *ctx, size_t task, size_t worker)
{
    const linear_job_t *job = ctx;
    size_t first_row = 0, rows = job->rows, first_col = 0, cols = job->out;
    if (job->by_columns) {
        first_col = task * job->slice;
        cols = job->out - first_col < job->slice ? job->out - first_col : job->slice;
    } else {
        first_row = task * job->slice;
        rows = job->rows - first_row < job->slice ? job->rows - first_row : job->slice;
    }
    float *y = job->y + first_row * job->out + first_col;
    (void)worker;
    fill_bias(y, job->out, job->bias + first_col, rows, cols);
    an__blas_sgemm_nt((int)rows, (int)cols, (int)job->in, job->x + first_row * job->in,
                      (int)job->in, job->weight + first_col * job->in, (int)job->in, 1.0f, y,
                      (int)job->out);
    if (job->gelu)
        gelu_rows(y, job->out, rows, cols);
}


/*
 * y[rows][out] = x[rows][in] * weight[out][in]^T + bias, torch.nn.Linear,
 * followed by GELU when gelu is set. Small batches split the output columns
 * over the pool on an__gemm_tokens, which uses xt as scratch. Larger ones make one single-threaded BLAS
 * call per slice, and each call packs its share of x and of the weights.
 * Splitting the side with more rows packs less in total: the tokens when
 * there are more tokens than outputs, else the output columns.
 */
static void linear(an__thread_pool_t *pool, const float *x, size_t rows, size_t in,
                   const float *weight, const float *bias, size_t out, float *y, bool gelu,
                   float *xt)
{
    linear_job_t job = {x, rows, in, out, weight, bias, y, gelu, xt, false, 0};
    if (rows <= SMALL_GEMM_MAX_TOKENS) {
        an__gemm_tokens_transpose(x, rows, in, in, xt);
        size_t tasks = (out + SMALL_GEMM_TASK_COLUMNS - 1) / SMALL_GEMM_TASK_COLUMNS;
        an__thread_pool_run(pool, tasks, linear_columns_task, &job);
        return;
    }

    size_t threads = an__thread_pool_size(pool);
    size_t span = rows;
    if (rows < out) {
        job.by_columns = true;
        span = out;
    }
    size_t per_thread = span / (threads * BLAS_TASK_MIN_ROWS);
    size_t slices = threads * (per_thread > 0 ? per_thread : 1);
    job.slice = (span + slices - 1) / slices;
    if (job.by_columns)
        job.slice = (job.slice + 15) & ~(size_t)15; /* whole vectors of the BLAS kernel */
    an__thread_pool_run(pool, (span + job.slice - 1) / job.slice, linear_blas_task, &job);
}


typedef struct {
    float *x;
    const float *residual, *gamma, *beta;
    size_t rows, cols;
    float eps;
} norm_job_t;


static void residual_norm_task(void *ctx, size_t task, size_t worker)
{
    const norm_job_t *job = ctx;
    size_t first = task * ROW_TASK_ROWS;
    size_t rows = job->rows - first < ROW_TASK_ROWS ? job->rows - first : ROW_TASK_ROWS;
    float *x = job->x + first * job->cols;
    (void)worker;
    an__add_inplace(x, job->residual + first * job->cols, rows * job->cols);
    an__layer_norm(x, job->gamma, job->beta, rows, job->cols, job->eps);
}


/* x = LayerNorm(x + residual), row by row over the pool. */
static void residual_layer_norm(an__thread_pool_t *pool, float *x, const float *residual,
                                const float *gamma, const float *beta, size_t rows, size_t cols,
                                float eps)
{
    norm_job_t job = {x, residual, gamma, beta, rows, cols, eps};
    an__thread_pool_run(pool, (rows + ROW_TASK_ROWS - 1) / ROW_TASK_ROWS, residual_norm_task,
                        &job);
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


typedef struct {
    const an__bert_config_t *cfg;
    const float *qkv;
    const size_t *offsets;
    float *scratch;             /* attention scratch, one slice per pool thread */
    size_t scratch_stride;      /* floats between two threads' slices */
    float *context;
    bool avx512;                /* use an__attention_head_avx512 */
} attend_job_t;


/*
 * Self-attention of one sentence and head (task = sentence * heads + head):
 * softmax(Q K^T / sqrt(head_dim)) V, written into that head's columns of
 * context. qkv rows hold query, key and value side by side.
 */
static void attend_task(void *ctx, size_t task, size_t worker)
{
    const attend_job_t *job = ctx;
    size_t h = job->cfg->hidden_size;
    size_t heads = job->cfg->num_attention_heads;
    size_t head_dim = h / heads;
    size_t stride = 3 * h;
    size_t s = task / heads, head = task % heads;
    size_t first = job->offsets[s];
    size_t len = job->offsets[s + 1] - first;
    float scale = (float)(1.0 / sqrt((double)head_dim));
    float *scratch = job->scratch + worker * job->scratch_stride;

    const float *q = job->qkv + first * stride + head * head_dim;
    float *out = job->context + first * h + head * head_dim;
    if (job->avx512)
        an__attention_head_avx512(len, head_dim, scale, q, q + h, q + 2 * h, stride, out, h,
                                  scratch);
    else
        an__attention_head(len, head_dim, scale, q, q + h, q + 2 * h, stride, out, h, scratch);
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

    /*
     * hidden, spare (the next hidden), qkv, context, intermediate, attention
     * scratch per thread, and the transposed activations of small batches
     */
    size_t threads = an__thread_pool_size(ws->pool);
    size_t head_dim = h / cfg->num_attention_heads;
    size_t scratch_floats = an__attention_scratch_floats(longest, head_dim);
    size_t widest_in = inter > h ? inter : h;
    size_t need = tokens * (h + h + 3 * h + h + inter) + threads * scratch_floats +
                  widest_in * an__gemm_tokens_stride(SMALL_GEMM_MAX_TOKENS);
    if (workspace_reserve(ws, need) != 0)
        return AN_ENOMEM;
    float *hidden = ws->buffer;
    float *spare = hidden + tokens * h;
    float *qkv = spare + tokens * h;
    float *context = qkv + tokens * 3 * h;
    float *intermediate = context + tokens * h;
    float *scratch = intermediate + tokens * inter;
    float *xt = scratch + threads * scratch_floats;
    float eps = cfg->layer_norm_eps;

    embed_tokens(weights, ids, offsets, count, hidden);
    /* AGENTNET_EMBED_AVX512=0 leaves the weights unpacked and turns this off too. */
    bool avx512_attention = weights->packed && an__attention_avx512_usable(head_dim);

    for (size_t l = 0; l < cfg->num_hidden_layers; l++) {
        const an__bert_layer_t *layer = &weights->layers[l];
        float *swap;

        if (weights->packed)
            an__bert_packed_qkv(ws->pool, cfg, layer, hidden, tokens, qkv);
        else
            linear(ws->pool, hidden, tokens, h, layer->qkv_weight, layer->qkv_bias, 3 * h, qkv,
                   false, xt);
        attend_job_t attention = {cfg,     qkv,    offsets,         scratch,
                                  scratch_floats, context, avx512_attention};
        an__thread_pool_run(ws->pool, count * cfg->num_attention_heads, attend_task, &attention);
        if (weights->packed) {
            /* qkv is unused once attention is done, so it receives the mid-layer states. */
            an__bert_packed_after_attention(ws->pool, cfg, layer, hidden, context, tokens, qkv,
                                            intermediate, spare);
            swap = hidden, hidden = spare, spare = swap;
            continue;
        }
        linear(ws->pool, context, tokens, h, layer->attn_out_weight, layer->attn_out_bias, h,
               spare, false, xt);
        residual_layer_norm(ws->pool, spare, hidden, layer->attn_norm_weight,
                            layer->attn_norm_bias, tokens, h, eps);
        swap = hidden, hidden = spare, spare = swap;

        linear(ws->pool, hidden, tokens, h, layer->inter_weight, layer->inter_bias, inter,
               intermediate, true, xt);
        linear(ws->pool, intermediate, tokens, inter, layer->out_weight, layer->out_bias, h,
               spare, false, xt);
        residual_layer_norm(ws->pool, spare, hidden, layer->out_norm_weight,
                            layer->out_norm_bias, tokens, h, eps);
        swap = hidden, hidden = spare, spare = swap;
    }

    *hidden_out = hidden;
    return 0;
}
