/*
 * The CUDA encoder behind cuda_backend.h: one device copy of the float32
 * weights, laid out as bert_model.c fuses them, and the packed forward pass
 * of bert_forward.c on one stream, ending in pooling so only the pooled
 * rows come back to the host. Kernels are in kernels.cu.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "embed/bert_forward.h"
}
#include "embed/cuda/kernels.cuh"
#include "embed/cuda/module.h"

/* Sentences per batch: the attention grid's z dimension allows at most 65535. */
#define CUDA_MAX_SENTENCES 65535

struct an__cuda_model {
    int device;
    unsigned pooling_modes;
    int normalize;
    size_t dims;
    cudaStream_t stream;
    cublasHandle_t cublas;

    float *arena;                 /* every weight, on the device */
    an__bert_weights_t weights;   /* pointers into arena; layers is a host array */

    /* Buffers grown to the largest batch seen and reused. */
    float *workspace;             /* device activations */
    size_t workspace_floats;
    int32_t *index;               /* device ids, positions and offsets */
    size_t index_count;
    int32_t *host_index;          /* pinned staging of index */
    size_t host_index_count;
    float *host_pooled;           /* pinned pooled rows, returned to the caller */
    size_t host_pooled_floats;
};


/* Writes a message naming the device and the failed call; maps out-of-memory to AN_ENOMEM. */
static int cuda_error(int device, const char *what, cudaError_t e, char *err, size_t err_len)
{
    if (e == cudaErrorMemoryAllocation) {
        snprintf(err, err_len, "embed: cuda:%d: %s failed: out of memory; lower --batch-size "
                 "or use --device cpu", device, what);
        return AN_ENOMEM;
    }
    snprintf(err, err_len, "embed: cuda:%d: %s failed: %s (%s)", device, what,
             cudaGetErrorString(e), cudaGetErrorName(e));
    return AN_EIO;
}


static int cublas_error(int device, const char *what, cublasStatus_t s, char *err,
                        size_t err_len)
{
    snprintf(err, err_len, "embed: cuda:%d: %s failed: %s", device, what,
             cublasGetStatusString(s));
    return s == CUBLAS_STATUS_ALLOC_FAILED ? AN_ENOMEM : AN_EIO;
}


extern "C" int an__cudamod_device_count(char *why, size_t why_len)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        /* Without an NVIDIA driver the runtime reports an old driver, which misleads. */
        int no_driver = access("/proc/driver/nvidia/version", F_OK) != 0;
        if (why && (e == cudaErrorNoDevice || (e == cudaErrorInsufficientDriver && no_driver)))
            snprintf(why, why_len, "no NVIDIA driver or GPU on this machine");
        else if (why)
            snprintf(why, why_len, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        cudaGetLastError(); /* clear it, so it does not surface in a later call */
        return 0;
    }
    if (count == 0 && why)
        snprintf(why, why_len, "cudaGetDeviceCount returned 0 devices");
    return count;
}


/*
 * Hands out device float ranges of the arena in upload order, copying each
 * tensor in. With a NULL base it only counts, to size the arena first.
 */
typedef struct {
    float *base;
    size_t used;
} device_cursor_t;

static cudaError_t upload(device_cursor_t *cursor, const float *src, size_t floats,
                          const float **dst)
{
    float *p = cursor->base ? cursor->base + cursor->used : NULL;
    cursor->used += floats;
    *dst = p;
    return p ? cudaMemcpy(p, src, floats * sizeof(float), cudaMemcpyHostToDevice) : cudaSuccess;
}


