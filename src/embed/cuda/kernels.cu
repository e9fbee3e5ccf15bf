/*
 * CUDA kernels of the encoder. Each follows its C counterpart in kernels.c
 * and pooling.c step by step, in strict float32 (no fast-math intrinsics),
 * so the GPU and the CPU differ only in summation order. Row-wise kernels
 * run one block per row.
 */
#include <math.h>

#include "embed/cuda/kernels.cuh"
#include "embed/st_config.h"

/* Threads per block of the row-wise kernels; a multiple of the warp size. */
#define ROW_THREADS 256
/* Warps per block of the attention kernel, one query row each. */
#define ATTENTION_WARPS 4
/* Shared memory a block may use on every CUDA GPU without opting in to more. */
#define SHARED_BYTES_MAX (48 * 1024)
#define FULL_MASK 0xffffffffu


template <typename T> __device__ T warp_sum(T v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}


__device__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}


/*
 * Returns the sum of v over the block to every thread. partials has one
 * slot per warp, and the trailing barrier lets the caller reuse it at once.
 */
template <typename T> __device__ T block_sum(T v, T *partials)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0)
        partials[warp] = v;
    __syncthreads();
    v = lane < (int)(blockDim.x >> 5) ? partials[lane] : (T)0;
    v = warp_sum(v);
    __syncthreads();
    return v;
}


/* LayerNorm of one row in place, as an__layer_norm() computes it. */
__device__ void layer_norm_row(float *row, const float *gamma, const float *beta, float eps,
                               int cols)
{
    __shared__ float partials[32];

    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        sum += row[c];
    float mean = block_sum(sum, partials) / (float)cols;

    float squares = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float d = row[c] - mean;
        squares += d * d;
    }
    float variance = block_sum(squares, partials) / (float)cols;
    float inv_std = 1.0f / sqrtf(variance + eps);

    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        row[c] = (row[c] - mean) * inv_std * gamma[c] + beta[c];
}


__global__ void embed_layer_norm_kernel(const int32_t *ids, const int32_t *positions,
                                        const float *word, const float *position,
                                        const float *token_type_row, const float *gamma,
                                        const float *beta, float eps, int hidden, float *out)
{
    size_t t = blockIdx.x;
    const float *word_row = word + (size_t)ids[t] * hidden;
    const float *position_row = position + (size_t)positions[t] * hidden;
    float *row = out + t * hidden;
    for (int c = threadIdx.x; c < hidden; c += blockDim.x)
        row[c] = word_row[c] + position_row[c] + token_type_row[c];
    layer_norm_row(row, gamma, beta, eps, hidden);
}


__global__ void add_bias_kernel(float *x, const float *bias, size_t n, int cols)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] += bias[i % cols];
}


__global__ void bias_gelu_kernel(float *x, const float *bias, size_t n, int cols)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i] + bias[i % cols];
        x[i] = 0.5f * v * (1.0f + erff(v * inv_sqrt2));
    }
}


__global__ void bias_residual_layer_norm_kernel(float *x, const float *bias,
                                                const float *residual, const float *gamma,
                                                const float *beta, float eps, int cols)
{
    size_t offset = (size_t)blockIdx.x * cols;
    float *row = x + offset;
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        row[c] = (row[c] + bias[c]) + residual[offset + c];
    layer_norm_row(row, gamma, beta, eps, cols);
}


/*
 * Grid: (query tiles of ATTENTION_WARPS rows, heads, sentences). Each warp
 * takes one query row: its lanes score the keys in turn, the warp takes the
 * softmax, and then each lane sums the value column of its own dimensions.
 * Shared memory per warp: the row's scores (longest floats), then the query
 * (head_dim floats).
 */
__global__ void attention_kernel(const float *qkv, const int32_t *offsets, int hidden,
                                 int head_dim, float scale, int warps, int longest,
                                 float *context)
{
    extern __shared__ float shared[];
    int sentence = blockIdx.z, head = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int first = offsets[sentence];
    int len = offsets[sentence + 1] - first;
    int i = blockIdx.x * warps + warp;
    if (i >= len)
        return;

    size_t stride = 3 * (size_t)hidden;
    const float *base = qkv + (size_t)first * stride + (size_t)head * head_dim;
    float *scores = shared + (size_t)warp * (longest + head_dim);
    float *q = scores + longest;
    for (int d = lane; d < head_dim; d += 32)
        q[d] = base[i * stride + d];
    __syncwarp();

    float max = -INFINITY;
    for (int j = lane; j < len; j += 32) {
        const float *k = base + j * stride + hidden;
        float dot = 0.0f;
        for (int d = 0; d < head_dim; d++)
            dot += q[d] * k[d];
        scores[j] = scale * dot;
        max = fmaxf(max, scores[j]);
    }
    max = warp_max(max);

    float sum = 0.0f;
    for (int j = lane; j < len; j += 32) {
        scores[j] = expf(scores[j] - max);
        sum += scores[j];
    }
    float inv = 1.0f / warp_sum(sum);
    for (int j = lane; j < len; j += 32)
        scores[j] *= inv;
    __syncwarp();

    float *out = context + (size_t)(first + i) * hidden + (size_t)head * head_dim;
    for (int d = lane; d < head_dim; d += 32) {
        const float *v = base + 2 * (size_t)hidden + d;
        float acc = 0.0f;
        for (int j = 0; j < len; j++)
            acc += scores[j] * v[j * stride];
        out[d] = acc;
    }
}


