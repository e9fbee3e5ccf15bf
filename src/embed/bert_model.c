/*
 * Sentence-transformers directories of BERT-family models: loading the
 * weights and pipeline files, then batching inputs for the encoder. The
 * math lives in bert_forward.c, kernels.c and pooling.c, the file formats
 * in safetensors.c and st_config.c, and tokenization in tokenizer.c.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#include "agentnet/log.h"
#include "embed/bert_forward.h"
#include "embed/bert_packed.h"
#include "embed/blas.h"
#include "embed/cuda_backend.h"
#include "embed/embed_internal.h"
#include "embed/gemm_packed.h"
#include "embed/kernels.h"
#include "embed/safetensors.h"
#include "embed/st_config.h"
#include "embed/tokenizer.h"

/* sentence-transformers' max_seq_length when sentence_bert_config.json gives none. */
#define BERT_DEFAULT_MAX_SEQ_LENGTH 512

/* An input's sort key; qsort has no context argument, so the length travels with it. */
typedef struct {
    size_t tokens;
    size_t index;
} sort_key_t;

typedef struct {
    an__bert_config_t config;
    an__st_pipeline_t pipeline;
    an__bert_weights_t weights;
    float *arena;               /* every weight, converted to float32 */
    an__tokenizer_t *tokenizer;
    int32_t cls_id;
    int32_t sep_id;
    an__cuda_model_t *cuda;     /* the GPU copy of the weights; NULL on the CPU */

    /* Buffers reused across calls; each grows to the largest call seen. */
    an__bert_workspace_t workspace;
    int32_t *all_ids;           /* every input's ids, [CLS] and [SEP] included */
    size_t all_ids_cap;
    size_t *starts;             /* input i is all_ids[starts[i] .. starts[i + 1]) */
    sort_key_t *order;          /* inputs, longest first */
    int32_t *batch_ids;
    size_t batch_ids_cap;
    size_t *batch_offsets;
    size_t inputs_cap;
} bert_backend_t;


static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}


/*
 * Hands out float ranges of the weight arena in load order. With a NULL
 * base it only counts, so a first pass can check every tensor and size the
 * arena before anything large is allocated.
 */
typedef struct {
    float *base;
    size_t used;
} arena_cursor_t;

/*
 * Floats per 64-byte cache line. Every range starts on a line, so that
 * AVX-512 loads do not split lines.
 */
#define ARENA_ALIGN_FLOATS 16

static float *arena_take(arena_cursor_t *cursor, size_t floats)
{
    float *p = cursor->base ? cursor->base + cursor->used : NULL;
    cursor->used += (floats + ARENA_ALIGN_FLOATS - 1) / ARENA_ALIGN_FLOATS * ARENA_ALIGN_FLOATS;
    return p;
}


/*
 * Checks that the tensor prefix+name exists with a float dtype and shape
 * [rows] (cols == 0) or [rows][cols], then converts it into dst unless dst
 * is NULL.
 */
static int load_tensor(const an__st_file_t *file, const char *prefix, const char *name,
                       size_t rows, size_t cols, float *dst, char *err, size_t err_len)
{
    char full[256];
    snprintf(full, sizeof(full), "%s%s", prefix, name);
    const an__st_tensor_t *t = an__st_find(file, full);
    if (!t) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\" is missing; the file does not hold the "
                 "BERT model that config.json describes, download the model again", file->path,
                 full);
        return AN_EINVAL;
    }
    if (t->dtype != AN__ST_F32 && t->dtype != AN__ST_F16 && t->dtype != AN__ST_BF16) {
        snprintf(err, err_len, "embed: %s: tensor \"%s\" has dtype %s; the encoder reads F32, "
                 "F16 and BF16 weights, so convert the model to one of them", file->path, full,
                 an__st_dtype_name(t->dtype));
        return AN_EINVAL;
    }
    unsigned ndim = cols ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char got[96] = "";
        size_t used = 0;
        for (unsigned d = 0; d < t->ndim && used < sizeof(got); d++)
            used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%llu", d ? ", " : "",
                                     (unsigned long long)t->shape[d]);
        char expected[64];
        if (cols)
            snprintf(expected, sizeof(expected), "%zu, %zu", rows, cols);
        else
            snprintf(expected, sizeof(expected), "%zu", rows);
        snprintf(err, err_len, "embed: %s: tensor \"%s\" has shape [%s], but config.json implies "
                 "[%s]; config.json and model.safetensors come from different models",
                 file->path, full, got, expected);
        return AN_EINVAL;
    }
    return dst ? an__st_to_f32(t, dst) : 0;
}