/* Copies every tensor of w to the arena at cursor (or counts them), pointing d at the copies. */
static cudaError_t upload_pass(const an__bert_weights_t *w, device_cursor_t *cursor,
                               an__bert_weights_t *d)
{
    const an__bert_config_t *c = &w->config;
    size_t h = c->hidden_size, inter = c->intermediate_size;
    cudaError_t e;
    if ((e = upload(cursor, w->word_embeddings, (size_t)c->vocab_size * h,
                    &d->word_embeddings)) ||
        (e = upload(cursor, w->position_embeddings, (size_t)c->max_position_embeddings * h,
                    &d->position_embeddings)) ||
        (e = upload(cursor, w->token_type_row, h, &d->token_type_row)) ||
        (e = upload(cursor, w->emb_norm_weight, h, &d->emb_norm_weight)) ||
        (e = upload(cursor, w->emb_norm_bias, h, &d->emb_norm_bias)))
        return e;

    for (unsigned l = 0; l < c->num_hidden_layers; l++) {
        const an__bert_layer_t *src = &w->layers[l];
        an__bert_layer_t *dst = &d->layers[l];
        if ((e = upload(cursor, src->qkv_weight, 3 * h * h, &dst->qkv_weight)) ||
            (e = upload(cursor, src->qkv_bias, 3 * h, &dst->qkv_bias)) ||
            (e = upload(cursor, src->attn_out_weight, h * h, &dst->attn_out_weight)) ||
            (e = upload(cursor, src->attn_out_bias, h, &dst->attn_out_bias)) ||
            (e = upload(cursor, src->attn_norm_weight, h, &dst->attn_norm_weight)) ||
            (e = upload(cursor, src->attn_norm_bias, h, &dst->attn_norm_bias)) ||
            (e = upload(cursor, src->inter_weight, inter * h, &dst->inter_weight)) ||
            (e = upload(cursor, src->inter_bias, inter, &dst->inter_bias)) ||
            (e = upload(cursor, src->out_weight, h * inter, &dst->out_weight)) ||
            (e = upload(cursor, src->out_bias, h, &dst->out_bias)) ||
            (e = upload(cursor, src->out_norm_weight, h, &dst->out_norm_weight)) ||
            (e = upload(cursor, src->out_norm_bias, h, &dst->out_norm_bias)))
            return e;
    }
    return cudaSuccess;
}


