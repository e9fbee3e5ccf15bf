/*
 * Request helpers shared by the routes: OpenAI-shaped errors, common
 * response headers, body parsing, cache control headers and the
 * construction of upstream jobs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agentnet/log.h"
#include "server/server_internal.h"

void an_respond_add_common_headers(an_req_t *req, struct MHD_Response *response)
{
    MHD_add_response_header(response, "X-Request-Id", req->request_id);
    if (req->allow)
        MHD_add_response_header(response, "Allow", req->allow);
    if (req->extra_header_name)
        MHD_add_response_header(response, req->extra_header_name, req->extra_header_value);
    if (req->coalesced)
        MHD_add_response_header(response, "X-AgentNet-Cache-Coalesced", "true");
    if (req->cacheable) {
        const char *result = an_cache_result_name(req->cache_result);
        MHD_add_response_header(response, "X-AgentNet-Cache", result ? result : "bypass");
    }
}

enum MHD_Result an_respond_queue(an_req_t *req, unsigned status, struct MHD_Response *response)
{
    an_respond_add_common_headers(req, response);
    req->status = status;
    req->state = AN_REQ_RESPONDED;
    enum MHD_Result result = MHD_queue_response(req->connection, status, response);
    MHD_destroy_response(response);
    return result;
}

enum MHD_Result an_respond_buffer(an_req_t *req, unsigned status, const char *content_type,
                                  char *body, size_t len, int take_ownership)
{
    struct MHD_Response *response =
        take_ownership ? MHD_create_response_from_buffer_with_free_callback(len, body, free)
                       : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
    if (!response) {
        if (take_ownership)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return an_respond_queue(req, status, response);
}

enum MHD_Result an_respond_json_error(an_req_t *req, unsigned status, const char *type,
                                      const char *param, const char *code, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);

    json_t *error = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "message", message, "type",
                              type, "param", param, "code", code);
    char *body = error ? json_dumps(error, JSON_COMPACT) : NULL;
    json_decref(error);
    if (!body)
        return MHD_NO;

    if (status >= 500 || an_log_enabled(AN_LOG_DEBUG)) {
        char status_text[16];
        snprintf(status_text, sizeof(status_text), "%u", status);
        an_log(status >= 500 ? AN_LOG_WARN : AN_LOG_DEBUG, "request failed", "request_id",
               req->request_id, "status", status_text, "error", message, (const char *)NULL);
    }
    return an_respond_buffer(req, status, "application/json", body, strlen(body), 1);
}

json_t *an_req_parse_json(an_req_t *req, enum MHD_Result *result)
{
    json_error_t err;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                              JSON_REJECT_DUPLICATES, &err);
    if (!body) {
        if (json_error_code(&err) == json_error_invalid_utf8)
            *result = an_respond_json_error(
                req, 400, "invalid_request_error", NULL, "invalid_utf8",
                "request body contains invalid UTF-8 near byte %d; send the text as UTF-8",
                err.position);
        else
            *result = an_respond_json_error(
                req, 400, "invalid_request_error", NULL, "invalid_json",
                "request body is not valid JSON: %s (line %d, column %d)", err.text, err.line,
                err.column);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        *result = an_respond_json_error(req, 400, "invalid_request_error", NULL, "invalid_json",
                                        "request body must be a JSON object, not an array or "
                                        "a scalar");
        return NULL;
    }

    json_t *model = json_object_get(body, "model");
    if (!json_is_string(model) || json_string_length(model) == 0) {
        *result = an_respond_json_error(
            req, 400, "invalid_request_error", "model", model ? "invalid_type" : "missing_required_parameter",
            model ? "\"model\" must be a non-empty string naming the model"
                  : "missing required parameter \"model\"; name the model to call");
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Returns non-zero when the comma-separated header value lists token. */
static int lists_token(const char *value, const char *token)
{
    size_t token_len = strlen(token);
    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == token_len && strncasecmp(p, token, token_len) == 0)
            return 1;
        p = end;
    }
    return 0;
}

static int valid_namespace(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= AN_CACHE_MAX_NAMESPACE)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._:-", *p))
            return 0;
    return 1;
}

int an_req_cache_controls(an_req_t *req, an_cache_controls_t *controls, enum MHD_Result *result)
{
    memset(controls, 0, sizeof(*controls));
    controls->ttl_s = -1;
    controls->namespace_ = "";

    const char *cache_control =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, "Cache-Control");
    if (cache_control) {
        controls->skip_store = lists_token(cache_control, "no-store");
        controls->skip_lookup = controls->skip_store || lists_token(cache_control, "no-cache");
    }

    const char *ttl = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                  "X-AgentNet-Cache-TTL");
    if (ttl) {
        char *end = NULL;
        errno = 0;
        long long seconds = strtoll(ttl, &end, 10);
        if (errno || end == ttl || *end || seconds < 0 || seconds > 10LL * 365 * 86400) {
            *result = an_respond_json_error(
                req, 400, "invalid_request_error", NULL, "invalid_cache_ttl",
                "X-AgentNet-Cache-TTL \"%.64s\" is invalid; send whole seconds from 0 (never "
                "expires) to 315360000",
                ttl);
            return -1;
        }
        controls->ttl_s = seconds;
    }

    const char *name = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                   "X-AgentNet-Cache-Namespace");
    if (name) {
        if (!valid_namespace(name)) {
            *result = an_respond_json_error(
                req, 400, "invalid_request_error", NULL, "invalid_cache_namespace",
                "X-AgentNet-Cache-Namespace \"%.64s\" is invalid; use 1 to 127 letters, digits, "
                "'.', '_', ':' or '-'",
                name);
            return -1;
        }
        controls->namespace_ = name;
    }
    return 0;
}