static int load_layer(const an__st_file_t *file, const char *prefix, unsigned index,
                      const an__bert_config_t *c, arena_cursor_t *cursor, an__bert_layer_t *layer,
                      char *err, size_t err_len)
{
    size_t h = c->hidden_size, inter = c->intermediate_size;
    static const char *const qkv_names[] = {"query", "key", "value"};
    char name[160];
    int rc;

    /* Dense weights get room for their packed form, which an__bert_pack_weights writes in place. */
    float *qkv_weight = arena_take(cursor, an__gemm_packed_floats(3 * h, h));
    float *qkv_bias = arena_take(cursor, 3 * h);
    for (int part = 0; part < 3; part++) {
        snprintf(name, sizeof(name), "encoder.layer.%u.attention.self.%s.weight", index,
                 qkv_names[part]);
        if ((rc = load_tensor(file, prefix, name, h, h,
                              qkv_weight ? qkv_weight + part * h * h : NULL, err, err_len)))
            return rc;
        snprintf(name, sizeof(name), "encoder.layer.%u.attention.self.%s.bias", index,
                 qkv_names[part]);
        if ((rc = load_tensor(file, prefix, name, h, 0, qkv_bias ? qkv_bias + part * h : NULL,
                              err, err_len)))
            return rc;
    }
    layer->qkv_weight = qkv_weight;
    layer->qkv_bias = qkv_bias;

    struct {
        const char *suffix;
        size_t rows, cols;
        const float **dst;
    } parts[] = {
        {"attention.output.dense.weight", h, h, &layer->attn_out_weight},
        {"attention.output.dense.bias", h, 0, &layer->attn_out_bias},
        {"attention.output.LayerNorm.weight", h, 0, &layer->attn_norm_weight},
        {"attention.output.LayerNorm.bias", h, 0, &layer->attn_norm_bias},
        {"intermediate.dense.weight", inter, h, &layer->inter_weight},
        {"intermediate.dense.bias", inter, 0, &layer->inter_bias},
        {"output.dense.weight", h, inter, &layer->out_weight},
        {"output.dense.bias", h, 0, &layer->out_bias},
        {"output.LayerNorm.weight", h, 0, &layer->out_norm_weight},
        {"output.LayerNorm.bias", h, 0, &layer->out_norm_bias},
    };
    for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++) {
        size_t rows = parts[p].rows, cols = parts[p].cols;
        float *dst = arena_take(cursor, cols ? an__gemm_packed_floats(rows, cols) : rows);
        snprintf(name, sizeof(name), "encoder.layer.%u.%s", index, parts[p].suffix);
        if ((rc = load_tensor(file, prefix, name, parts[p].rows, parts[p].cols, dst, err,
                              err_len)))
            return rc;
        *parts[p].dst = dst;
    }
    return 0;
}


/*
 * Runs one pass over every encoder weight, each layer's query, key and value
 * fused: with cursor->base NULL it checks and counts, otherwise it converts
 * into the arena and points w at it.
 */
static int load_pass(const an__st_file_t *file, const char *prefix, const an__bert_config_t *c,
                     arena_cursor_t *cursor, an__bert_weights_t *w, char *err, size_t err_len)
{
    size_t h = c->hidden_size;
    struct {
        const char *name;
        size_t rows, cols;
        const float **dst;
    } embeddings[] = {
        {"embeddings.word_embeddings.weight", c->vocab_size, h, &w->word_embeddings},
        {"embeddings.position_embeddings.weight", c->max_position_embeddings, h,
         &w->position_embeddings},
        {"embeddings.token_type_embeddings.weight", c->type_vocab_size, h, &w->token_type_row},
        {"embeddings.LayerNorm.weight", h, 0, &w->emb_norm_weight},
        {"embeddings.LayerNorm.bias", h, 0, &w->emb_norm_bias},
    };
    int rc;
    for (size_t e = 0; e < sizeof(embeddings) / sizeof(embeddings[0]); e++) {
        size_t floats = embeddings[e].rows * (embeddings[e].cols ? embeddings[e].cols : 1);
        float *dst = arena_take(cursor, floats);
        if ((rc = load_tensor(file, prefix, embeddings[e].name, embeddings[e].rows,
                              embeddings[e].cols, dst, err, err_len)))
            return rc;
        *embeddings[e].dst = dst;
    }

    for (unsigned l = 0; l < c->num_hidden_layers; l++)
        if ((rc = load_layer(file, prefix, l, c, cursor, &w->layers[l], err, err_len)))
            return rc;
    return 0;
}


