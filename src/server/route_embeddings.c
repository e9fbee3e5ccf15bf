/*
 * POST /v1/embeddings with a cache entry per input item: items already
 * cached are served locally, only the misses go upstream in one call, and
 * the response lists every item in the request's order. Each stored item keeps
 * its share of the upstream's usage.prompt_tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "agentnet/log.h"
#include "server/server_internal.h"

/* OpenAI's own limit on inputs per embeddings request. */
#define MAX_EMBEDDING_INPUTS 2048

/* Shared by every request that joins the upstream call for the same misses. */
typedef struct {
    an_server_t *server;
    int store;
    int64_t ttl_s;
    char namespace_[AN_CACHE_MAX_NAMESPACE];
    size_t miss_count;
    an_cache_key_t *miss_keys;
    uint64_t *weights; /* per miss: bytes of text, or tokens of a token array */
    uint64_t *tokens;  /* per miss: share of prompt_tokens, set on completion */
} batch_t;

/* One request's view of its items. */
typedef struct {
    json_t *body;
    size_t count;
    json_t **items;    /* borrowed from body */
    json_t **cached;   /* per item: stored {"embedding","tokens","model"}, or NULL */
    ssize_t *miss_of;  /* per item: index among the misses, or -1 */
    batch_t *batch;    /* this request's misses, before a job takes it */
    int local;         /* served by the local model, not the upstream */
} items_t;

static void batch_free(void *ptr)
{
    batch_t *b = ptr;
    if (!b)
        return;
    free(b->miss_keys);
    free(b->weights);
    free(b->tokens);
    free(b);
}

static void items_free(void *ptr)
{
    items_t *it = ptr;
    /* split_input may have failed before the per-item arrays existed. */
    for (size_t i = 0; it->cached && i < it->count; i++)
        json_decref(it->cached[i]);
    free(it->items);
    free(it->cached);
    free(it->miss_of);
    batch_free(it->batch);
    json_decref(it->body);
    free(it);
}

static int is_token_array(const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0)
        return 0;
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t) if (!json_is_integer(t)) return 0;
    return 1;
}

/* Splits "input" into items; returns an error message or NULL. */
static const char *split_input(json_t *input, items_t *it)
{
    if (json_is_string(input) || is_token_array(input)) {
        it->count = 1;
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        it->count = json_array_size(input);
        if (it->count > MAX_EMBEDDING_INPUTS)
            return "\"input\" has more than 2048 items; split the request";
        size_t i;
        json_t *item;
        json_array_foreach(input, i, item) {
            if (json_is_array(item) && json_array_size(item) == 0)
                return "an \"input\" item is an empty array of token ids; send at least one id, "
                       "or an empty string for the empty text";
            if (!json_is_string(item) && !is_token_array(item))
                return "every \"input\" item must be a string or an array of token ids";
        }
    } else if (!input) {
        return "missing required parameter \"input\"; send a string or an array of strings";
    } else {
        return "\"input\" must be a string, an array of strings, or token id arrays, and not "
               "empty";
    }

    it->items = calloc(it->count, sizeof(*it->items));
    it->cached = calloc(it->count, sizeof(*it->cached));
    it->miss_of = calloc(it->count, sizeof(*it->miss_of));
    if (!it->items || !it->cached || !it->miss_of)
        return "out of memory";
    int single = json_is_string(input) || is_token_array(input);
    for (size_t i = 0; i < it->count; i++)
        it->items[i] = single ? input : json_array_get(input, i);
    return NULL;
}

static uint64_t item_weight(const json_t *item)
{
    if (json_is_string(item))
        return json_string_length(item) ? json_string_length(item) : 1;
    return json_array_size(item);
}

/*
 * Splits total over the misses in proportion to their weights, rounding by
 * largest remainder so the shares add up to total exactly.
 */
