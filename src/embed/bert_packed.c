/*
 * Encoder layers on packed weights. Large batches are split by rows: one
 * task takes a chunk of rows through the output projection, LayerNorm,
 * both feed-forward products and the second LayerNorm, so its rows stay in
 * L2 and the pool synchronises once for the whole tail. Small batches have too few
 * rows to share out, so each product is split by output panels instead,
 * and the LayerNorms run on the caller.
 */
#include "embed/bert_packed.h"

#include <stdlib.h>
#include <string.h>

#include "embed/gemm_packed.h"
#include "embed/kernels.h"

/* Rows per task when a product or the layer tail is split by rows (a multiple of 12). */
#define ROW_CHUNK 48

/* Panel-split products aim for this many tasks per thread, so that uneven tasks even out. */
#define PANEL_TASKS_PER_THREAD 3

void an__bert_pack_weights(an__bert_weights_t *weights, float *scratch)
{
    size_t h = weights->config.hidden_size, inter = weights->config.intermediate_size;
    for (size_t l = 0; l < weights->config.num_hidden_layers; l++) {
        an__bert_layer_t *layer = &weights->layers[l];
        struct {
            const float *w;
            size_t n, k;
        } parts[] = {
            {layer->qkv_weight, 3 * h, h},
            {layer->attn_out_weight, h, h},
            {layer->inter_weight, inter, h},
            {layer->out_weight, h, inter},
        };
        for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
            an__gemm_pack(parts[p].w, parts[p].n, parts[p].k, scratch);
            /* The loader reserved the packed size for every weight, so this stays in bounds. */
            memcpy((float *)parts[p].w, scratch,
                   an__gemm_packed_floats(parts[p].n, parts[p].k) * sizeof(float));
        }
    }
    weights->packed = true;
}


size_t an__bert_pack_scratch_floats(const an__bert_config_t *config)
{
    size_t h = config->hidden_size, inter = config->intermediate_size;
    size_t qkv = an__gemm_packed_floats(3 * h, h);
    size_t up = an__gemm_packed_floats(inter, h);
    size_t down = an__gemm_packed_floats(h, inter);
    size_t largest = qkv > up ? qkv : up;
    return largest > down ? largest : down;
}


/*
 * Returns the rows per task of a row split: about ROW_CHUNK, with a task
 * count that is a multiple of the thread count. So 128 rows on two threads
 * run as four tasks of 32, not as 48, 48 and 32 with one thread idle.
 */
static size_t row_chunk(size_t rows, size_t threads)
{
    size_t rounds = (rows + threads * ROW_CHUNK - 1) / (threads * ROW_CHUNK);
    size_t tasks = rounds * threads;
    return (rows + tasks - 1) / tasks;
}


typedef struct {
    const float *x;
    size_t rows, k, n;
    const float *packed;
    an__gemm_epilogue_t epilogue;
    float *y;
    size_t row_chunk, panel_chunk, panel_tasks;
} linear_job_t;


static void linear_task(void *ctx, size_t task, size_t worker)
{
    const linear_job_t *job = ctx;
    size_t first_row = task / job->panel_tasks * job->row_chunk;
    size_t first_panel = task % job->panel_tasks * job->panel_chunk;
    size_t rows = job->rows - first_row < job->row_chunk ? job->rows - first_row : job->row_chunk;
    size_t all_panels = an__gemm_packed_panels(job->n);
    size_t panels = all_panels - first_panel < job->panel_chunk ? all_panels - first_panel
                                                                 : job->panel_chunk;
    an__gemm_epilogue_t epilogue = job->epilogue;
    (void)worker;
    if (epilogue.residual)
        epilogue.residual += first_row * epilogue.ldr;
    an__gemm_packed(rows, job->n, job->k, job->x + first_row * job->k, job->k, job->packed,
                    first_panel, panels, &epilogue, job->y + first_row * job->n, job->n);
}


/* y[rows][n] = epilogue(x[rows][k] W^T), split by rows when there are enough, else by panels. */
static void packed_linear(an__thread_pool_t *pool, const float *x, size_t rows, size_t k,
                          const float *packed, size_t n, an__gemm_epilogue_t epilogue, float *y)
{
    size_t threads = an__thread_pool_size(pool);
    size_t panels = an__gemm_packed_panels(n);
    linear_job_t job = {x, rows, k, n, packed, epilogue, y, rows, panels, 1};
    if (rows >= threads * ROW_CHUNK) {
        job.row_chunk = row_chunk(rows, threads);
    } else {
        size_t target = threads * PANEL_TASKS_PER_THREAD;
        job.panel_chunk = (panels + target - 1) / target;
        job.panel_tasks = (panels + job.panel_chunk - 1) / job.panel_chunk;
    }
    size_t row_tasks = (rows + job.row_chunk - 1) / job.row_chunk;
    an__thread_pool_run(pool, row_tasks * job.panel_tasks, linear_task, &job);
}