/*
 * Loads every encoder weight from file into one float32 arena. Names may
 * carry the "bert." prefix that BertForXxx checkpoints use; pooler.* and
 * other extra tensors are ignored.
 */
static int load_weights(bert_backend_t *b, const an__st_file_t *file, char *err, size_t err_len)
{
    const an__bert_config_t *c = &b->config;
    const char *prefix = "";
    if (!an__st_find(file, "embeddings.word_embeddings.weight") &&
        an__st_find(file, "bert.embeddings.word_embeddings.weight"))
        prefix = "bert.";

    an__bert_weights_t *w = &b->weights;
    w->config = *c;
    w->layers = calloc(c->num_hidden_layers, sizeof(*w->layers));
    if (!w->layers)
        return AN_ENOMEM;

    arena_cursor_t cursor = {NULL, 0};
    int rc = load_pass(file, prefix, c, &cursor, w, err, err_len);
    if (rc != 0)
        return rc;

    size_t total = cursor.used;
    b->arena = aligned_alloc(ARENA_ALIGN_FLOATS * sizeof(float), total * sizeof(float));
    if (!b->arena) {
        snprintf(err, err_len, "embed: %s: cannot allocate %zu MiB for the float32 weights; "
                 "free memory or use a smaller model", file->path,
                 total * sizeof(float) >> 20);
        return AN_ENOMEM;
    }
    cursor = (arena_cursor_t){b->arena, 0};
    rc = load_pass(file, prefix, c, &cursor, w, err, err_len);
    assert(rc != 0 || cursor.used == total);
    return rc;
}


static int open_safetensors(const char *dir, an__st_file_t **file, char *err, size_t err_len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    if (file_exists(path))
        return an__st_open(path, file, err, err_len);

    char pickle[4096];
    snprintf(pickle, sizeof(pickle), "%s/pytorch_model.bin", dir);
    if (file_exists(pickle)) {
        snprintf(err, err_len, "embed: %s is a PyTorch pickle, which AgentNet does not load; "
                 "convert it to model.safetensors (for example with the safetensors package's "
                 "convert script) and retry", pickle);
        return AN_EINVAL;
    }
    snprintf(err, err_len, "embed: %s not found; download the model's model.safetensors into "
             "that directory", path);
    return AN_ENOTFOUND;
}


/*
 * Resolves the device option to a CUDA device index, or -1 for the CPU, and
 * sets model->device. "auto" takes cuda:0 when the CUDA back end is built
 * and a device is visible, and otherwise the CPU, logging why in a CUDA
 * build.
 */