static void share_tokens(batch_t *b, uint64_t total)
{
    uint64_t weight_sum = 0;
    for (size_t j = 0; j < b->miss_count; j++)
        weight_sum += b->weights[j];
    if (weight_sum == 0 || b->miss_count == 0)
        return;

    uint64_t assigned = 0;
    for (size_t j = 0; j < b->miss_count; j++) {
        b->tokens[j] = (uint64_t)((__uint128_t)total * b->weights[j] / weight_sum);
        assigned += b->tokens[j];
    }

    /* Fewer than miss_count tokens are left; each goes to a distinct miss. */
    char *has_extra = calloc(b->miss_count, 1);
    for (; assigned < total && has_extra; assigned++) {
        size_t best = 0;
        int found = 0;
        uint64_t best_rem = 0;
        for (size_t j = 0; j < b->miss_count; j++) {
            uint64_t rem = (uint64_t)((__uint128_t)total * b->weights[j] % weight_sum);
            if (!has_extra[j] && (!found || rem > best_rem)) {
                best = j;
                best_rem = rem;
                found = 1;
            }
        }
        has_extra[best] = 1;
        b->tokens[best]++;
    }
    free(has_extra);
}

/* Upstream thread: stores every returned item and unregisters the call. */
static void store_items(an_job_t *job, void *ctx)
{
    batch_t *b = ctx;
    an_server_t *server = b->server;
    json_t *answer = NULL;
    if (job->error == AN_UPSTREAM_OK && job->status >= 200 && job->status < 300)
        answer = json_loadb(job->data.data ? job->data.data : "", job->data.len, 0, NULL);

    json_t *data = json_object_get(answer, "data");
    if (json_is_array(data)) {
        json_int_t total = json_integer_value(json_object_get(json_object_get(answer, "usage"),
                                                              "prompt_tokens"));
        share_tokens(b, total > 0 ? (uint64_t)total : 0);
    }
    const char *model = json_string_value(json_object_get(answer, "model"));

    size_t i;
    json_t *entry;
    json_array_foreach(data, i, entry) {
        json_t *index = json_object_get(entry, "index");
        size_t j = json_is_integer(index) ? (size_t)json_integer_value(index) : i;
        if (j >= b->miss_count)
            continue;
        /* A local model reports each item's exact tokens; the upstream only a total. */
        json_t *exact = json_object_get(entry, "tokens");
        if (json_is_integer(exact))
            b->tokens[j] = (uint64_t)json_integer_value(exact);
        if (!b->store)
            continue;
        json_t *stored = json_pack("{s:O, s:I, s:s?, s:b}", "embedding",
                                   json_object_get(entry, "embedding"), "tokens",
                                   (json_int_t)b->tokens[j], "model", model, "truncated",
                                   json_is_true(json_object_get(entry, "truncated")));
        char *text = stored ? json_dumps(stored, JSON_COMPACT) : NULL;
        json_decref(stored);
        if (!text)
            continue;
        an_cache_entry_t e = {
            .value = text,
            .value_len = strlen(text),
            .content_type = "application/json",
            .namespace_ = b->namespace_,
            .ttl_s = b->ttl_s,
        };
        int rc = an_cache_put(server->caches[AN_CACHE_EMBEDDINGS], &b->miss_keys[j], &e);
        if (rc != 0)
            an_log(AN_LOG_WARN, "cache: embedding store failed", "error", an_strerror(rc),
                   (const char *)NULL);
        free(text);
    }
    json_decref(answer);
    an_inflight_remove(&server->inflight, job);
}

