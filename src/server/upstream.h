/*
 * Upstream calls: one thread drives every transfer through a libcurl multi
 * handle, which keeps connections to the upstream alive for reuse. A job is
 * one upstream call whose progress any number of suspended client
 * connections (its waiters) follow; the job resumes them as data arrives.
 */
#ifndef AGENTNET_SERVER_UPSTREAM_H
#define AGENTNET_SERVER_UPSTREAM_H

#include <pthread.h>
#include <stdint.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "agentnet/cache.h"
#include "agentnet/common.h"

typedef enum {
    AN_JOB_PENDING = 0, /* sent, no status yet */
    AN_JOB_HEADERS,     /* status and headers known, body may be arriving */
    AN_JOB_DONE,        /* body complete (any status) */
    AN_JOB_FAILED,      /* connect error, timeout, broken transfer or shutdown */
} an_job_state_t;

typedef enum {
    AN_UPSTREAM_OK = 0,
    AN_UPSTREAM_REFUSED, /* could not connect or resolve */
    AN_UPSTREAM_TIMEOUT, /* the upstream timeout passed */
    AN_UPSTREAM_BROKEN,  /* the transfer broke after it started */
    AN_UPSTREAM_SHUTDOWN,
} an_upstream_error_t;

/* A client connection following a job. Embedded in the request it belongs to. */
typedef struct an_waiter {
    struct MHD_Connection *connection;
    int suspended;            /* guarded by the job's lock */
    struct an_waiter *next;
} an_waiter_t;

typedef struct an_job an_job_t;

/*
 * Called on the upstream thread when a transfer ends with a complete body,
 * before waiters see AN_JOB_DONE, so whatever it stores is visible to any
 * request that arrives after the job's waiters are resumed.
 */
typedef void (*an_job_complete_fn)(an_job_t *job, void *ctx);

struct an_job {
    /* Set before submit, read-only afterwards. */
    char *url;
    struct curl_slist *headers;
    an_buf_t body;
    const char *method; /* "POST" or "GET" */
    int stream;         /* the client asked for an SSE stream */
    an_job_complete_fn on_complete;
    void *complete_ctx;
    void (*free_ctx)(void *ctx);
    an_cache_key_t key;
    int coalesced;          /* registered in the in-flight table under key */
    an_job_t *inflight_next; /* chain of the in-flight table, guarded by its lock */

    /* Guarded by lock. */
    pthread_mutex_t lock;
    int refs;
    an_job_state_t state;
    an_upstream_error_t error;
    long status;
    char content_type[AN_CACHE_MAX_CONTENT_TYPE];
    an_buf_t data;
    size_t released;      /* bytes clients may read; a stream's last event waits for the store */
    size_t event_end;     /* end of the last complete SSE event in data */
    an_waiter_t *waiters;
    uint64_t started_ns;
    CURL *easy;           /* owned by the upstream thread */
};

typedef struct an_upstream an_upstream_t;

typedef void (*an_upstream_observe_fn)(uint64_t duration_ns, int failed, void *ctx);

int an_upstream_start(uint64_t timeout_s, an_upstream_observe_fn observe, void *observe_ctx,
                      an_upstream_t **out);
/* Fails every job still running with AN_UPSTREAM_SHUTDOWN and joins the thread. */
void an_upstream_stop(an_upstream_t *upstream);

/* Returns a new job with one reference held by the caller. */
an_job_t *an_job_new(void);
void an_job_ref(an_job_t *job);
void an_job_unref(an_job_t *job);

/* Hands the job to the upstream thread, which takes its own reference. */
int an_upstream_submit(an_upstream_t *upstream, an_job_t *job);

/*
 * Completes a job that ran without the upstream (a local model): stores
 * status and body, runs the completion hook, then marks it done and
 * resumes its waiters. Takes ownership of body (malloc'd).
 */
void an_job_finish_local(an_job_t *job, long status, char *body, size_t len);

/* Adds w to the job's waiters (lock held by caller). */
void an_job_add_waiter_locked(an_job_t *job, an_waiter_t *w);
void an_job_remove_waiter(an_job_t *job, an_waiter_t *w);

/* Resumes every suspended waiter (lock held by caller). */
void an_job_wake_locked(an_job_t *job);

#endif