static int resolve_device(an_embed_model_t *model, int *cuda_device, char *err, size_t err_len)
{
    const char *device = model->opts.device;
    char why[160] = "";
    *cuda_device = -1;

    if (strcmp(device, "cpu") == 0) {
        snprintf(model->device, sizeof(model->device), "cpu");
        return 0;
    }
    if (strcmp(device, "auto") == 0) {
        if (an__cuda_driver_present(why, sizeof(why)) &&
            an__cuda_device_count(why, sizeof(why)) > 0) {
            *cuda_device = 0;
            snprintf(model->device, sizeof(model->device), "cuda:0");
            return 0;
        }
#ifdef AN_HAVE_CUDA
        an_log(AN_LOG_INFO, "no CUDA device found; using the CPU", "reason", why, NULL);
#endif
        snprintf(model->device, sizeof(model->device), "cpu");
        return 0;
    }

    char *end = NULL;
    long index = strncmp(device, "cuda:", 5) == 0 && device[5] >= '0' && device[5] <= '9'
                     ? strtol(device + 5, &end, 10)
                     : -1;
    if (index < 0 || *end != '\0' || index > INT_MAX) {
        snprintf(err, err_len, "embed: device \"%s\" is not known; use auto, cpu or cuda:N "
                 "(such as cuda:0)", device);
        return AN_EINVAL;
    }
#ifndef AN_HAVE_CUDA
    snprintf(err, err_len, "embed: device \"cuda:%ld\": this build has no CUDA back end; "
             "rebuild with the CUDA toolkit installed, or use --device cpu", index);
    return AN_EINVAL;
#else
    int visible = an__cuda_device_count(why, sizeof(why));
    if (visible == 0) {
        snprintf(err, err_len, "embed: device \"cuda:%ld\": no CUDA device is available (%s); "
                 "use --device cpu or auto, or run on a machine with an NVIDIA GPU and driver",
                 index, why);
        return AN_EINVAL;
    }
    if (index >= visible) {
        snprintf(err, err_len, "embed: device \"cuda:%ld\" does not exist: %d CUDA device%s "
                 "visible (cuda:0 to cuda:%d); pick one of them or use --device auto", index,
                 visible, visible == 1 ? " is" : "s are", visible - 1);
        return AN_EINVAL;
    }
    *cuda_device = (int)index;
    snprintf(model->device, sizeof(model->device), "cuda:%ld", index);
    return 0;
#endif
}


/*
 * Sets max_seq_length: sentence_bert_config.json's value or 512, capped by
 * the position table, and lowered further by the caller's option.
 */
static int resolve_lengths(an_embed_model_t *model, const bert_backend_t *b, char *err,
                           size_t err_len)
{
    unsigned msl = b->pipeline.max_seq_length ? b->pipeline.max_seq_length
                                              : BERT_DEFAULT_MAX_SEQ_LENGTH;
    if (msl > b->config.max_position_embeddings)
        msl = b->config.max_position_embeddings;
    if (model->opts.max_seq_length) {
        if (model->opts.max_seq_length < 2) {
            snprintf(err, err_len, "embed: max_seq_length %u leaves no room for [CLS] and "
                     "[SEP]; pass at least 2", model->opts.max_seq_length);
            return AN_EINVAL;
        }
        if (model->opts.max_seq_length < msl)
            msl = model->opts.max_seq_length;
    }
    model->max_seq_length = msl;
    model->opts.max_seq_length = msl;
    if (model->opts.max_batch_tokens == 0)
        model->opts.max_batch_tokens = model->opts.batch_size * msl;
    return 0;
}


static void bert_close(an_embed_model_t *model)
{
    bert_backend_t *b = model->backend;
    if (!b)
        return;
    an__tokenizer_close(b->tokenizer);
    an__cuda_model_free(b->cuda);
    an__thread_pool_free(b->workspace.pool);
    an__bert_workspace_free(&b->workspace);
    free(b->arena);
    free(b->weights.layers);
    free(b->all_ids);
    free(b->starts);
    free(b->order);
    free(b->batch_ids);
    free(b->batch_offsets);
    free(b);
    model->backend = NULL;
}


static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q)
        return AN_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}


/* Makes room for count inputs in the per-input arrays. */
static int reserve_inputs(bert_backend_t *b, size_t count)
{
    if (count + 1 <= b->inputs_cap)
        return 0;
    size_t n = count + 1;
    size_t *starts = realloc(b->starts, n * sizeof(*starts));
    if (!starts)
        return AN_ENOMEM;
    b->starts = starts;
    sort_key_t *order = realloc(b->order, n * sizeof(*order));
    if (!order)
        return AN_ENOMEM;
    b->order = order;
    size_t *offsets = realloc(b->batch_offsets, n * sizeof(*offsets));
    if (!offsets)
        return AN_ENOMEM;
    b->batch_offsets = offsets;
    b->inputs_cap = n;
    return 0;
}


static int compare_longest_first(const void *x, const void *y)
{
    const sort_key_t *a = x, *b = y;
    if (a->tokens != b->tokens)
        return a->tokens > b->tokens ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}


/*
 * Encodes the batch in b->batch_ids, the sorted inputs b->order[first] to
 * b->order[first + n - 1], on the CPU, and pools each input into its own
 * row of out.
 */