/* Builds the response from cached items and, when there were misses, the upstream's. */
static enum MHD_Result respond_items(an_req_t *req, items_t *it, json_t *upstream_data,
                                     const batch_t *batch, const char *upstream_model)
{
    json_t *data = json_array();
    json_int_t tokens = 0, truncated = 0;
    const char *model = upstream_model;
    char hits_header[48];
    snprintf(hits_header, sizeof(hits_header), "%zu/%zu",
             it->count - (batch ? batch->miss_count : 0), it->count);
    req->extra_header_name = "X-AgentNet-Cache-Items";
    snprintf(req->extra_header_value, sizeof(req->extra_header_value), "%s", hits_header);

    for (size_t i = 0; i < it->count; i++) {
        json_t *embedding = NULL;
        if (it->cached[i]) {
            embedding = json_object_get(it->cached[i], "embedding");
            tokens += json_integer_value(json_object_get(it->cached[i], "tokens"));
            truncated += json_is_true(json_object_get(it->cached[i], "truncated"));
            if (!model)
                model = json_string_value(json_object_get(it->cached[i], "model"));
        } else {
            size_t j = (size_t)it->miss_of[i];
            size_t k;
            json_t *entry;
            json_array_foreach(upstream_data, k, entry) {
                json_t *index = json_object_get(entry, "index");
                if ((json_is_integer(index) ? (size_t)json_integer_value(index) : k) != j)
                    continue;
                embedding = json_object_get(entry, "embedding");
                truncated += json_is_true(json_object_get(entry, "truncated"));
            }
            tokens += (json_int_t)batch->tokens[j];
        }
        if (!embedding) {
            json_decref(data);
            return an_respond_json_error(req, 502, "upstream_error", NULL, "upstream_invalid",
                                         "the upstream answer has no embedding for input %zu", i);
        }
        json_array_append_new(data, json_pack("{s:s, s:I, s:O}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", embedding));
    }
    if (!model)
        model = json_string_value(json_object_get(it->body, "model"));

    json_t *doc = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                            "model", model, "usage", "prompt_tokens", tokens, "total_tokens",
                            tokens);
    /* Local models report how many inputs were cut to max_seq_length; OpenAI has no such field. */
    if (doc && it->local)
        json_object_set_new(json_object_get(doc, "usage"), "truncated_inputs",
                            json_integer(truncated));
    /* The canonical writer prints each float in its shortest exact form, as sent upstream. */
    an_buf_t text = {0};
    int rc = doc ? an_cache_canonical_json(doc, 0, &text) : AN_ENOMEM;
    json_decref(doc);
    if (rc != 0) {
        an_buf_free(&text);
        return MHD_NO;
    }
    return an_respond_buffer(req, 200, "application/json", text.data, text.len, 1);
}

static enum MHD_Result continue_waiting(an_req_t *req)
{
    an_job_t *job = req->job;
    items_t *it = req->route_state;
    pthread_mutex_lock(&job->lock);
    if (job->state == AN_JOB_FAILED) {
        an_upstream_error_t error = job->error;
        pthread_mutex_unlock(&job->lock);
        return an_respond_upstream_failure(req, error);
    }
    if (job->state != AN_JOB_DONE) {
        an_req_wait_locked(req);
        pthread_mutex_unlock(&job->lock);
        return MHD_YES;
    }
    pthread_mutex_unlock(&job->lock);

    if (job->status < 200 || job->status >= 300) /* passed through, never stored */
        return an_respond_buffer(req, (unsigned)job->status, job->content_type,
                                 job->data.data ? job->data.data : "", job->data.len, 0);

    json_t *answer = json_loadb(job->data.data ? job->data.data : "", job->data.len, 0, NULL);
    json_t *data = json_object_get(answer, "data");
    if (!json_is_array(data)) {
        json_decref(answer);
        return an_respond_json_error(req, 502, "upstream_error", NULL, "upstream_invalid",
                                     "the upstream answered embeddings without a \"data\" array");
    }
    enum MHD_Result result = respond_items(req, it, data, job->complete_ctx,
                                           json_string_value(json_object_get(answer, "model")));
    json_decref(answer);
    return result;
}

