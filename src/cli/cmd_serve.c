/* agentnet serve: option table, configuration precedence and the server run. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/log.h"
#include "agentnet/server.h"
#include "cli/commands.h"
#include "cli/options.h"

typedef struct {
    an_server_options_t server;
    const char *config;
    const char *log_format;
    const char *log_level;
} serve_settings_t;

#define S(field) offsetof(serve_settings_t, server.field)

static const opt_t serve_options[] = {
    {"--listen", "AGENTNET_LISTEN", OPT_STRING, S(listen), "HOST:PORT",
     "address to listen on (default 127.0.0.1:8080)"},
    {"--upstream", "AGENTNET_UPSTREAM_URL", OPT_STRING, S(upstream_url), "URL",
     "upstream API base ending in /v1 (default: $AGENTNET_UPSTREAM_URL, else $OPENAI_BASE_URL); "
     "key from $AGENTNET_UPSTREAM_API_KEY, else $OPENAI_API_KEY"},
    {"--data-dir", "AGENTNET_DATA_DIR", OPT_STRING, S(data_dir), "DIR",
     "where the caches and events.jsonl live, created when missing (default ./var/agentnet)"},
    {"--config", NULL, OPT_STRING, offsetof(serve_settings_t, config), "FILE",
     "YAML file with these options as keys (listen, data_dir, ...); env: AGENTNET_CONFIG"},
    {"--access-log", "AGENTNET_ACCESS_LOG", OPT_ONOFF, S(access_log), "on|off",
     "one JSON line per request on stderr (default on)"},
    {"--log-format", "AGENTNET_LOG_FORMAT", OPT_STRING, offsetof(serve_settings_t, log_format),
     "json|text", "log line format on stderr (default json)"},
    {"--log-level", "AGENTNET_LOG_LEVEL", OPT_STRING, offsetof(serve_settings_t, log_level),
     "debug|info|warn|error", "least severe level logged (default info)"},
    {"--threads", "AGENTNET_THREADS", OPT_UINT32, S(threads), "N",
     "HTTP worker threads (default 0 = number of online CPUs)"},
    {"--upstream-timeout", "AGENTNET_UPSTREAM_TIMEOUT", OPT_UINT, S(upstream_timeout_s), "SECONDS",
     "limit on a whole upstream call, then 504 (default 600)"},
    {"--client-timeout", "AGENTNET_CLIENT_TIMEOUT", OPT_UINT, S(client_timeout_s), "SECONDS",
     "close a client connection idle this long (default 30)"},
    {"--drain-timeout", "AGENTNET_DRAIN_TIMEOUT", OPT_UINT, S(drain_timeout_s), "SECONDS",
     "on SIGTERM or SIGINT, wait this long for requests in flight (default 10)"},
    {"--max-body-bytes", "AGENTNET_MAX_BODY_BYTES", OPT_UINT, S(max_body_bytes), "BYTES",
     "largest request body accepted, else 413 (default 4194304)"},
    {"--max-connections", "AGENTNET_MAX_CONNECTIONS", OPT_UINT32, S(max_connections), "N",
     "concurrent client connections (default 4096)"},
    {"--cache-backend", "AGENTNET_CACHE_BACKEND", OPT_BACKEND, S(cache_backend), "lmdb|memory",
     "lmdb persists under --data-dir; memory is lost on exit (default lmdb)"},
    {"--response-ttl", "AGENTNET_RESPONSE_TTL", OPT_UINT, S(response_ttl_s), "SECONDS",
     "TTL of cached completions, 0 = never expires (default 3600)"},
    {"--response-max-entries", "AGENTNET_RESPONSE_MAX_ENTRIES", OPT_UINT,
     S(response_max_entries), "N",
     "entry bound of the responses cache, 0 = none (default 0 for lmdb, 10000 for memory)"},
    {"--response-max-bytes", "AGENTNET_RESPONSE_MAX_BYTES", OPT_UINT, S(response_max_bytes),
     "BYTES", "size bound of the responses cache (default 1073741824)"},
    {"--embedding-ttl", "AGENTNET_EMBEDDING_TTL", OPT_UINT, S(embedding_ttl_s), "SECONDS",
     "TTL of cached embeddings, 0 = never expires (default 3600)"},
    {"--embedding-max-entries", "AGENTNET_EMBEDDING_MAX_ENTRIES", OPT_UINT,
     S(embedding_max_entries), "N",
     "entry bound of the embeddings cache, 0 = none (default 0 for lmdb, 10000 for memory)"},
    {"--embedding-max-bytes", "AGENTNET_EMBEDDING_MAX_BYTES", OPT_UINT, S(embedding_max_bytes),
     "BYTES", "size bound of the embeddings cache (default 1073741824)"},
    {"--embed-model", "AGENTNET_EMBED_MODEL", OPT_STRING, S(embed_model), "DIR|hash:DIMS",
     "serve /v1/embeddings for this model locally: a sentence-transformers directory or "
     "hash:DIMS (default none: embeddings go upstream)"},
    {"--embed-model-name", "AGENTNET_EMBED_MODEL_NAME", OPT_STRING, S(embed_model_name), "NAME",
     "the \"model\" value requests use for the local model (default: the directory's name, "
     "or the hash:DIMS spec); other names go upstream"},
    {"--embed-device", "AGENTNET_EMBED_DEVICE", OPT_STRING, S(embed_device), "auto|cpu|cuda:N",
     "where the local model runs (default auto)"},
    {"--embed-threads", "AGENTNET_EMBED_THREADS", OPT_UINT32, S(embed_threads), "N",
     "compute threads of the local model, BLAS included (default 0 = online CPUs)"},
    {"--embed-batch-size", "AGENTNET_EMBED_BATCH_SIZE", OPT_UINT32, S(embed_batch_size), "N",
     "texts per forward pass of the local model (default 32)"},
    {"--embed-batch-tokens", "AGENTNET_EMBED_BATCH_TOKENS", OPT_UINT32, S(embed_batch_tokens),
     "TOKENS", "estimated tokens of concurrent requests merged into one batch (default 8192)"},
};

#define SERVE_OPTION_COUNT (sizeof(serve_options) / sizeof(serve_options[0]))

/* Returns the first of a and b that is set and not empty, or NULL. */
static const char *first_set(const char *a, const char *b)
{
    if (a && a[0])
        return a;
    if (b && b[0])
        return b;
    return NULL;
}