static int run_batch_cpu(an_embed_model_t *model, size_t first, size_t n, float *out)
{
    bert_backend_t *b = model->backend;
    size_t h = b->config.hidden_size;
    const float *hidden;
    int rc = an__bert_forward(&b->weights, b->batch_ids, b->batch_offsets, n, &b->workspace,
                              &hidden);
    if (rc != 0)
        return rc;
    for (size_t k = 0; k < n; k++) {
        float *row = out + b->order[first + k].index * model->dims;
        size_t len = b->batch_offsets[k + 1] - b->batch_offsets[k];
        an__pool(b->pipeline.pooling_modes, hidden + b->batch_offsets[k] * h, len, h, row);
        if (b->pipeline.normalize)
            an__l2_normalize(row, model->dims);
    }
    return 0;
}


/* Like run_batch_cpu() on the GPU, which pools too, so only pooled rows come back. */
static int run_batch_cuda(an_embed_model_t *model, size_t first, size_t n, float *out,
                          char *err, size_t err_len)
{
    bert_backend_t *b = model->backend;
    const float *pooled;
    int rc = an__cuda_forward(b->cuda, b->batch_ids, b->batch_offsets, n, &pooled, err, err_len);
    if (rc != 0)
        return rc;
    for (size_t k = 0; k < n; k++)
        memcpy(out + b->order[first + k].index * model->dims, pooled + k * model->dims,
               model->dims * sizeof(float));
    return 0;
}


/*
 * Encodes the count inputs in b->all_ids: sorts them by length, cuts the
 * sorted list into batches of at most batch_size inputs and max_batch_tokens
 * tokens (a longer single input runs alone), runs each packed batch, and
 * pools each input into its own row of out.
 */
static int run_batches(an_embed_model_t *model, size_t count, float *out,
                       an_embed_progress_fn progress, void *progress_ctx, char *err,
                       size_t err_len)
{
    bert_backend_t *b = model->backend;

    for (size_t i = 0; i < count; i++)
        b->order[i] = (sort_key_t){b->starts[i + 1] - b->starts[i], i};
    qsort(b->order, count, sizeof(*b->order), compare_longest_first);

    /* The forward pass sets OpenBLAS to one thread; its own pool splits the GEMMs. */
    for (size_t first = 0; first < count;) {
        size_t n = 0, tokens = 0;
        while (first + n < count && n < model->opts.batch_size) {
            size_t len = b->order[first + n].tokens;
            if (n > 0 && tokens + len > model->opts.max_batch_tokens)
                break;
            tokens += len;
            n++;
        }

        if (grow((void **)&b->batch_ids, &b->batch_ids_cap, tokens, sizeof(int32_t)) != 0)
            return AN_ENOMEM;
        b->batch_offsets[0] = 0;
        for (size_t k = 0; k < n; k++) {
            size_t i = b->order[first + k].index;
            size_t len = b->order[first + k].tokens;
            memcpy(b->batch_ids + b->batch_offsets[k], b->all_ids + b->starts[i],
                   len * sizeof(int32_t));
            b->batch_offsets[k + 1] = b->batch_offsets[k] + len;
        }

        int rc = b->cuda ? run_batch_cuda(model, first, n, out, err, err_len)
                         : run_batch_cpu(model, first, n, out);
        if (rc != 0)
            return rc;

        first += n;
        if (progress)
            progress(first, count, progress_ctx);
    }
    return 0;
}