extern "C" int an__cudamod_model_upload(const an__bert_weights_t *w, int device,
                                        unsigned pooling_modes, size_t pooled_dims,
                                        int normalize, an__cuda_model_t **out, char *err,
                                        size_t err_len)
{
    *out = NULL;
    an__cuda_model_t *m = (an__cuda_model_t *)calloc(1, sizeof(*m));
    if (!m)
        return AN_ENOMEM;
    m->device = device;
    m->pooling_modes = pooling_modes;
    m->normalize = normalize;
    m->dims = pooled_dims;
    m->weights.config = w->config;
    m->weights.layers =
        (an__bert_layer_t *)calloc(w->config.num_hidden_layers, sizeof(*m->weights.layers));
    if (!m->weights.layers) {
        free(m);
        return AN_ENOMEM;
    }

    int rc;
    cudaError_t e;
    cublasStatus_t s;
    if ((e = cudaSetDevice(device)) != cudaSuccess) {
        rc = cuda_error(device, "cudaSetDevice", e, err, err_len);
        goto fail;
    }
    if ((e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        rc = cuda_error(device, "cudaStreamCreate", e, err, err_len);
        goto fail;
    }
    if ((s = cublasCreate(&m->cublas)) != CUBLAS_STATUS_SUCCESS) {
        rc = cublas_error(device, "cublasCreate", s, err, err_len);
        goto fail;
    }
    /*
     * Strict float32 GEMMs: the default math mode never uses TF32 tensor
     * cores, whose 10-bit mantissa would move results by about 1e-3, far
     * from the CPU's.
     */
    if ((s = cublasSetMathMode(m->cublas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetStream(m->cublas, m->stream)) != CUBLAS_STATUS_SUCCESS) {
        rc = cublas_error(device, "cublas setup", s, err, err_len);
        goto fail;
    }

    {
        device_cursor_t cursor = {NULL, 0};
        upload_pass(w, &cursor, &m->weights);
        size_t total = cursor.used;
        if ((e = cudaMalloc((void **)&m->arena, total * sizeof(float))) != cudaSuccess) {
            char what[64];
            snprintf(what, sizeof(what), "cudaMalloc of %zu MiB of weights",
                     (total * sizeof(float)) >> 20);
            rc = cuda_error(device, what, e, err, err_len);
            goto fail;
        }
        cursor = (device_cursor_t){m->arena, 0};
        if ((e = upload_pass(w, &cursor, &m->weights)) != cudaSuccess) {
            rc = cuda_error(device, "cudaMemcpy of the weights", e, err, err_len);
            goto fail;
        }
    }
    *out = m;
    return 0;

fail:
    an__cudamod_model_free(m);
    return rc;
}


extern "C" void an__cudamod_model_free(an__cuda_model_t *m)
{
    if (!m)
        return;
    cudaSetDevice(m->device);
    if (m->stream)
        cudaStreamSynchronize(m->stream);
    if (m->cublas)
        cublasDestroy(m->cublas);
    if (m->stream)
        cudaStreamDestroy(m->stream);
    cudaFree(m->arena);
    cudaFree(m->workspace);
    cudaFree(m->index);
    cudaFreeHost(m->host_index);
    cudaFreeHost(m->host_pooled);
    free(m->weights.layers);
    free(m);
}


/* Grows the device buffer *p to at least need elements of elem bytes, dropping its contents. */
static cudaError_t grow_device(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return cudaSuccess;
    cudaFree(*p);
    *p = NULL;
    *cap = 0;
    cudaError_t e = cudaMalloc(p, need * elem);
    if (e == cudaSuccess)
        *cap = need;
    return e;
}


/* Like grow_device() for pinned host memory, which lets cudaMemcpyAsync overlap. */
static cudaError_t grow_host(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return cudaSuccess;
    cudaFreeHost(*p);
    *p = NULL;
    *cap = 0;
    cudaError_t e = cudaMallocHost(p, need * elem);
    if (e == cudaSuccess)
        *cap = need;
    return e;
}


/* y[rows][out] = x[rows][in] * weight[out][in]^T, row-major, as linear() in bert_forward.c. */
static cublasStatus_t gemm(cublasHandle_t cublas, const float *x, int rows, int in,
                           const float *weight, int out, float *y)
{
    /* cuBLAS is column-major: compute y^T = weight * x^T, whose layouts match row-major y. */
    const float one = 1.0f, zero = 0.0f;
    return cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, weight, in, x, in,
                       &zero, y, out);
}


/* Runs the encoder layers on the embedded tokens in hidden; returns the buffer holding the result. */
static int run_layers(an__cuda_model_t *m, int tokens, const int32_t *offsets, int count,
                      int longest, float *hidden, float *spare, float *qkv, float *context,
                      float *intermediate, float **result, char *err, size_t err_len)
{
    const an__bert_config_t *c = &m->weights.config;
    int h = (int)c->hidden_size, inter = (int)c->intermediate_size;
    cudaStream_t st = m->stream;
    cublasStatus_t s;
    cudaError_t e;

    for (unsigned l = 0; l < c->num_hidden_layers; l++) {
        const an__bert_layer_t *layer = &m->weights.layers[l];
        float *swap;

        if ((s = gemm(m->cublas, hidden, tokens, h, layer->qkv_weight, 3 * h, qkv)))
            return cublas_error(m->device, "cublasSgemm (query, key, value)", s, err, err_len);
        if ((e = an__cuda_add_bias(qkv, layer->qkv_bias, tokens, 3 * h, st)))
            return cuda_error(m->device, "add_bias kernel", e, err, err_len);
        if ((e = an__cuda_attention(qkv, offsets, count, longest, h,
                                    (int)c->num_attention_heads, context, st)))
            return cuda_error(m->device, "attention kernel", e, err, err_len);
        if ((s = gemm(m->cublas, context, tokens, h, layer->attn_out_weight, h, spare)))
            return cublas_error(m->device, "cublasSgemm (attention output)", s, err, err_len);
        if ((e = an__cuda_bias_residual_layer_norm(spare, layer->attn_out_bias, hidden,
                                                   layer->attn_norm_weight,
                                                   layer->attn_norm_bias, c->layer_norm_eps,
                                                   tokens, h, st)))
            return cuda_error(m->device, "layer_norm kernel", e, err, err_len);
        swap = hidden, hidden = spare, spare = swap;

        if ((s = gemm(m->cublas, hidden, tokens, h, layer->inter_weight, inter, intermediate)))
            return cublas_error(m->device, "cublasSgemm (intermediate)", s, err, err_len);
        if ((e = an__cuda_bias_gelu(intermediate, layer->inter_bias, tokens, inter, st)))
            return cuda_error(m->device, "gelu kernel", e, err, err_len);
        if ((s = gemm(m->cublas, intermediate, tokens, inter, layer->out_weight, h, spare)))
            return cublas_error(m->device, "cublasSgemm (output)", s, err, err_len);
        if ((e = an__cuda_bias_residual_layer_norm(spare, layer->out_bias, hidden,
                                                   layer->out_norm_weight, layer->out_norm_bias,
                                                   c->layer_norm_eps, tokens, h, st)))
            return cuda_error(m->device, "layer_norm kernel", e, err, err_len);
        swap = hidden, hidden = spare, spare = swap;
    }
    *result = hidden;
    return 0;
}


/*
 * NOTE: this forward pass has been compiled but not yet run on a GPU, so
 * its agreement with the CPU encoder is unverified. bench/embed/cuda_check.sh
 * checks it on a machine with a GPU.
 */
extern "C" int an__cudamod_forward(an__cuda_model_t *m, const int32_t *ids,
                                   const size_t *offsets, size_t count, const float **pooled_out,
                                   char *err, size_t err_len)
{
    const an__bert_config_t *c = &m->weights.config;
    size_t h = c->hidden_size, inter = c->intermediate_size;
    size_t tokens = offsets[count];
    size_t longest = 0;
    for (size_t s = 0; s < count; s++)
        longest = offsets[s + 1] - offsets[s] > longest ? offsets[s + 1] - offsets[s] : longest;
    if (count > CUDA_MAX_SENTENCES || tokens * (3 * h > inter ? 3 * h : inter) > INT_MAX) {
        snprintf(err, err_len, "embed: cuda:%d: a batch of %zu sentences and %zu tokens is too "
                 "large for the CUDA encoder; lower --batch-size", m->device, count, tokens);
        return AN_EINVAL;
    }

    cudaError_t e;
    if ((e = cudaSetDevice(m->device)) != cudaSuccess)
        return cuda_error(m->device, "cudaSetDevice", e, err, err_len);

    /* ids, then each token's position in its sentence, then the sentence offsets. */
    size_t index_count = 2 * tokens + count + 1;
    if ((e = grow_host((void **)&m->host_index, &m->host_index_count, index_count,
                       sizeof(int32_t))) ||
        (e = grow_device((void **)&m->index, &m->index_count, index_count, sizeof(int32_t))))
        return cuda_error(m->device, "allocating the token index", e, err, err_len);
    int32_t *host_positions = m->host_index + tokens;
    int32_t *host_offsets = host_positions + tokens;
    memcpy(m->host_index, ids, tokens * sizeof(int32_t));
    for (size_t s = 0; s < count; s++)
        for (size_t t = offsets[s]; t < offsets[s + 1]; t++)
            host_positions[t] = (int32_t)(t - offsets[s]);
    for (size_t s = 0; s <= count; s++)
        host_offsets[s] = (int32_t)offsets[s];
    if ((e = cudaMemcpyAsync(m->index, m->host_index, index_count * sizeof(int32_t),
                             cudaMemcpyHostToDevice, m->stream)))
        return cuda_error(m->device, "cudaMemcpyAsync of the token ids", e, err, err_len);
    const int32_t *device_ids = m->index;
    const int32_t *device_positions = m->index + tokens;
    const int32_t *device_offsets = device_positions + tokens;

    /* hidden, spare (the next hidden), qkv, context, intermediate, pooled rows */
    size_t need = tokens * (h + h + 3 * h + h + inter) + count * m->dims;
    if ((e = grow_device((void **)&m->workspace, &m->workspace_floats, need, sizeof(float))) ||
        (e = grow_host((void **)&m->host_pooled, &m->host_pooled_floats, count * m->dims,
                       sizeof(float))))
        return cuda_error(m->device, "allocating the activations", e, err, err_len);
    float *hidden = m->workspace;
    float *spare = hidden + tokens * h;
    float *qkv = spare + tokens * h;
    float *context = qkv + tokens * 3 * h;
    float *intermediate = context + tokens * h;
    float *pooled = intermediate + tokens * inter;

    if ((e = an__cuda_embed_layer_norm(device_ids, device_positions,
                                       m->weights.word_embeddings,
                                       m->weights.position_embeddings,
                                       m->weights.token_type_row, m->weights.emb_norm_weight,
                                       m->weights.emb_norm_bias, c->layer_norm_eps, (int)tokens,
                                       (int)h, hidden, m->stream)))
        return cuda_error(m->device, "embedding kernel", e, err, err_len);
    float *result;
    int rc = run_layers(m, (int)tokens, device_offsets, (int)count, (int)longest, hidden, spare,
                        qkv, context, intermediate, &result, err, err_len);
    if (rc != 0)
        return rc;
    if ((e = an__cuda_pool(result, device_offsets, (int)count, (int)h, m->pooling_modes,
                           m->normalize, (int)m->dims, pooled, m->stream)))
        return cuda_error(m->device, "pooling kernel", e, err, err_len);

    if ((e = cudaMemcpyAsync(m->host_pooled, pooled, count * m->dims * sizeof(float),
                             cudaMemcpyDeviceToHost, m->stream)))
        return cuda_error(m->device, "cudaMemcpyAsync of the pooled rows", e, err, err_len);
    if ((e = cudaStreamSynchronize(m->stream)))
        return cuda_error(m->device, "the forward pass", e, err, err_len);
    *pooled_out = m->host_pooled;
    return 0;
}