void an__bert_packed_qkv(an__thread_pool_t *pool, const an__bert_config_t *config,
                         const an__bert_layer_t *layer, const float *hidden, size_t tokens,
                         float *qkv)
{
    size_t h = config->hidden_size;
    an__gemm_epilogue_t epilogue = {layer->qkv_bias, NULL, 0, false};
    packed_linear(pool, hidden, tokens, h, layer->qkv_weight, 3 * h, epilogue, qkv);
}


typedef struct {
    const an__bert_config_t *config;
    const an__bert_layer_t *layer;
    const float *hidden, *context;
    size_t tokens, chunk;
    float *mid, *intermediate, *out;
} tail_job_t;


/* The whole layer tail for one chunk of rows, on one thread. */
static void tail_rows_task(void *ctx, size_t task, size_t worker)
{
    const tail_job_t *job = ctx;
    const an__bert_layer_t *layer = job->layer;
    size_t h = job->config->hidden_size, inter = job->config->intermediate_size;
    float eps = job->config->layer_norm_eps;
    size_t first = task * job->chunk;
    size_t rows = job->tokens - first < job->chunk ? job->tokens - first : job->chunk;
    size_t h_panels = an__gemm_packed_panels(h);
    float *mid = job->mid + first * h;
    float *intermediate = job->intermediate + first * inter;
    float *out = job->out + first * h;
    (void)worker;

    an__gemm_epilogue_t attn_out = {layer->attn_out_bias, job->hidden + first * h, h, false};
    an__gemm_packed(rows, h, h, job->context + first * h, h, layer->attn_out_weight, 0, h_panels,
                    &attn_out, mid, h);
    an__layer_norm(mid, layer->attn_norm_weight, layer->attn_norm_bias, rows, h, eps);

    an__gemm_epilogue_t up = {layer->inter_bias, NULL, 0, true};
    an__gemm_packed(rows, inter, h, mid, h, layer->inter_weight, 0,
                    an__gemm_packed_panels(inter), &up, intermediate, inter);

    an__gemm_epilogue_t down = {layer->out_bias, mid, h, false};
    an__gemm_packed(rows, h, inter, intermediate, inter, layer->out_weight, 0, h_panels, &down,
                    out, h);
    an__layer_norm(out, layer->out_norm_weight, layer->out_norm_bias, rows, h, eps);
}


void an__bert_packed_after_attention(an__thread_pool_t *pool, const an__bert_config_t *config,
                                     const an__bert_layer_t *layer, const float *hidden,
                                     const float *context, size_t tokens, float *mid,
                                     float *intermediate, float *out)
{
    size_t h = config->hidden_size, inter = config->intermediate_size;
    float eps = config->layer_norm_eps;
    size_t threads = an__thread_pool_size(pool);
    if (tokens >= threads * ROW_CHUNK) {
        size_t chunk = row_chunk(tokens, threads);
        tail_job_t job = {config, layer, hidden, context, tokens, chunk, mid, intermediate, out};
        an__thread_pool_run(pool, (tokens + chunk - 1) / chunk, tail_rows_task, &job);
        return;
    }

    an__gemm_epilogue_t attn_out = {layer->attn_out_bias, hidden, h, false};
    packed_linear(pool, context, tokens, h, layer->attn_out_weight, h, attn_out, mid);
    an__layer_norm(mid, layer->attn_norm_weight, layer->attn_norm_bias, tokens, h, eps);
    an__gemm_epilogue_t up = {layer->inter_bias, NULL, 0, true};
    packed_linear(pool, mid, tokens, h, layer->inter_weight, inter, up, intermediate);
    an__gemm_epilogue_t down = {layer->out_bias, mid, h, false};
    packed_linear(pool, intermediate, tokens, inter, layer->out_weight, h, down, out);
    an__layer_norm(out, layer->out_norm_weight, layer->out_norm_bias, tokens, h, eps);
}
