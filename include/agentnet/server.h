/*
 * The OpenAI-compatible caching gateway behind `agentnet serve`: HTTP routes
 * on libmicrohttpd, upstream calls through libcurl, and the response and
 * embedding caches. Option parsing lives in the command line module.
 */
#ifndef AGENTNET_SERVER_H
#define AGENTNET_SERVER_H

#include <stdint.h>

#include "agentnet/cache.h"

typedef struct {
    const char *listen;            /* HOST:PORT, default 127.0.0.1:8080 */
    const char *upstream_url;      /* base ending in /v1, NULL = none configured */
    const char *upstream_api_key;  /* NULL = pass the client's Authorization through */
    const char *data_dir;          /* default ./var/agentnet */
    int access_log;                /* 1 = one JSON line per request */
    unsigned threads;              /* HTTP worker threads; 0 = online CPUs */
    uint64_t upstream_timeout_s;   /* whole upstream call, default 600 */
    uint64_t client_timeout_s;     /* idle client connection, default 30 */
    uint64_t drain_timeout_s;      /* on SIGTERM, wait this long for requests in flight */
    uint64_t max_body_bytes;       /* request body limit, default 4 MiB */
    unsigned max_connections;      /* concurrent client connections, default 4096 */
    an_cache_backend_t cache_backend; /* lmdb (default) or memory */
    uint64_t response_ttl_s;
    uint64_t response_max_entries;
    uint64_t response_max_bytes;
    uint64_t embedding_ttl_s;
    uint64_t embedding_max_entries;
    uint64_t embedding_max_bytes;
    const char *embed_model;       /* serve /v1/embeddings locally: a directory or hash:DIMS */
    const char *embed_model_name;  /* the model name requests use; NULL = directory name or spec */
    const char *embed_device;      /* auto, cpu or cuda:N */
    unsigned embed_threads;        /* 0 = online CPUs */
    unsigned embed_batch_size;     /* texts per forward pass, default 32 */
    unsigned embed_batch_tokens;   /* estimated tokens merged from concurrent requests */
} an_server_options_t;

an_server_options_t an_server_options_default(void);

/*
 * Runs the gateway until SIGTERM or SIGINT, then stops accepting, lets the
 * requests in flight finish within drain_timeout_s and closes the caches.
 * Returns 0 after a clean stop, or an AN_E* code when startup fails (the
 * reason is logged).
 */
int an_server_run(const an_server_options_t *opts);

#endif
