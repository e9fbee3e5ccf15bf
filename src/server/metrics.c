/* Recording and Prometheus text rendering of the gateway's metrics. */
#include <stdio.h>
#include <stddef.h>

#include "server/metrics.h"

static const double bucket_bounds_s[AN_HISTOGRAM_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,    10,    30,    60,
};

static const char *const route_names[AN_ROUTE_COUNT] = {
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
    "/healthz", "/readyz", "/metrics", "other",
};

static const char *const cache_names[AN_CACHE_COUNT] = {"responses", "embeddings"};
static const char *const result_names[AN_RESULT_COUNT] = {"hit", "miss", "bypass"};

const char *an_route_name(an_route_t route) { return route_names[route]; }

const char *an_cache_result_name(an_cache_result_t result)
{
    return result >= 0 && result < AN_RESULT_COUNT ? result_names[result] : NULL;
}

void an_metrics_count_cache(an_metrics_t *m, an_cache_id_t cache, an_cache_result_t result,
                            uint64_t n)
{
    if (result >= 0 && result < AN_RESULT_COUNT)
        atomic_fetch_add_explicit(&m->cache_requests[cache][result], n, memory_order_relaxed);
}

void an_histogram_observe(an_histogram_t *h, uint64_t duration_ns)
{
    double seconds = (double)duration_ns / 1e9;
    int i = 0;
    while (i < AN_HISTOGRAM_BUCKETS && seconds > bucket_bounds_s[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, duration_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void an_metrics_count_http(an_metrics_t *m, an_route_t route, unsigned status,
                           uint64_t duration_ns)
{
    unsigned slot = status >= 100 && status < 600 ? status - 100 : AN_STATUS_SLOTS - 1;
    atomic_fetch_add_explicit(&m->http_requests[route][slot], 1, memory_order_relaxed);
    an_histogram_observe(&m->http_duration[route], duration_ns);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Writes the _bucket, _sum and _count series of one histogram. */
static void render_histogram(an_buf_t *out, const char *name, const char *labels,
                             an_histogram_t *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cumulative = 0;
    for (int i = 0; i < AN_HISTOGRAM_BUCKETS; i++) {
        cumulative += load(&h->buckets[i]);
        an_buf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                       bucket_bounds_s[i], (unsigned long long)cumulative);
    }
    cumulative += load(&h->buckets[AN_HISTOGRAM_BUCKETS]);
    an_buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                   (unsigned long long)cumulative);
    const char *open = labels[0] ? "{" : "";
    const char *close = labels[0] ? "}" : "";
    an_buf_appendf(out, "%s_sum%s%s%s %.9f\n", name, open, labels, close,
                   (double)load(&h->sum_ns) / 1e9);
    an_buf_appendf(out, "%s_count%s%s%s %llu\n", name, open, labels, close,
                   (unsigned long long)load(&h->count));
}

static void render_cache_series(an_metrics_t *m, an_cache_t *const caches[AN_CACHE_COUNT],
                                an_buf_t *out)
{
    an_buf_appendf(out, "# HELP agentnet_cache_requests_total Cache lookups by result.\n"
                        "# TYPE agentnet_cache_requests_total counter\n");
    for (int c = 0; c < AN_CACHE_COUNT; c++)
        for (int r = 0; r < AN_RESULT_COUNT; r++)
            an_buf_appendf(out, "agentnet_cache_requests_total{cache=\"%s\",result=\"%s\"} %llu\n",
                           cache_names[c], result_names[r],
                           (unsigned long long)load(&m->cache_requests[c][r]));

    an_cache_stats_t stats[AN_CACHE_COUNT] = {0};
    for (int c = 0; c < AN_CACHE_COUNT; c++)
        if (caches[c])
            an_cache_stats(caches[c], &stats[c]);

    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } series[] = {
        {"agentnet_cache_entries", "gauge", "Entries stored.", offsetof(an_cache_stats_t, entries)},
        {"agentnet_cache_bytes", "gauge", "Bytes stored, values plus metadata.",
         offsetof(an_cache_stats_t, bytes)},
        {"agentnet_cache_evictions_total", "counter", "Entries evicted to respect a bound.",
         offsetof(an_cache_stats_t, evictions)},
        {"agentnet_cache_expirations_total", "counter", "Entries dropped because their TTL passed.",
         offsetof(an_cache_stats_t, expirations)},
        {"agentnet_cache_stores_total", "counter", "Entries stored or replaced.",
         offsetof(an_cache_stats_t, stores)},
    };
    for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
        an_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
                       series[s].name, series[s].type);
        for (int c = 0; c < AN_CACHE_COUNT; c++) {
            const uint64_t *value = (const uint64_t *)((const char *)&stats[c] + series[s].offset);
            an_buf_appendf(out, "%s{cache=\"%s\"} %llu\n", series[s].name, cache_names[c],
                           (unsigned long long)*value);
        }
    }
}

int an_metrics_render(an_metrics_t *m, an_cache_t *const caches[AN_CACHE_COUNT], an_buf_t *out)
{
    render_cache_series(m, caches, out);

    an_buf_appendf(out, "# HELP agentnet_http_requests_total HTTP requests by route and status.\n"
                        "# TYPE agentnet_http_requests_total counter\n");
    for (int r = 0; r < AN_ROUTE_COUNT; r++)
        for (int s = 0; s < AN_STATUS_SLOTS; s++) {
            uint64_t n = load(&m->http_requests[r][s]);
            if (n)
                an_buf_appendf(out, "agentnet_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                               route_names[r], s + 100, (unsigned long long)n);
        }

    an_buf_appendf(out, "# HELP agentnet_http_request_duration_seconds Time from request to "
                        "response completion.\n"
                        "# TYPE agentnet_http_request_duration_seconds histogram\n");
    for (int r = 0; r < AN_ROUTE_COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "route=\"%s\"", route_names[r]);
        render_histogram(out, "agentnet_http_request_duration_seconds", labels,
                         &m->http_duration[r]);
    }

    an_buf_appendf(out, "# HELP agentnet_upstream_request_duration_seconds Duration of calls to "
                        "the upstream API.\n"
                        "# TYPE agentnet_upstream_request_duration_seconds histogram\n");
    render_histogram(out, "agentnet_upstream_request_duration_seconds", "", &m->upstream_duration);

    an_buf_appendf(out,
                   "# HELP agentnet_upstream_errors_total Upstream calls that failed to connect, "
                   "timed out or broke.\n"
                   "# TYPE agentnet_upstream_errors_total counter\n"
                   "agentnet_upstream_errors_total %llu\n"
                   "# HELP agentnet_cache_coalesced_total Requests that waited for an identical "
                   "upstream call in flight.\n"
                   "# TYPE agentnet_cache_coalesced_total counter\n"
                   "agentnet_cache_coalesced_total %llu\n",
                   (unsigned long long)load(&m->upstream_errors_total),
                   (unsigned long long)load(&m->coalesced_total));
    return 0;
}