/* Column mean of one sentence, in double as pooling.c's column_mean(). */
__device__ float column_mean(const float *rows, int tokens, int hidden, int c, double divisor)
{
    double sum = 0.0;
    for (int t = 0; t < tokens; t++)
        sum += rows[(size_t)t * hidden + c];
    return (float)(sum / divisor);
}


__global__ void pool_kernel(const float *hidden, const int32_t *offsets, int hidden_size,
                            unsigned modes, int normalize, int dims, float *pooled)
{
    __shared__ double partials[32];
    int sentence = blockIdx.x;
    int first = offsets[sentence];
    int tokens = offsets[sentence + 1] - first;
    const float *rows = hidden + (size_t)first * hidden_size;
    float *out = pooled + (size_t)sentence * dims;

    for (int c = threadIdx.x; c < hidden_size; c += blockDim.x) {
        float *slot = out + c;
        if (modes & AN__POOL_CLS) {
            *slot = rows[c];
            slot += hidden_size;
        }
        if (modes & AN__POOL_MAX) {
            float max = rows[c];
            for (int t = 1; t < tokens; t++) {
                float v = rows[(size_t)t * hidden_size + c];
                max = v > max ? v : max;
            }
            *slot = max;
            slot += hidden_size;
        }
        if (modes & AN__POOL_MEAN) {
            *slot = column_mean(rows, tokens, hidden_size, c, (double)tokens);
            slot += hidden_size;
        }
        if (modes & AN__POOL_MEAN_SQRT_LEN)
            *slot = column_mean(rows, tokens, hidden_size, c, sqrt((double)tokens));
    }
    if (!normalize)
        return;

    /* The same L2 normalisation as an__l2_normalize(), clamped at 1e-12. */
    __syncthreads();
    double squares = 0.0;
    for (int k = threadIdx.x; k < dims; k += blockDim.x)
        squares += (double)out[k] * out[k];
    double norm = sqrt(block_sum(squares, partials));
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (int k = threadIdx.x; k < dims; k += blockDim.x)
        out[k] *= inv;
}


/* Blocks for an element-wise kernel over n elements; the kernels loop over the rest. */
static unsigned elementwise_blocks(size_t n)
{
    size_t blocks = (n + ROW_THREADS - 1) / ROW_THREADS;
    return blocks > 65535 ? 65535 : (unsigned)(blocks ? blocks : 1);
}


cudaError_t an__cuda_embed_layer_norm(const int32_t *ids, const int32_t *positions,
                                      const float *word, const float *position,
                                      const float *token_type_row, const float *gamma,
                                      const float *beta, float eps, int tokens, int hidden,
                                      float *out, cudaStream_t stream)
{
    embed_layer_norm_kernel<<<tokens, ROW_THREADS, 0, stream>>>(
        ids, positions, word, position, token_type_row, gamma, beta, eps, hidden, out);
    return cudaGetLastError();
}


cudaError_t an__cuda_add_bias(float *x, const float *bias, int rows, int cols,
                              cudaStream_t stream)
{
    size_t n = (size_t)rows * cols;
    add_bias_kernel<<<elementwise_blocks(n), ROW_THREADS, 0, stream>>>(x, bias, n, cols);
    return cudaGetLastError();
}


cudaError_t an__cuda_bias_gelu(float *x, const float *bias, int rows, int cols,
                               cudaStream_t stream)
{
    size_t n = (size_t)rows * cols;
    bias_gelu_kernel<<<elementwise_blocks(n), ROW_THREADS, 0, stream>>>(x, bias, n, cols);
    return cudaGetLastError();
}


cudaError_t an__cuda_bias_residual_layer_norm(float *x, const float *bias, const float *residual,
                                              const float *gamma, const float *beta, float eps,
                                              int rows, int cols, cudaStream_t stream)
{
    bias_residual_layer_norm_kernel<<<rows, ROW_THREADS, 0, stream>>>(x, bias, residual, gamma,
                                                                      beta, eps, cols);
    return cudaGetLastError();
}


cudaError_t an__cuda_attention(const float *qkv, const int32_t *offsets, int sentences,
                               int longest, int hidden, int heads, float *context,
                               cudaStream_t stream)
{
    int head_dim = hidden / heads;
    size_t per_warp_bytes = ((size_t)longest + head_dim) * sizeof(float);
    int warps = ATTENTION_WARPS;
    while (warps > 1 && warps * per_warp_bytes > SHARED_BYTES_MAX)
        warps--;
    if (per_warp_bytes > SHARED_BYTES_MAX)
        return cudaErrorInvalidValue;

    dim3 grid((unsigned)((longest + warps - 1) / warps), (unsigned)heads, (unsigned)sentences);
    float scale = (float)(1.0 / sqrt((double)head_dim));
    attention_kernel<<<grid, warps * 32, warps * per_warp_bytes, stream>>>(
        qkv, offsets, hidden, head_dim, scale, warps, longest, context);
    return cudaGetLastError();
}


cudaError_t an__cuda_pool(const float *hidden, const int32_t *offsets, int sentences, int hidden_size,
                          unsigned modes, int normalize, int dims, float *pooled,
                          cudaStream_t stream)
{
    pool_kernel<<<sentences, ROW_THREADS, 0, stream>>>(hidden, offsets, hidden_size, modes,
                                                       normalize, dims, pooled);
    return cudaGetLastError();
}