/* Looks every item up and collects the misses into it->batch. */
static int look_up_items(an_req_t *req, items_t *it, const an_cache_controls_t *controls)
{
    an_server_t *server = req->server;
    batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return AN_ENOMEM;
    it->batch = b;
    b->server = server;
    b->store = !controls->skip_store;
    b->ttl_s = controls->ttl_s;
    snprintf(b->namespace_, sizeof(b->namespace_), "%s", controls->namespace_);
    b->miss_keys = calloc(it->count, sizeof(*b->miss_keys));
    b->weights = calloc(it->count, sizeof(*b->weights));
    b->tokens = calloc(it->count, sizeof(*b->tokens));
    json_t *probe = json_copy(it->body);
    if (!b->miss_keys || !b->weights || !b->tokens || !probe) {
        json_decref(probe);
        return AN_ENOMEM;
    }

    an_cache_key_scope_t scope = {
        .route = "/v1/embeddings",
        .namespace_ = controls->namespace_,
        .authorization = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION),
    };
    an_buf_t value = {0};
    int rc = 0;
    for (size_t i = 0; i < it->count && rc == 0; i++) {
        an_cache_key_t key;
        json_object_set(probe, "input", it->items[i]);
        rc = an_cache_key_request(&scope, probe, &key);
        if (rc != 0)
            break;
        if (!controls->skip_lookup &&
            an_cache_get(server->caches[AN_CACHE_EMBEDDINGS], &key, &value, NULL) == 0) {
            it->cached[i] = json_loadb(value.data, value.len, 0, NULL);
            if (it->cached[i]) {
                it->miss_of[i] = -1;
                continue;
            }
        }
        it->miss_of[i] = (ssize_t)b->miss_count;
        b->miss_keys[b->miss_count] = key;
        b->weights[b->miss_count] = item_weight(it->items[i]);
        b->miss_count++;
    }
    an_buf_free(&value);
    json_decref(probe);
    return rc;
}