static int bert_embed_token_ids(an_embed_model_t *model, const int32_t *const *ids,
                                const size_t *lengths, size_t count, float *out,
                                an_embed_info_t *info, an_embed_progress_fn progress,
                                void *progress_ctx, char *err, size_t err_len)
{
    bert_backend_t *b = model->backend;
    if (count == 0)
        return 0;
    if (reserve_inputs(b, count) != 0)
        return AN_ENOMEM;

    size_t keep_max = model->max_seq_length - 2;
    size_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += (lengths[i] < keep_max ? lengths[i] : keep_max) + 2;
    if (grow((void **)&b->all_ids, &b->all_ids_cap, total, sizeof(int32_t)) != 0)
        return AN_ENOMEM;

    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        size_t keep = lengths[i] < keep_max ? lengths[i] : keep_max;
        for (size_t t = 0; t < keep; t++) {
            if (ids[i][t] < 0 || (unsigned)ids[i][t] >= b->config.vocab_size) {
                snprintf(err, err_len, "embed: input %zu: token id %d at position %zu is outside "
                         "the vocabulary (0..%u)", i, ids[i][t], t, b->config.vocab_size - 1);
                return AN_EINVAL;
            }
        }
        b->starts[i] = used;
        b->all_ids[used++] = b->cls_id;
        memcpy(b->all_ids + used, ids[i], keep * sizeof(int32_t));
        used += keep;
        b->all_ids[used++] = b->sep_id;
        if (info) {
            info[i].tokens = (uint32_t)(keep + 2);
            info[i].truncated = keep < lengths[i];
        }
    }
    b->starts[count] = used;
    return run_batches(model, count, out, progress, progress_ctx, err, err_len);
}


static int bert_embed_texts(an_embed_model_t *model, const char *const *texts,
                            const size_t *lengths, size_t count, float *out,
                            an_embed_info_t *info, an_embed_progress_fn progress,
                            void *progress_ctx, char *err, size_t err_len)
{
    bert_backend_t *b = model->backend;
    if (count == 0)
        return 0;
    if (reserve_inputs(b, count) != 0)
        return AN_ENOMEM;

    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (grow((void **)&b->all_ids, &b->all_ids_cap, used + model->max_seq_length,
                 sizeof(int32_t)) != 0)
            return AN_ENOMEM;
        size_t n = 0;
        int truncated = 0;
        int rc = an__tokenizer_encode(b->tokenizer, texts[i], lengths[i], model->max_seq_length,
                                      b->all_ids + used, &n, &truncated);
        if (rc == AN_EINVAL) {
            snprintf(err, err_len, "embed: input %zu is not valid UTF-8; send UTF-8 text", i);
            return rc;
        }
        if (rc != 0) {
            snprintf(err, err_len, "embed: input %zu could not be tokenized (%s)", i,
                     an_strerror(rc));
            return rc;
        }
        b->starts[i] = used;
        used += n;
        if (info) {
            info[i].tokens = (uint32_t)n;
            info[i].truncated = truncated != 0;
        }
    }
    b->starts[count] = used;
    return run_batches(model, count, out, progress, progress_ctx, err, err_len);
}


static const an__embed_ops_t bert_ops = {
    .kind = "bert",
    .embed_texts = bert_embed_texts,
    .embed_token_ids = bert_embed_token_ids,
    .close = bert_close,
};


static int open_tokenizer(const char *dir, bert_backend_t *b, char *err, size_t err_len)
{
    int rc = an__tokenizer_open(dir, &b->tokenizer, err, err_len);
    if (rc != 0)
        return rc;
    size_t vocab = an__tokenizer_vocab_size(b->tokenizer);
    if (vocab > b->config.vocab_size) {
        snprintf(err, err_len, "embed: %s: the tokenizer has %zu tokens, but config.json's "
                 "vocab_size is %u; the files come from different models", dir, vocab,
                 b->config.vocab_size);
        return AN_EINVAL;
    }
    if (vocab < b->config.vocab_size) {
        /* Valid when vocab_size was rounded up, but a truncated vocab.txt looks the same. */
        char counts[64];
        snprintf(counts, sizeof(counts), "%zu of %u", vocab, b->config.vocab_size);
        an_log(AN_LOG_INFO, "the tokenizer has fewer tokens than config.json's vocab_size; "
               "words outside it embed as [UNK]", "dir", dir, "tokens", counts, NULL);
    }
    b->cls_id = an__tokenizer_cls_id(b->tokenizer);
    b->sep_id = an__tokenizer_sep_id(b->tokenizer);
    if (b->cls_id < 0 || b->sep_id < 0) {
        snprintf(err, err_len, "embed: %s: the vocabulary has no [CLS] or [SEP] token, which "
                 "BERT needs around every input", dir);
        return AN_EINVAL;
    }
    return 0;
}


/*
 * Reads AGENTNET_EMBED_AVX512 into *use_packed. Unset, empty or 1 selects the
 * packed AVX-512 kernels where the CPU has AVX-512F, and 0 selects OpenBLAS.
 */
