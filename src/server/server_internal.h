/*
 * Private structures of the gateway: the server, one client request, and
 * the table of upstream calls in flight used to coalesce identical misses.
 */
#ifndef AGENTNET_SERVER_INTERNAL_H
#define AGENTNET_SERVER_INTERNAL_H

#include <stdatomic.h>

#include <jansson.h>
#include <microhttpd.h>

#include "agentnet/cache.h"
#include "agentnet/server.h"
#include "server/connections.h"
#include "server/key_alias.h"
#include "server/local_embed.h"
#include "server/metrics.h"
#include "server/upstream.h"

#define AN_INFLIGHT_BUCKETS 1024

/* Upstream calls that other requests for the same key may join. */
typedef struct {
    pthread_mutex_t lock; /* guards buckets and every job's inflight_next */
    an_job_t *buckets[AN_INFLIGHT_BUCKETS];
} an_inflight_t;

typedef struct an_server {
    an_server_options_t opts;
    char upstream_base[2048]; /* opts.upstream_url without a trailing slash; "" = none */
    struct MHD_Daemon *daemon;
    an_cache_t *caches[AN_CACHE_COUNT];
    an_upstream_t *upstream;
    an_metrics_t metrics;
    an_inflight_t inflight;
    an_conn_table_t connections;
    an_key_alias_t key_aliases;
    an_local_embedder_t *local_embed; /* NULL unless --embed-model is set */
    char id_prefix[9];              /* random per process, starts every request id */
    atomic_uint_fast64_t request_seq;
    atomic_int active_requests;     /* requests begun and not yet completed */
} an_server_t;

typedef enum {
    AN_REQ_HEADERS = 0, /* first call: headers read */
    AN_REQ_BODY,        /* receiving the body */
    AN_REQ_WAITING,     /* suspended on an upstream job */
    AN_REQ_RESPONDED,   /* a response is queued */
} an_req_state_t;

/* Cache controls a request carries in its headers. */
typedef struct {
    int skip_lookup;         /* Cache-Control: no-cache or no-store */
    int skip_store;          /* Cache-Control: no-store */
    int64_t ttl_s;           /* X-AgentNet-Cache-TTL, -1 = the cache's default */
    const char *namespace_;  /* X-AgentNet-Cache-Namespace, "" = default */
} an_cache_controls_t;

typedef struct an_req an_req_t;

struct an_req {
    an_server_t *server;
    struct MHD_Connection *connection;
    an_route_t route;
    an_req_state_t state;
    char request_id[40];
    uint64_t started_ns;
    an_buf_t body;
    int body_too_big;
    uint64_t body_received;       /* body bytes read, kept or dropped */
    unsigned status;              /* status of the queued response */
    an_cache_result_t cache_result;
    an_cache_id_t cache_id;
    int cacheable;                /* a route with X-AgentNet-Cache */
    const char *allow;            /* methods for the Allow header of a 405 */
    const char *extra_header_name; /* one more response header, or NULL */
    char extra_header_value[64];
    int coalesced;                /* joined an identical upstream call in flight */

    an_job_t *job;                /* the upstream call this request follows, if any */
    an_waiter_t waiter;
    int job_stream;               /* the client asked for a stream */

    void *route_state;            /* owned by the route, freed through free_route_state */
    void (*free_route_state)(void *state);
};

/* Request handling shared by routes (respond.c). */
enum MHD_Result an_respond_json_error(an_req_t *req, unsigned status, const char *type,
                                      const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
enum MHD_Result an_respond_buffer(an_req_t *req, unsigned status, const char *content_type,
                                  char *body, size_t len, int take_ownership);
enum MHD_Result an_respond_queue(an_req_t *req, unsigned status, struct MHD_Response *response);
void an_respond_add_common_headers(an_req_t *req, struct MHD_Response *response);

/* Parses the body as a JSON object, or queues a 400 and returns NULL. */
json_t *an_req_parse_json(an_req_t *req, enum MHD_Result *result);
/* Reads the cache control headers, or queues a 400 and returns non-zero. */
int an_req_cache_controls(an_req_t *req, an_cache_controls_t *controls, enum MHD_Result *result);
/* Builds the upstream job for this request (URL, headers, body); NULL on failure. */
an_job_t *an_req_new_job(an_req_t *req, const char *path, const char *body, size_t body_len);
typedef int (*an_job_submit_fn)(void *ctx, an_job_t *job);
/*
 * Joins the job in flight under key when key is not NULL and one runs, and
 * otherwise submits job through submit. Then makes the request a waiter of
 * the job and sets it AN_REQ_WAITING. Takes the caller's reference to job.
 * On failure queues a 503 into *result and returns -1.
 */
int an_req_attach_job(an_req_t *req, an_job_t *job, const an_cache_key_t *key,
                      an_job_submit_fn submit, void *submit_ctx, enum MHD_Result *result);
/* an_job_submit_fn for the upstream thread; ctx is the an_server_t. */
int an_req_submit_upstream(void *server, an_job_t *job);
/*
 * Suspends the request on its job until the job changes state. Returns
 * non-zero when the job already moved on and the caller should look again.
 */
int an_req_wait_locked(an_req_t *req);
/* Sends the error response for a failed job (502, 504 or 503). */
enum MHD_Result an_respond_upstream_failure(an_req_t *req, an_upstream_error_t error);

/* In-flight table (inflight.c). */
void an_inflight_init(an_inflight_t *t);
/* Returns the job in flight for key with a new reference, or inserts job and returns NULL. */
an_job_t *an_inflight_join_or_insert(an_inflight_t *t, const an_cache_key_t *key, an_job_t *job);
void an_inflight_remove(an_inflight_t *t, an_job_t *job);

/* Routes. Each returns what the access handler returns. */
enum MHD_Result an_route_model(an_req_t *req);      /* chat/completions, completions */
enum MHD_Result an_route_embeddings(an_req_t *req);
enum MHD_Result an_route_models(an_req_t *req);
enum MHD_Result an_route_healthz(an_req_t *req);
enum MHD_Result an_route_readyz(an_req_t *req);
enum MHD_Result an_route_metrics(an_req_t *req);

#endif
