/* Operational routes: /healthz, /readyz, /metrics and the forwarded GET /v1/models. */
#include <string.h>

#include "server/server_internal.h"

static enum MHD_Result respond_text(an_req_t *req, unsigned status, const char *content_type,
                                    const char *text)
{
    return an_respond_buffer(req, status, content_type, (char *)text, strlen(text), 0);
}

enum MHD_Result an_route_healthz(an_req_t *req)
{
    return respond_text(req, 200, "application/json", "{\"status\":\"ok\"}");
}

enum MHD_Result an_route_readyz(an_req_t *req)
{
    an_server_t *server = req->server;
    json_t *missing = json_array();
    if (!server->caches[AN_CACHE_RESPONSES] || !server->caches[AN_CACHE_EMBEDDINGS])
        json_array_append_new(missing, json_string("caches are not open"));
    if (!server->upstream_base[0] && !server->local_embed)
        json_array_append_new(missing,
                              json_string("no upstream configured: set AGENTNET_UPSTREAM_URL "
                                          "(or OPENAI_BASE_URL) or pass --upstream"));

    int ready = json_array_size(missing) == 0;
    json_t *doc = json_pack("{s:s, s:o}", "status", ready ? "ready" : "not ready", "missing",
                            missing);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return MHD_NO;
    return an_respond_buffer(req, ready ? 200 : 503, "application/json", text, strlen(text), 1);
}

enum MHD_Result an_route_metrics(an_req_t *req)
{
    an_buf_t text = {0};
    an_metrics_render(&req->server->metrics, req->server->caches, &text);
    enum MHD_Result result = an_respond_buffer(req, 200, "text/plain; version=0.0.4",
                                               text.data, text.len, 1);
    return result;
}

enum MHD_Result an_route_models(an_req_t *req)
{
    an_server_t *server = req->server;
    if (req->state == AN_REQ_WAITING) {
        an_job_t *job = req->job;
        pthread_mutex_lock(&job->lock);
        if (job->state == AN_JOB_FAILED) {
            an_upstream_error_t error = job->error;
            pthread_mutex_unlock(&job->lock);
            return an_respond_upstream_failure(req, error);
        }
        if (job->state == AN_JOB_DONE) {
            pthread_mutex_unlock(&job->lock);
            return an_respond_buffer(req, (unsigned)job->status, job->content_type,
                                     job->data.data ? job->data.data : "", job->data.len, 0);
        }
        an_req_wait_locked(req);
        pthread_mutex_unlock(&job->lock);
        return MHD_YES;
    }

    if (!server->upstream_base[0] && server->local_embed) {
        /* Without an upstream, the local embedding model is the only model. */
        json_t *doc = json_pack("{s:s, s:[{s:s, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                                an_local_embedder_name(server->local_embed), "object", "model",
                                "created", 0, "owned_by", "agentnet");
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!text)
            return MHD_NO;
        return an_respond_buffer(req, 200, "application/json", text, strlen(text), 1);
    }
    if (!server->upstream_base[0])
        return an_respond_json_error(req, 503, "server_error", NULL, "upstream_not_configured",
                                     "no upstream is configured; set AGENTNET_UPSTREAM_URL (or "
                                     "OPENAI_BASE_URL) or pass --upstream URL ending in /v1");

    an_job_t *job = an_req_new_job(req, "/models", NULL, 0);
    if (!job)
        return an_respond_upstream_failure(req, AN_UPSTREAM_SHUTDOWN);
    enum MHD_Result result = MHD_YES;
    if (an_req_attach_job(req, job, NULL, an_req_submit_upstream, server, &result) != 0)
        return result;
    return an_route_models(req); /* the call may already be over */
}