/* Headers a client may send that the upstream should see too. */
static const char *const forwarded_headers[] = {
    "Accept", "OpenAI-Organization", "OpenAI-Project", "OpenAI-Beta", NULL,
};

an_job_t *an_req_new_job(an_req_t *req, const char *path, const char *body, size_t body_len)
{
    an_server_t *server = req->server;
    an_job_t *job = an_job_new();
    if (!job)
        return NULL;

    size_t url_len = strlen(server->upstream_base) + strlen(path) + 1;
    job->url = malloc(url_len);
    if (!job->url) {
        an_job_unref(job);
        return NULL;
    }
    snprintf(job->url, url_len, "%s%s", server->upstream_base, path);

    struct curl_slist *headers = NULL;
    char line[8192];
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    if (server->opts.upstream_api_key) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", server->opts.upstream_api_key);
        headers = curl_slist_append(headers, line);
    } else {
        const char *auth = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth && snprintf(line, sizeof(line), "Authorization: %s", auth) < (int)sizeof(line))
            headers = curl_slist_append(headers, line);
    }
    for (int i = 0; forwarded_headers[i]; i++) {
        const char *value = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                        forwarded_headers[i]);
        if (value &&
            snprintf(line, sizeof(line), "%s: %s", forwarded_headers[i], value) < (int)sizeof(line))
            headers = curl_slist_append(headers, line);
    }
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    job->headers = headers;

    if (body) {
        if (an_buf_append(&job->body, body, body_len) != 0) {
            an_job_unref(job);
            return NULL;
        }
    } else {
        job->method = "GET";
    }
    return job;
}

int an_req_attach_job(an_req_t *req, an_job_t *job, const an_cache_key_t *key,
                      an_job_submit_fn submit, void *submit_ctx, enum MHD_Result *result)
{
    an_server_t *server = req->server;
    an_job_t *running = key ? an_inflight_join_or_insert(&server->inflight, key, job) : NULL;
    if (running) {
        an_job_unref(job);
        job = running;
        req->coalesced = 1;
        atomic_fetch_add_explicit(&server->metrics.coalesced_total, 1, memory_order_relaxed);
    } else if (submit(submit_ctx, job) != 0) {
        if (key)
            an_inflight_remove(&server->inflight, job);
        an_job_unref(job);
        *result = an_respond_upstream_failure(req, AN_UPSTREAM_SHUTDOWN);
        return -1;
    }

    req->job = job; /* the request's reference */
    req->waiter.connection = req->connection;
    pthread_mutex_lock(&job->lock);
    an_job_add_waiter_locked(job, &req->waiter);
    pthread_mutex_unlock(&job->lock);
    req->state = AN_REQ_WAITING;
    return 0;
}

int an_req_submit_upstream(void *server, an_job_t *job)
{
    return an_upstream_submit(((an_server_t *)server)->upstream, job);
}

int an_req_wait_locked(an_req_t *req)
{
    req->waiter.suspended = 1;
    req->state = AN_REQ_WAITING;
    MHD_suspend_connection(req->connection);
    return 0;
}

enum MHD_Result an_respond_upstream_failure(an_req_t *req, an_upstream_error_t error)
{
    atomic_fetch_add_explicit(&req->server->metrics.upstream_errors_total, 1,
                              memory_order_relaxed);
    switch (error) {
    case AN_UPSTREAM_TIMEOUT:
        return an_respond_json_error(req, 504, "upstream_error", NULL, "upstream_timeout",
                                     "the upstream did not respond within %llu s; retry, or raise "
                                     "--upstream-timeout",
                                     (unsigned long long)req->server->opts.upstream_timeout_s);
    case AN_UPSTREAM_REFUSED:
        return an_respond_json_error(req, 502, "upstream_error", NULL, "upstream_unreachable",
                                     "cannot connect to the upstream at %s; check that it is "
                                     "running and that --upstream is right",
                                     req->server->upstream_base);
    case AN_UPSTREAM_SHUTDOWN:
        return an_respond_json_error(req, 503, "upstream_error", NULL, "shutting_down",
                                     "the gateway is shutting down; retry on another instance");
    default:
        return an_respond_json_error(req, 502, "upstream_error", NULL, "upstream_broken",
                                     "the upstream connection broke before the answer was "
                                     "complete; retry the request");
    }
}
