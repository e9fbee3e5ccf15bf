/*
 * Compares the CUDA encoder with the CPU encoder on a MiniLM-shaped model
 * (all-MiniLM-L6-v2's shapes: 6 layers, hidden 384, 12 heads, intermediate
 * 1536) with random weights, then times one batch on each. Random weights
 * exercise every kernel at real sizes without a model download. Exits 0
 * when every pooled float agrees within 1e-4, 1 when one does not, and 77
 * without a CUDA device. Run by bench/embed/cuda_check.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/common.h"
#include "embed/bert_forward.h"
#include "embed/cuda_backend.h"
#include "embed/kernels.h"

#define SENTENCES 32
#define TOKENS_PER_SENTENCE 128
#define TIMED_RUNS 20
#define TOLERANCE 1e-4
#define SKIP_EXIT_CODE 77

/* Uniform in [-scale, scale], from a fixed-seed LCG so every run uses the same model. */
static float random_uniform(uint64_t *state, float scale)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return scale * ((float)(*state >> 40) / (float)(1ull << 24) * 2.0f - 1.0f);
}


static float *random_tensor(size_t n, float scale, float center, uint64_t *state)
{
    float *t = malloc(n * sizeof(float));
    if (!t) {
        fprintf(stderr, "bench_embed_cuda: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        t[i] = center + random_uniform(state, scale);
    return t;
}


/* Fills w with MiniLM's shapes and random weights; the tensors are never freed. */
static void make_minilm_weights(an__bert_weights_t *w)
{
    an__bert_config_t c = {
        .hidden_size = 384, .num_hidden_layers = 6, .num_attention_heads = 12,
        .intermediate_size = 1536, .vocab_size = 30522, .max_position_embeddings = 512,
        .type_vocab_size = 2, .layer_norm_eps = 1e-12f,
    };
    size_t h = c.hidden_size, inter = c.intermediate_size;
    uint64_t seed = 42;
    w->config = c;
    w->word_embeddings = random_tensor(c.vocab_size * h, 0.1f, 0, &seed);
    w->position_embeddings = random_tensor(c.max_position_embeddings * h, 0.1f, 0, &seed);
    w->token_type_row = random_tensor(h, 0.1f, 0, &seed);
    w->emb_norm_weight = random_tensor(h, 0.1f, 1, &seed);
    w->emb_norm_bias = random_tensor(h, 0.1f, 0, &seed);
    w->layers = calloc(c.num_hidden_layers, sizeof(*w->layers));
    for (unsigned l = 0; l < c.num_hidden_layers; l++) {
        an__bert_layer_t *layer = &w->layers[l];
        layer->qkv_weight = random_tensor(3 * h * h, 0.05f, 0, &seed);
        layer->qkv_bias = random_tensor(3 * h, 0.05f, 0, &seed);
        layer->attn_out_weight = random_tensor(h * h, 0.05f, 0, &seed);
        layer->attn_out_bias = random_tensor(h, 0.05f, 0, &seed);
        layer->attn_norm_weight = random_tensor(h, 0.1f, 1, &seed);
        layer->attn_norm_bias = random_tensor(h, 0.1f, 0, &seed);
        layer->inter_weight = random_tensor(inter * h, 0.05f, 0, &seed);
        layer->inter_bias = random_tensor(inter, 0.05f, 0, &seed);
        layer->out_weight = random_tensor(h * inter, 0.05f, 0, &seed);
        layer->out_bias = random_tensor(h, 0.05f, 0, &seed);
        layer->out_norm_weight = random_tensor(h, 0.1f, 1, &seed);
        layer->out_norm_bias = random_tensor(h, 0.1f, 0, &seed);
    }
}


static double seconds_since(uint64_t start_ns) { return (double)(an_mono_ns() - start_ns) / 1e9; }


int main(void)
{
    char why[160] = "";
    if (an__cuda_device_count(why, sizeof(why)) == 0) {
        printf("no CUDA device: skipped (%s)\n", why);
        return SKIP_EXIT_CODE;
    }

    an__bert_weights_t w;
    make_minilm_weights(&w);
    size_t h = w.config.hidden_size, dims = h;
    unsigned modes = AN__POOL_MEAN;

    /* Sentence lengths from TOKENS_PER_SENTENCE down, as sorted batches arrive. */
    size_t offsets[SENTENCES + 1] = {0};
    for (size_t s = 0; s < SENTENCES; s++)
        offsets[s + 1] =
            offsets[s] + TOKENS_PER_SENTENCE - s * (TOKENS_PER_SENTENCE / 2) / SENTENCES;
    size_t tokens = offsets[SENTENCES];
    int32_t *ids = malloc(tokens * sizeof(int32_t));
    uint64_t seed = 7;
    for (size_t t = 0; t < tokens; t++)
        ids[t] = (int32_t)((random_uniform(&seed, 0.5f) + 0.5f) * (float)(w.config.vocab_size - 1));

    /* CPU reference: the same forward pass, pooling and normalisation as bert_model.c. */
    an__bert_workspace_t ws = {0};
    float *cpu = malloc(SENTENCES * dims * sizeof(float));
    const float *hidden;
    uint64_t start = an_mono_ns();
    if (an__bert_forward(&w, ids, offsets, SENTENCES, &ws, &hidden) != 0) {
        fprintf(stderr, "bench_embed_cuda: CPU forward pass failed\n");
        return 1;
    }
    for (size_t s = 0; s < SENTENCES; s++) {
        an__pool(modes, hidden + offsets[s] * h, offsets[s + 1] - offsets[s], h, cpu + s * dims);
        an__l2_normalize(cpu + s * dims, dims);
    }
    double cpu_seconds = seconds_since(start);

    char err[512] = "";
    an__cuda_model_t *model;
    if (an__cuda_model_upload(&w, 0, modes, 1, &model, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_embed_cuda: %s\n", err);
        return 1;
    }
    const float *gpu;
    /* The first call allocates the workspace and loads the kernels, so it is not timed. */
    if (an__cuda_forward(model, ids, offsets, SENTENCES, &gpu, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_embed_cuda: %s\n", err);
        return 1;
    }
    double max_diff = 0;
    for (size_t i = 0; i < SENTENCES * dims; i++) {
        double d = fabs((double)gpu[i] - cpu[i]);
        max_diff = d > max_diff ? d : max_diff;
    }

    start = an_mono_ns();
    for (int run = 0; run < TIMED_RUNS; run++)
        if (an__cuda_forward(model, ids, offsets, SENTENCES, &gpu, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench_embed_cuda: %s\n", err);
            return 1;
        }
    double gpu_seconds = seconds_since(start) / TIMED_RUNS;

    printf("MiniLM-shaped batch: %d sentences, %zu tokens, random weights\n", SENTENCES, tokens);
    printf("max |cuda - cpu| over pooled floats: %.3g (tolerance %.0e)\n", max_diff, TOLERANCE);
    printf("cpu: %.2f ms per batch (one run, OpenBLAS default threads)\n", cpu_seconds * 1e3);
    printf("cuda:0: %.2f ms per batch (mean of %d runs, host copies included)\n",
           gpu_seconds * 1e3, TIMED_RUNS);
    an__cuda_model_free(model);
    an__bert_workspace_free(&ws);
    return max_diff <= TOLERANCE ? 0 : 1;
}
