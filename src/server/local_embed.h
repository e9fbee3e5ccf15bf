/*
 * Local embeddings for /v1/embeddings: one thread runs the embed model and
 * merges the requests that arrive together into one batch, up to a token
 * budget (dynamic batching). Each request is an an_job_t like an upstream
 * call, so caching, coalescing and the response code are shared with the
 * upstream path.
 */
#ifndef AGENTNET_SERVER_LOCAL_EMBED_H
#define AGENTNET_SERVER_LOCAL_EMBED_H

#include "agentnet/embed.h"
#include "server/upstream.h"

typedef struct an_local_embedder an_local_embedder_t;

typedef struct {
    const char *model;         /* a sentence-transformers directory or hash:DIMS */
    const char *name;          /* the model name requests use; NULL = derived from model */
    const char *device;        /* auto, cpu or cuda:N */
    unsigned threads;          /* 0 = online CPUs */
    unsigned batch_size;       /* texts per forward pass */
    unsigned batch_tokens;     /* estimated tokens merged into one batch */
} an_local_embed_options_t;

int an_local_embedder_start(const an_local_embed_options_t *opts, an_local_embedder_t **out,
                            char *err, size_t err_len);
/* Fails the jobs still queued with AN_UPSTREAM_SHUTDOWN and joins the thread. */
void an_local_embedder_stop(an_local_embedder_t *le);

const char *an_local_embedder_name(const an_local_embedder_t *le);
size_t an_local_embedder_dims(const an_local_embedder_t *le);

/*
 * Queues job, whose body is an OpenAI embeddings request for this model.
 * The job ends DONE with a 200 OpenAI-shaped response or a 400 error body.
 */
int an_local_embedder_submit(an_local_embedder_t *le, an_job_t *job);

#endif