int cli_serve(int argc, char **argv)
{
    serve_settings_t settings = {.server = an_server_options_default()};

    /* The fallbacks OpenAI's own clients read, below AGENTNET_* and flags. */
    settings.server.upstream_url = first_set(getenv("OPENAI_BASE_URL"), NULL);
    settings.server.upstream_api_key =
        first_set(getenv("AGENTNET_UPSTREAM_API_KEY"), getenv("OPENAI_API_KEY"));

    int rc = opt_parse("serve", serve_options, SERVE_OPTION_COUNT, &settings, argc, argv,
                       offsetof(serve_settings_t, config));
    if (rc == 1) {
        opt_print_help("serve",
                       "Runs the OpenAI-compatible caching gateway. Settings come from the "
                       "--config file, then AGENTNET_* variables, then flags.",
                       serve_options, SERVE_OPTION_COUNT);
        return 0;
    }
    if (rc != 0)
        return 2;

    if (settings.log_format) {
        if (strcmp(settings.log_format, "text") == 0) {
            an_log_set_format(AN_LOG_FORMAT_TEXT);
        } else if (strcmp(settings.log_format, "json") != 0) {
            fprintf(stderr, "agentnet serve: --log-format \"%s\" is invalid; use json or text\n",
                    settings.log_format);
            return 2;
        }
    }
    if (settings.log_level) {
        an_log_level_t level;
        if (an_log_parse_level(settings.log_level, &level) != 0) {
            fprintf(stderr, "agentnet serve: --log-level \"%s\" is invalid; use debug, info, "
                    "warn or error\n", settings.log_level);
            return 2;
        }
        an_log_set_level(level);
    }
    if (settings.server.upstream_url && !settings.server.upstream_url[0])
        settings.server.upstream_url = NULL;

    return an_server_run(&settings.server) == 0 ? 0 : 1;
}
