/*
 * POST /v1/chat/completions and /v1/completions: serve from the response
 * cache, or forward to the upstream, join an identical call in flight, and
 * store a complete 2xx response (JSON body or SSE stream) before the client
 * sees its end.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agentnet/log.h"
#include "server/server_internal.h"

/* What a job needs to store its response when the upstream call ends. */
typedef struct {
    an_server_t *server;
    an_cache_t *cache;
    int store;
    int64_t ttl_s;
    char namespace_[AN_CACHE_MAX_NAMESPACE];
} store_ctx_t;

static void store_answer(an_job_t *job, void *ctx_ptr)
{
    store_ctx_t *ctx = ctx_ptr;
    int complete = job->error == AN_UPSTREAM_OK && job->status >= 200 && job->status < 300;
    if (ctx->store && complete) {
        an_cache_entry_t entry = {
            .value = job->data.data ? job->data.data : "",
            .value_len = job->data.len,
            .content_type = job->content_type,
            .namespace_ = ctx->namespace_,
            .ttl_s = ctx->ttl_s,
        };
        int rc = an_cache_put(ctx->cache, &job->key, &entry);
        if (rc != 0)
            an_log(AN_LOG_WARN, "cache: store failed; the answer was sent but not cached", "cache",
                   an_cache_name(ctx->cache), "error", an_strerror(rc), (const char *)NULL);
    }
    an_inflight_remove(&ctx->server->inflight, job);
}

/* Reads a stored SSE stream back one event per call. */
typedef struct {
    char *data;
    size_t len;
} replay_t;

static ssize_t replay_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    replay_t *r = cls;
    if (pos >= r->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    const char *start = r->data + pos;
    size_t left = r->len - (size_t)pos;
    size_t event_len = left;
    const char *end = memmem(start, left, "\n\n", 2);
    if (end)
        event_len = (size_t)(end - start) + 2;
    size_t n = event_len < max ? event_len : max;
    memcpy(buf, start, n);
    return (ssize_t)n;
}

static void replay_free(void *cls)
{
    replay_t *r = cls;
    free(r->data);
    free(r);
}

static enum MHD_Result respond_hit(an_req_t *req, an_buf_t *value, const an_cache_meta_t *meta,
                                   int stream)
{
    req->cache_result = AN_RESULT_HIT;
    an_metrics_count_cache(&req->server->metrics, req->cache_id, AN_RESULT_HIT, 1);

    struct MHD_Response *response;
    if (stream && strncasecmp(meta->content_type, "text/event-stream", 17) == 0) {
        replay_t *r = malloc(sizeof(*r));
        if (!r)
            return MHD_NO;
        r->data = value->data;
        r->len = value->len;
        *value = (an_buf_t){0};
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, replay_read, r,
                                                     replay_free);
        if (!response) {
            replay_free(r);
            return MHD_NO;
        }
        MHD_add_response_header(response, "Cache-Control", "no-cache");
    } else {
        response = MHD_create_response_from_buffer_with_free_callback(value->len, value->data,
                                                                      free);
        if (!response)
            return MHD_NO;
        *value = (an_buf_t){0};
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, meta->content_type);

    char age[32];
    int64_t age_s = (an_now_ms() - meta->created_ms) / 1000;
    snprintf(age, sizeof(age), "%lld", (long long)(age_s > 0 ? age_s : 0));
    MHD_add_response_header(response, "Age", age);
    return an_respond_queue(req, 200, response);
}

/* Streams a job's released bytes to one client as they arrive. */
typedef struct {
    an_job_t *job;
    an_waiter_t waiter;
} relay_t;

static ssize_t relay_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    relay_t *r = cls;
    an_job_t *job = r->job;
    ssize_t result;

    pthread_mutex_lock(&job->lock);
    if (pos < job->released) {
        size_t n = job->released - (size_t)pos;
        if (n > max)
            n = max;
        memcpy(buf, job->data.data + pos, n);
        result = (ssize_t)n;
    } else if (job->state == AN_JOB_DONE) {
        result = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (job->state == AN_JOB_FAILED) {
        result = MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees a broken stream */
    } else {
        r->waiter.suspended = 1;
        MHD_suspend_connection(r->waiter.connection);
        result = 0;
    }
    pthread_mutex_unlock(&job->lock);
    return result;
}

static void relay_free(void *cls)
{
    relay_t *r = cls;
    an_job_remove_waiter(r->job, &r->waiter);
    an_job_unref(r->job);
    free(r);
}

/* Hands the request's place on the job to a streaming response. */
static enum MHD_Result respond_relay(an_req_t *req, long status, const char *content_type)
{
    relay_t *r = calloc(1, sizeof(*r));
    if (!r)
        return MHD_NO;
    r->job = req->job;
    an_job_ref(r->job);
    r->waiter.connection = req->connection;
    pthread_mutex_lock(&r->job->lock);
    an_job_add_waiter_locked(r->job, &r->waiter);
    pthread_mutex_unlock(&r->job->lock);

    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, relay_read, r, relay_free);
    if (!response) {
        relay_free(r);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, "Cache-Control", "no-cache");
    return an_respond_queue(req, (unsigned)status, response);
}

/*
 * Called when a waiting request is resumed: responds from the job when it
 * can, and otherwise suspends again until the job moves on.
 */