static int choose_packed_kernels(bool *use_packed, char *err, size_t err_len)
{
    const char *setting = getenv("AGENTNET_EMBED_AVX512");
    if (setting && !*setting)
        setting = NULL;
    if (setting && strcmp(setting, "0") != 0 && strcmp(setting, "1") != 0) {
        snprintf(err, err_len, "embed: AGENTNET_EMBED_AVX512 \"%s\" is invalid; set it to 1 "
                 "(use the AVX-512 kernels where the CPU has them, the default) or 0 (use "
                 "OpenBLAS)",
                 setting);
        return AN_EINVAL;
    }
    *use_packed = (!setting || strcmp(setting, "1") == 0) && an__gemm_packed_supported();
    return 0;
}


/* Rewrites the dense weights into the packed kernels' layout, in place. */
static int pack_weights(bert_backend_t *b, char *err, size_t err_len)
{
    float *scratch = malloc(an__bert_pack_scratch_floats(&b->config) * sizeof(float));
    if (!scratch) {
        snprintf(err, err_len, "embed: allocating memory to pack the weights failed; free "
                 "memory or use a smaller model");
        return AN_ENOMEM;
    }
    an__bert_pack_weights(&b->weights, scratch);
    free(scratch);
    return 0;
}


int an__embed_open_bert(const char *dir, an_embed_model_t *model, char *err, size_t err_len)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        int missing = errno == ENOENT;
        const char *slash = strchr(dir, '/');
        /* ORG/NAME that is not a path here is most likely a hub id. */
        if (missing && slash && slash != dir && !strchr(slash + 1, '/') && dir[0] != '.')
            snprintf(err, err_len, "embed: model directory \"%s\" does not exist; to use the hub "
                     "model of that name, run agentnet model pull %s, then pass -m ./models/%s",
                     dir, dir, slash + 1);
        else
            snprintf(err, err_len, "embed: model directory \"%s\" cannot be read (%s); pass a "
                     "sentence-transformers directory or hash:DIMS", dir, strerror(errno));
        return AN_ENOTFOUND;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "embed: model \"%s\" is not a directory; pass a "
                 "sentence-transformers directory or hash:DIMS", dir);
        return AN_EINVAL;
    }
    int cuda_device;
    int rc = resolve_device(model, &cuda_device, err, err_len);
    if (rc != 0)
        return rc;

    bert_backend_t *b = calloc(1, sizeof(*b));
    if (!b)
        return AN_ENOMEM;
    model->backend = b;
    model->ops = &bert_ops;

    if ((rc = an__bert_config_load(dir, &b->config, err, err_len)) ||
        (rc = an__st_pipeline_load(dir, b->config.hidden_size, &b->pipeline, err, err_len)) ||
        (rc = resolve_lengths(model, b, err, err_len)))
        goto fail;

    an__st_file_t *file;
    if ((rc = open_safetensors(dir, &file, err, err_len)))
        goto fail;
    rc = load_weights(b, file, err, err_len);
    an__st_close(file);
    if (rc != 0)
        goto fail;

    if ((rc = open_tokenizer(dir, b, err, err_len)))
        goto fail;

    model->dims = an__pool_dims(b->pipeline.pooling_modes, b->config.hidden_size);
    if (cuda_device >= 0 &&
        (rc = an__cuda_model_upload(&b->weights, cuda_device, b->pipeline.pooling_modes,
                                    b->pipeline.normalize, &b->cuda, err, err_len)))
        goto fail;
    bool packed = false;
    if (cuda_device < 0 && ((rc = choose_packed_kernels(&packed, err, err_len)) ||
                            (rc = packed ? pack_weights(b, err, err_len)
                                         : an__blas_load(err, err_len))))
        goto fail;
    if (cuda_device < 0 &&
        an__thread_pool_create(model->opts.threads, &b->workspace.pool) != 0) {
        snprintf(err, err_len, "embed: cannot start %u compute threads (out of memory or "
                 "thread limit); pass fewer threads", model->opts.threads);
        rc = AN_ENOMEM;
        goto fail;
    }
    return 0;

fail:
    bert_close(model);
    model->ops = NULL;
    return rc;
}
