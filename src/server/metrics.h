/*
 * Prometheus metrics of the gateway. Counters and histogram buckets are
 * relaxed atomics, so recording never takes a lock; /metrics reads them
 * without a consistent snapshot, which Prometheus tolerates.
 */
#ifndef AGENTNET_SERVER_METRICS_H
#define AGENTNET_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "agentnet/cache.h"
#include "agentnet/common.h"

typedef enum {
    AN_ROUTE_CHAT = 0,
    AN_ROUTE_COMPLETIONS,
    AN_ROUTE_EMBEDDINGS,
    AN_ROUTE_MODELS,
    AN_ROUTE_HEALTHZ,
    AN_ROUTE_READYZ,
    AN_ROUTE_METRICS,
    AN_ROUTE_OTHER,
    AN_ROUTE_COUNT,
} an_route_t;

typedef enum {
    AN_CACHE_RESPONSES = 0,
    AN_CACHE_EMBEDDINGS = 1,
    AN_CACHE_COUNT = 2,
} an_cache_id_t;

typedef enum {
    AN_RESULT_HIT = 0,
    AN_RESULT_MISS,
    AN_RESULT_BYPASS,
    AN_RESULT_COUNT,
    AN_RESULT_NONE = -1, /* the route has no cache */
} an_cache_result_t;

/* Upper bounds in seconds; the last bucket, +Inf, is implicit. */
#define AN_HISTOGRAM_BUCKETS 16

typedef struct {
    atomic_uint_fast64_t buckets[AN_HISTOGRAM_BUCKETS + 1];
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
} an_histogram_t;

/* HTTP status codes 100..599 are counted; others fall into 599's slot. */
#define AN_STATUS_SLOTS 500

typedef struct {
    atomic_uint_fast64_t cache_requests[AN_CACHE_COUNT][AN_RESULT_COUNT];
    atomic_uint_fast64_t http_requests[AN_ROUTE_COUNT][AN_STATUS_SLOTS];
    an_histogram_t http_duration[AN_ROUTE_COUNT];
    an_histogram_t upstream_duration;
    atomic_uint_fast64_t upstream_errors_total;
    atomic_uint_fast64_t coalesced_total;
} an_metrics_t;

const char *an_route_name(an_route_t route);
const char *an_cache_result_name(an_cache_result_t result);

void an_metrics_count_cache(an_metrics_t *m, an_cache_id_t cache, an_cache_result_t result,
                            uint64_t n);
void an_metrics_count_http(an_metrics_t *m, an_route_t route, unsigned status,
                           uint64_t duration_ns);
void an_histogram_observe(an_histogram_t *h, uint64_t duration_ns);

/* Appends the Prometheus text exposition; caches may contain NULL entries. */
int an_metrics_render(an_metrics_t *m, an_cache_t *const caches[AN_CACHE_COUNT], an_buf_t *out);

#endif