static enum MHD_Result continue_waiting(an_req_t *req)
{
    an_job_t *job = req->job;
    pthread_mutex_lock(&job->lock);
    an_job_state_t state = job->state;
    long status = job->status;
    char content_type[AN_CACHE_MAX_CONTENT_TYPE];
    memcpy(content_type, job->content_type, sizeof(content_type));
    int relay = req->job_stream && state >= AN_JOB_HEADERS && state != AN_JOB_FAILED &&
                status >= 200 && status < 300 &&
                strncasecmp(content_type, "text/event-stream", 17) == 0;

    if (state == AN_JOB_FAILED) {
        an_upstream_error_t error = job->error;
        pthread_mutex_unlock(&job->lock);
        return an_respond_upstream_failure(req, error);
    }
    if (relay) {
        pthread_mutex_unlock(&job->lock);
        return respond_relay(req, status, content_type);
    }
    if (state == AN_JOB_DONE) {
        /* The upstream thread no longer writes data once the job is done. */
        pthread_mutex_unlock(&job->lock);
        return an_respond_buffer(req, (unsigned)status, content_type, job->data.data,
                                 job->data.len, 0);
    }
    an_req_wait_locked(req);
    pthread_mutex_unlock(&job->lock);
    return MHD_YES;
}

static void free_store_ctx(void *ctx) { free(ctx); }

/* Starts an upstream call for the request, or joins one in flight for the same key. */
static enum MHD_Result forward(an_req_t *req, const an_cache_key_t *key,
                               const an_cache_controls_t *controls, const char *path)
{
    an_server_t *server = req->server;
    an_job_t *job = an_req_new_job(req, path, req->body.data, req->body.len);
    store_ctx_t *ctx = job ? calloc(1, sizeof(*ctx)) : NULL;
    if (!ctx) {
        if (job)
            an_job_unref(job);
        return an_respond_json_error(req, 500, "server_error", NULL, "out_of_memory",
                                     "out of memory while forwarding the request");
    }
    ctx->server = server;
    ctx->cache = server->caches[req->cache_id];
    ctx->store = !controls->skip_store;
    ctx->ttl_s = controls->ttl_s;
    snprintf(ctx->namespace_, sizeof(ctx->namespace_), "%s", controls->namespace_);
    job->on_complete = store_answer;
    job->complete_ctx = ctx;
    job->free_ctx = free_store_ctx;
    job->stream = req->job_stream;
    job->key = *key;

    /* Only requests that may both look up and store share a call. */
    enum MHD_Result result = MHD_YES;
    if (an_req_attach_job(req, job, controls->skip_lookup ? NULL : key, an_req_submit_upstream,
                          server, &result) != 0)
        return result;
    return continue_waiting(req);
}

enum MHD_Result an_route_model(an_req_t *req)
{
    if (req->state == AN_REQ_WAITING)
        return continue_waiting(req);

    enum MHD_Result result = MHD_YES;
    an_cache_controls_t controls;
    if (an_req_cache_controls(req, &controls, &result) != 0)
        return result;

    an_server_t *server = req->server;
    an_cache_key_scope_t scope = {
        .route = an_route_name(req->route),
        .namespace_ = controls.namespace_,
        .authorization = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION),
    };
    an_cache_key_t key, raw;
    int have_raw = an_cache_key_raw(&scope, req->body.data, req->body.len, &raw) == 0;
    if (!have_raw || !an_key_alias_get(&server->key_aliases, &raw, &key, &req->job_stream)) {
        /* First sight of these bytes: validate, then remember the canonical key. */
        json_t *body = an_req_parse_json(req, &result);
        if (!body)
            return result;
        req->job_stream = json_is_true(json_object_get(body, "stream"));
        int rc = an_cache_key_request(&scope, body, &key);
        json_decref(body);
        if (rc != 0)
            return an_respond_json_error(req, 500, "server_error", NULL, "cache_key_failed",
                                         "could not compute the cache key (%s)", an_strerror(rc));
        if (have_raw)
            an_key_alias_put(&server->key_aliases, &raw, &key, req->job_stream);
    }
    if (!server->upstream_base[0])
        return an_respond_json_error(req, 503, "server_error", NULL, "upstream_not_configured",
                                     "no upstream is configured; set AGENTNET_UPSTREAM_URL (or "
                                     "OPENAI_BASE_URL) or pass --upstream URL ending in /v1");

    if (controls.skip_lookup) {
        req->cache_result = AN_RESULT_BYPASS;
        an_metrics_count_cache(&server->metrics, req->cache_id, AN_RESULT_BYPASS, 1);
    } else {
        an_buf_t value = {0};
        an_cache_meta_t meta;
        if (an_cache_get(server->caches[req->cache_id], &key, &value, &meta) == 0) {
            result = respond_hit(req, &value, &meta, req->job_stream);
            an_buf_free(&value);
            return result;
        }
        an_buf_free(&value);
        req->cache_result = AN_RESULT_MISS;
        an_metrics_count_cache(&server->metrics, req->cache_id, AN_RESULT_MISS, 1);
    }

    const char *path = req->route == AN_ROUTE_CHAT ? "/chat/completions" : "/completions";
    return forward(req, &key, &controls, path);
}
