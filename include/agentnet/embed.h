/*
 * Local sentence embeddings. A model is either a sentence-transformers
 * directory of a BERT-family model (config.json, model.safetensors,
 * vocab.txt or tokenizer.json, 1_Pooling/config.json, ...) or the built-in
 * weight-free "hash:DIMS" model, which is lexical, not semantic.
 *
 * Output vectors are float32, DIMS per text, in input order, L2-normalised
 * when modules.json lists a Normalize module. hash:DIMS vectors are unit
 * length, except the zero vector of a text without words.
 */
#ifndef AGENTNET_EMBED_H
#define AGENTNET_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "agentnet/common.h"

/* Defaults users carry over from the Python API. */
#define AN_EMBED_DEFAULT_MODEL "hash:384"
#define AN_EMBED_DEFAULT_BATCH_SIZE 32

typedef struct an_embed_model an_embed_model_t;

typedef struct {
    const char *device;         /* "auto" (default), "cpu" or "cuda:N" */
    unsigned threads;           /* compute threads, BLAS included; 0 = online CPUs */
    unsigned batch_size;        /* sentences per forward pass; default 32 */
    unsigned max_batch_tokens;  /* tokens per forward pass; 0 = batch_size * max_seq_length */
    unsigned max_seq_length;    /* truncate longer inputs; 0 = the model's own setting */
} an_embed_options_t;

an_embed_options_t an_embed_options_default(void);

/*
 * Opens model, a directory or "hash:DIMS". On failure returns an AN_E* code
 * and writes a message that names the file, tensor or value and the fix into
 * err. The caller owns *out and closes it.
 */
int an_embed_open(const char *model, const an_embed_options_t *opts, an_embed_model_t **out,
                  char *err, size_t err_len);
void an_embed_close(an_embed_model_t *model);

/* Output dimensions per text. */
size_t an_embed_dims(const an_embed_model_t *model);
/*
 * Longest input in tokens, [CLS] and [SEP] included; longer inputs are truncated.
 * 0 for hash:DIMS, which never truncates.
 */
unsigned an_embed_max_seq_length(const an_embed_model_t *model);
/* "cpu" or "cuda:N": where the model runs after "auto" was resolved. */
const char *an_embed_device(const an_embed_model_t *model);

/* Per-input facts the caller may report, such as usage.prompt_tokens. */
typedef struct {
    uint32_t tokens;    /* tokens embedded, special tokens included */
    uint32_t truncated; /* 1 when the input was longer than max_seq_length */
} an_embed_info_t;

/* Called after each batch with the number of texts done so far. */
typedef void (*an_embed_progress_fn)(size_t done, size_t total, void *ctx);

/*
 * Embeds count UTF-8 texts (lengths[i] bytes each; NUL bytes inside are
 * text) into out, which has room for count * an_embed_dims() floats. info may be
 * NULL or hold count entries; progress may be NULL. Invalid UTF-8 returns
 * AN_EINVAL with the input index in err. Calls on one model are serialised.
 */
int an_embed_texts(an_embed_model_t *model, const char *const *texts, const size_t *lengths,
                   size_t count, float *out, an_embed_info_t *info,
                   an_embed_progress_fn progress, void *progress_ctx, char *err, size_t err_len);

/*
 * Embeds pre-tokenised inputs: ids[i] contains lengths[i] vocabulary ids,
 * without [CLS] and [SEP], which are added. An id outside the vocabulary
 * returns AN_EINVAL naming the input and the id. The hash model has no
 * vocabulary and returns AN_EINVAL.
 */
int an_embed_token_ids(an_embed_model_t *model, const int32_t *const *ids, const size_t *lengths,
                       size_t count, float *out, an_embed_info_t *info,
                       an_embed_progress_fn progress, void *progress_ctx, char *err,
                       size_t err_len);

#endif