/* The upstream body: the request with "input" narrowed to the misses. */
static char *misses_body(items_t *it)
{
    json_t *input = json_object_get(it->body, "input");
    if (json_is_string(input) || is_token_array(input))
        return json_dumps(it->body, JSON_COMPACT); /* one input, and it missed */

    json_t *body = json_copy(it->body);
    json_t *misses = json_array();
    for (size_t i = 0; i < it->count; i++)
        if (it->miss_of[i] >= 0)
            json_array_append(misses, it->items[i]);
    json_object_set_new(body, "input", misses);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* an_job_submit_fn for the local model; ctx is the an_server_t. */
static int submit_local(void *server, an_job_t *job)
{
    return an_local_embedder_submit(((an_server_t *)server)->local_embed, job);
}

static enum MHD_Result forward_misses(an_req_t *req, items_t *it,
                                      const an_cache_controls_t *controls)
{
    an_server_t *server = req->server;
    char *body = misses_body(it);
    an_job_t *job = body ? an_req_new_job(req, "/embeddings", body, strlen(body)) : NULL;
    free(body);
    if (!job)
        return an_respond_json_error(req, 500, "server_error", NULL, "out_of_memory",
                                     "out of memory while forwarding the request");

    /* Requests whose misses are the same keys in the same order share one call. */
    json_t *keys = json_array();
    for (size_t j = 0; j < it->batch->miss_count; j++) {
        char hex[2 * AN_CACHE_KEY_BYTES + 1];
        an_cache_key_hex(&it->batch->miss_keys[j], hex);
        json_array_append_new(keys, json_string(hex));
    }
    json_t *batch_doc = json_pack("{s:o}", "embedding_misses", keys);
    an_cache_key_scope_t scope = {.route = "/v1/embeddings#batch"};
    an_cache_key_t batch_key;
    int rc = an_cache_key_request(&scope, batch_doc, &batch_key);
    json_decref(batch_doc);

    job->on_complete = store_items;
    job->complete_ctx = it->batch;
    job->free_ctx = batch_free;
    it->batch = NULL; /* the job owns it now */

    enum MHD_Result result = MHD_YES;
    int shared = rc == 0 && !controls->skip_lookup;
    an_job_submit_fn submit = it->local ? submit_local : an_req_submit_upstream;
    if (an_req_attach_job(req, job, shared ? &batch_key : NULL, submit, server, &result) != 0)
        return result;
    return continue_waiting(req);
}

/*
 * Validates what only the local model can reject early: the encoding format
 * and the dimensions. Queues a 400 and returns non-zero on a problem.
 */
static int check_local_request(an_req_t *req, items_t *it, enum MHD_Result *result)
{
    an_local_embedder_t *local = req->server->local_embed;
    json_t *format = json_object_get(it->body, "encoding_format");
    const char *format_text = json_string_value(format);
    if (format && (!format_text || (strcmp(format_text, "float") != 0 &&
                                    strcmp(format_text, "base64") != 0))) {
        *result = an_respond_json_error(req, 400, "invalid_request_error", "encoding_format",
                                        "invalid_value",
                                        "encoding_format must be \"float\" or \"base64\"");
        return -1;
    }

    json_t *dimensions = json_object_get(it->body, "dimensions");
    size_t dims = an_local_embedder_dims(local);
    if (dimensions && (!json_is_integer(dimensions) || json_integer_value(dimensions) < 1)) {
        *result = an_respond_json_error(req, 400, "invalid_request_error", "dimensions",
                                        "invalid_type",
                                        "\"dimensions\" must be a positive integer; model \"%s\" "
                                        "gives %zu",
                                        an_local_embedder_name(local), dims);
        return -1;
    }
    if (dimensions && json_integer_value(dimensions) != (json_int_t)dims) {
        *result = an_respond_json_error(
            req, 400, "invalid_request_error", "dimensions", "invalid_value",
            "model \"%s\" gives %zu dimensions, not %lld; leave out \"dimensions\" or set it "
            "to %zu",
            an_local_embedder_name(local), dims, (long long)json_integer_value(dimensions), dims);
        return -1;
    }
    return 0;
}

enum MHD_Result an_route_embeddings(an_req_t *req)
{
    if (req->state == AN_REQ_WAITING)
        return continue_waiting(req);

    enum MHD_Result result = MHD_YES;
    an_cache_controls_t controls;
    if (an_req_cache_controls(req, &controls, &result) != 0)
        return result;
    json_t *body = an_req_parse_json(req, &result);
    if (!body)
        return result;

    items_t *it = calloc(1, sizeof(*it));
    if (!it) {
        json_decref(body);
        return MHD_NO;
    }
    it->body = body;
    req->route_state = it;
    req->free_route_state = items_free;

    const char *problem = split_input(json_object_get(body, "input"), it);
    if (problem)
        return an_respond_json_error(req, 400, "invalid_request_error", "input", "invalid_input",
                                     "%s", problem);
    an_local_embedder_t *local = req->server->local_embed;
    const char *model = json_string_value(json_object_get(body, "model"));
    it->local = local && strcmp(model, an_local_embedder_name(local)) == 0;
    if (it->local) {
        if (check_local_request(req, it, &result) != 0)
            return result;
    } else if (!req->server->upstream_base[0]) {
        if (local)
            return an_respond_json_error(req, 404, "invalid_request_error", "model",
                                         "model_not_found",
                                         "model \"%.200s\" is not served here; use \"%s\", or "
                                         "configure an upstream with --upstream",
                                         model, an_local_embedder_name(local));
        return an_respond_json_error(req, 503, "server_error", NULL, "upstream_not_configured",
                                     "no upstream is configured; set AGENTNET_UPSTREAM_URL (or "
                                     "OPENAI_BASE_URL) or pass --upstream URL ending in /v1, or "
                                     "serve a local model with --embed-model");
    }

    if (look_up_items(req, it, &controls) != 0)
        return an_respond_json_error(req, 500, "server_error", NULL, "cache_key_failed",
                                     "could not compute the cache keys of the inputs");

    size_t misses = it->batch->miss_count;
    an_metrics_t *m = &req->server->metrics;
    if (controls.skip_lookup) {
        req->cache_result = AN_RESULT_BYPASS;
        an_metrics_count_cache(m, AN_CACHE_EMBEDDINGS, AN_RESULT_BYPASS, it->count);
    } else {
        req->cache_result = misses ? AN_RESULT_MISS : AN_RESULT_HIT;
        an_metrics_count_cache(m, AN_CACHE_EMBEDDINGS, AN_RESULT_HIT, it->count - misses);
        an_metrics_count_cache(m, AN_CACHE_EMBEDDINGS, AN_RESULT_MISS, misses);
    }
    if (misses == 0)
        return respond_items(req, it, NULL, NULL, NULL);
    return forward_misses(req, it, &controls);
}
