/*
 * The embed module's internal interface: each model kind (hash, BERT)
 * implements these operations, and embed.c dispatches to them, handling
 * options, locking and argument checks once.
 */
#ifndef AGENTNET_EMBED_INTERNAL_H
#define AGENTNET_EMBED_INTERNAL_H

#include <pthread.h>

#include "agentnet/embed.h"

typedef struct {
    const char *kind; /* "hash" or "bert" */
    int (*embed_texts)(an_embed_model_t *model, const char *const *texts, const size_t *lengths,
                       size_t count, float *out, an_embed_info_t *info,
                       an_embed_progress_fn progress, void *progress_ctx, char *err,
                       size_t err_len);
    int (*embed_token_ids)(an_embed_model_t *model, const int32_t *const *ids,
                           const size_t *lengths, size_t count, float *out, an_embed_info_t *info,
                           an_embed_progress_fn progress, void *progress_ctx, char *err,
                           size_t err_len);
    void (*close)(an_embed_model_t *model);
} an__embed_ops_t;

struct an_embed_model {
    const an__embed_ops_t *ops;
    an_embed_options_t opts;   /* resolved: threads, batch sizes and max_seq_length set */
    size_t dims;
    unsigned max_seq_length;
    char device[32];
    pthread_mutex_t lock;      /* serialises embed calls on this model */
    void *backend;             /* owned by the model kind */
};

/* Opens a "hash:DIMS" model (hash_model.c). */
int an__embed_open_hash(const char *spec, an_embed_model_t *model, char *err, size_t err_len);
/* Opens a sentence-transformers directory (bert_model.c). */
int an__embed_open_bert(const char *dir, an_embed_model_t *model, char *err, size_t err_len);

#endif
