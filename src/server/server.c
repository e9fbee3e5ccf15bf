/*
 * The gateway's lifecycle and request dispatch: opens the caches, starts
 * the upstream thread and libmicrohttpd's epoll thread pool, routes each
 * request, and on SIGTERM or SIGINT drains requests in flight and closes
 * everything in reverse order.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "agentnet/event.h"
#include "agentnet/log.h"
#include "server/server_internal.h"

/* How often the housekeeping thread flushes logs and cache records and cuts slow clients. */
#define HOUSEKEEPING_INTERVAL_MS 1000

/*
 * Limits on a request's head. They are checked here, so the 414 or 431 has
 * the OpenAI error shape. libmicrohttpd clears each connection's memory pool
 * for every request, so the pool is kept small (at 160 KiB the clearing took
 * 13% of a cache hit's CPU time). NOTE: a head larger than the pool gets
 * libmicrohttpd's own 431 or 414 with a short HTML body instead.
 */
#define MAX_URL_BYTES (8 * 1024)
#define MAX_HEADER_BYTES (16 * 1024)
#define CONNECTION_MEMORY_BYTES (48 * 1024)

/* How much of an oversized body is read and dropped so its client can read the 413. */
#define MAX_DISCARDED_BODY_BYTES (64ull * 1024 * 1024)

an_server_options_t an_server_options_default(void)
{
    an_server_options_t o = {
        .listen = "127.0.0.1:8080",
        .data_dir = "./var/agentnet",
        .access_log = 1,
        .upstream_timeout_s = 600,
        .client_timeout_s = 30,
        .drain_timeout_s = 10,
        .max_body_bytes = 4 * 1024 * 1024,
        .max_connections = 4096,
        .cache_backend = AN_CACHE_LMDB,
        .response_ttl_s = AN_CACHE_DEFAULT_TTL_S,
        .response_max_entries = 0,
        .response_max_bytes = 1024ull * 1024 * 1024,
        .embedding_ttl_s = AN_CACHE_DEFAULT_TTL_S,
        .embedding_max_entries = 0,
        .embedding_max_bytes = 1024ull * 1024 * 1024,
        .embed_device = "auto",
        .embed_batch_size = 32,
        .embed_batch_tokens = 8192,
    };
    return o;
}

static const struct {
    const char *path;
    const char *method;
    an_route_t route;
    int cacheable;
} routes[] = {
    {"/v1/chat/completions", "POST", AN_ROUTE_CHAT, 1},
    {"/v1/completions", "POST", AN_ROUTE_COMPLETIONS, 1},
    {"/v1/embeddings", "POST", AN_ROUTE_EMBEDDINGS, 1},
    {"/v1/models", "GET", AN_ROUTE_MODELS, 0},
    {"/healthz", "GET", AN_ROUTE_HEALTHZ, 0},
    {"/readyz", "GET", AN_ROUTE_READYZ, 0},
    {"/metrics", "GET", AN_ROUTE_METRICS, 0},
};

static int route_index(const char *url)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(url, routes[i].path) == 0)
            return (int)i;
    return -1;
}

static an_req_t *req_new(an_server_t *server, struct MHD_Connection *connection)
{
    an_req_t *req = calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->server = server;
    req->connection = connection;
    req->started_ns = an_mono_ns();
    req->route = AN_ROUTE_OTHER;
    req->cache_result = AN_RESULT_NONE;

    const char *client_id = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Request-Id");
    size_t client_id_len = client_id ? strlen(client_id) : 0;
    int usable = client_id_len > 0 && client_id_len < sizeof(req->request_id);
    for (size_t i = 0; usable && i < client_id_len; i++)
        usable = client_id[i] > 0x20 && client_id[i] < 0x7f && client_id[i] != '"' &&
                 client_id[i] != '\\';
    if (usable) {
        memcpy(req->request_id, client_id, client_id_len + 1);
    } else {
        uint64_t seq = atomic_fetch_add_explicit(&server->request_seq, 1, memory_order_relaxed);
        snprintf(req->request_id, sizeof(req->request_id), "%s-%llx", server->id_prefix,
                 (unsigned long long)seq);
    }
    atomic_fetch_add_explicit(&server->active_requests, 1, memory_order_relaxed);
    return req;
}

/* Checks a request body's Content-Type and declared length on the first call. */
static enum MHD_Result check_body_headers(an_req_t *req, int *rejected)
{
    *rejected = 1;
    const char *type = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t type_len = type ? strcspn(type, "; \t") : 0;
    if (!type || type_len != 16 || strncasecmp(type, "application/json", 16) != 0)
        return an_respond_json_error(req, 415, "invalid_request_error", NULL,
                                     "unsupported_media_type",
                                     "Content-Type \"%.64s\" is not supported; send the body as "
                                     "JSON with Content-Type: application/json",
                                     type ? type : "(none)");

    /*
     * A client that waits for "100 Continue" hears the 413 before it
     * uploads. Any other client is already sending, and closing on it would
     * reset the connection before it reads the response, so its body is read
     * and dropped, and the 413 follows at the end.
     */
    const char *length = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *expect = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
    if (length && strtoull(length, NULL, 10) > req->server->opts.max_body_bytes) {
        if (expect && strcasecmp(expect, "100-continue") == 0)
            return an_respond_json_error(req, 413, "invalid_request_error", NULL,
                                         "request_too_large",
                                         "request body of %s bytes is over the limit of %llu "
                                         "bytes; send less, or raise --max-body-bytes",
                                         length,
                                         (unsigned long long)req->server->opts.max_body_bytes);
        req->body_too_big = 1;
    }
    *rejected = 0;
    return MHD_YES;
}

static enum MHD_Result dispatch(an_req_t *req)
{
    switch (req->route) {
    case AN_ROUTE_CHAT:
    case AN_ROUTE_COMPLETIONS: return an_route_model(req);
    case AN_ROUTE_EMBEDDINGS: return an_route_embeddings(req);
    case AN_ROUTE_MODELS: return an_route_models(req);
    case AN_ROUTE_HEALTHZ: return an_route_healthz(req);
    case AN_ROUTE_READYZ: return an_route_readyz(req);
    case AN_ROUTE_METRICS: return an_route_metrics(req);
    default: return MHD_NO;
    }
}

/* Adds the size of one header or query argument to the total at cls. */
static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* The first call for a request: route lookup, method and header checks. */
static enum MHD_Result begin_request(an_server_t *server, struct MHD_Connection *connection,
                                     const char *url, const char *method, void **con_cls)
{
    an_req_t *req = req_new(server, connection);
    if (!req)
        return MHD_NO;
    *con_cls = req;

    size_t url_bytes = strlen(url);
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, add_header_size, &url_bytes);
    if (url_bytes > MAX_URL_BYTES)
        return an_respond_json_error(req, 414, "invalid_request_error", NULL, "uri_too_long",
                                     "request URL of about %zu bytes is over the limit of %d "
                                     "bytes; move data into the body",
                                     url_bytes, MAX_URL_BYTES);
    size_t header_bytes = 0;
    MHD_get_connection_values(connection, MHD_HEADER_KIND, add_header_size, &header_bytes);
    if (header_bytes > MAX_HEADER_BYTES)
        return an_respond_json_error(req, 431, "invalid_request_error", NULL,
                                     "request_header_fields_too_large",
                                     "request headers of %zu bytes are over the limit of %d "
                                     "bytes; send fewer or shorter headers",
                                     header_bytes, MAX_HEADER_BYTES);

    int index = route_index(url);
    if (index < 0)
        return an_respond_json_error(req, 404, "invalid_request_error", NULL, "unknown_url",
                                     "unknown route %s %.200s; see the routes under /v1 and "
                                     "/healthz, /readyz, /metrics",
                                     method, url);
    req->route = routes[index].route;
    req->cacheable = routes[index].cacheable;
    req->cache_id = req->route == AN_ROUTE_EMBEDDINGS ? AN_CACHE_EMBEDDINGS : AN_CACHE_RESPONSES;

    if (strcmp(method, routes[index].method) != 0) {
        req->allow = routes[index].method;
        return an_respond_json_error(req, 405, "invalid_request_error", NULL,
                                     "method_not_allowed", "method %s is not allowed on %s; use %s",
                                     method, url, routes[index].method);
    }

    if (strcmp(routes[index].method, "POST") == 0) {
        int rejected;
        enum MHD_Result result = check_body_headers(req, &rejected);
        if (rejected)
            return result;
        req->state = AN_REQ_BODY;
        return MHD_YES;
    }
    req->state = AN_REQ_BODY;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    an_server_t *server = cls;
    an_req_t *req = *con_cls;
    if (!req)
        return begin_request(server, connection, url, method, con_cls);

    if (req->state == AN_REQ_RESPONDED) {
        *upload_data_size = 0; /* an early error was queued: drop the rest of the body */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        req->body_received += *upload_data_size;
        if (req->body_received > server->opts.max_body_bytes + MAX_DISCARDED_BODY_BYTES)
            return MHD_NO; /* too much to drain politely: close the connection */
        if (!req->body_too_big &&
            req->body.len + *upload_data_size > server->opts.max_body_bytes)
            req->body_too_big = 1;
        if (!req->body_too_big && an_buf_append(&req->body, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->body_too_big)
        return an_respond_json_error(req, 413, "invalid_request_error", NULL,
                                     "request_too_large",
                                     "request body is over the limit of %llu bytes; send less, "
                                     "or raise --max-body-bytes",
                                     (unsigned long long)server->opts.max_body_bytes);
    if (req->state != AN_REQ_WAITING)
        an_conn_request_received(connection);
    return dispatch(req);
}

static void write_access_log(an_req_t *req, uint64_t duration_ns)
{
    char line[512];
    const char *cache = an_cache_result_name(req->cache_result);
    if (!cache && req->cacheable)
        cache = "bypass"; /* matches the X-AgentNet-Cache header of an error response */
    char cache_field[32] = "null";
    if (cache)
        snprintf(cache_field, sizeof(cache_field), "\"%s\"", cache);
    char ts[48];
    an_log_timestamp(ts, sizeof(ts));
    /* request_id is safe to embed: req_new admits only printable ASCII without quotes. */
    snprintf(line, sizeof(line),
             "{\"ts\":\"%s\",\"level\":\"info\",\"msg\":\"access\",\"request_id\":\"%s\","
             "\"route\":\"%s\",\"status\":%u,\"latency_ms\":%.3f,\"cache\":%s}",
             ts, req->request_id, an_route_name(req->route), req->status,
             (double)duration_ns / 1e6, cache_field);
    an_log_raw(AN_LOG_INFO, line);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    an_server_t *server = cls;
    an_req_t *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;

    an_conn_request_done(connection);
    uint64_t duration_ns = an_mono_ns() - req->started_ns;
    unsigned status = req->status ? req->status : 499; /* 499: the client went away */
    if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status == 0)
        req->status = status;
    an_metrics_count_http(&server->metrics, req->route, status, duration_ns);
    if (server->opts.access_log)
        write_access_log(req, duration_ns);

    if (req->job) {
        an_job_remove_waiter(req->job, &req->waiter);
        an_job_unref(req->job);
    }
    if (req->free_route_state)
        req->free_route_state(req->route_state);
    an_buf_free(&req->body);
    free(req);
    atomic_fetch_sub_explicit(&server->active_requests, 1, memory_order_relaxed);
}

static void observe_upstream(uint64_t duration_ns, int failed, void *ctx)
{
    an_server_t *server = ctx;
    an_histogram_observe(&server->metrics.upstream_duration, duration_ns);
}

/* Parses HOST:PORT or [IPV6]:PORT into addr. */
static int parse_listen(const char *listen, struct sockaddr_storage *addr, char *err,
                        size_t err_len)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof(host)) {
        snprintf(err, err_len, "--listen \"%s\" is invalid; use HOST:PORT such as 127.0.0.1:8080",
                 listen);
        return AN_EINVAL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!*(colon + 1) || *end || port < 0 || port > 65535) {
        snprintf(err, err_len, "--listen \"%s\" has an invalid port; use 0 to 65535", listen);
        return AN_EINVAL;
    }

    memset(addr, 0, sizeof(*addr));
    size_t host_len = strlen(host);
    if (host[0] == '[' && host_len > 2 && host[host_len - 1] == ']') {
        host[host_len - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1)
            return 0;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        if (strcmp(host, "localhost") == 0)
            snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1)
            return 0;
    }
    snprintf(err, err_len, "--listen \"%s\" has an invalid host; use an IP address such as "
             "127.0.0.1, 0.0.0.0 or [::1]", listen);
    return AN_EINVAL;
}

static int open_caches(an_server_t *server)
{
    const an_server_options_t *o = &server->opts;
    struct {
        const char *name;
        uint64_t ttl, max_entries, max_bytes;
    } specs[AN_CACHE_COUNT] = {
        {"responses", o->response_ttl_s, o->response_max_entries, o->response_max_bytes},
        {"embeddings", o->embedding_ttl_s, o->embedding_max_entries, o->embedding_max_bytes},
    };

    for (int c = 0; c < AN_CACHE_COUNT; c++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/cache/%s", o->data_dir, specs[c].name);
        an_cache_options_t co = an_cache_options_default();
        co.backend = o->cache_backend;
        co.name = specs[c].name;
        co.path = path;
        co.default_ttl_s = specs[c].ttl;
        co.max_bytes = specs[c].max_bytes;
        co.max_entries = specs[c].max_entries;
        if (co.backend == AN_CACHE_MEMORY && co.max_entries == 0)
            co.max_entries = AN_CACHE_DEFAULT_MAX_ENTRIES;

        char err[512] = "";
        int rc = an_cache_open(&co, &server->caches[c], err, sizeof(err));
        if (rc != 0) {
            an_log(AN_LOG_ERROR, err[0] ? err : "cache: open failed", "cache", specs[c].name,
                   "error", an_strerror(rc), (const char *)NULL);
            return rc;
        }
    }
    return 0;
}

static void close_caches(an_server_t *server)
{
    for (int c = 0; c < AN_CACHE_COUNT; c++) {
        if (server->caches[c])
            an_cache_close(server->caches[c]);
        server->caches[c] = NULL;
    }
}

/* Housekeeping: flushes buffered log lines and cache access records. */
typedef struct {
    an_server_t *server;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop; /* guarded by lock */
} housekeeper_t;

static void *housekeeping_main(void *arg)
{
    housekeeper_t *h = arg;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += HOUSEKEEPING_INTERVAL_MS / 1000;
        pthread_cond_timedwait(&h->wake, &h->lock, &deadline);
        pthread_mutex_unlock(&h->lock);

        unsigned cut = an_conn_cut_slow(&h->server->connections);
        if (cut) {
            char count[16];
            snprintf(count, sizeof(count), "%u", cut);
            an_log(AN_LOG_WARN, "closed connections that did not send a whole request within "
                   "the client timeout", "connections", count, (const char *)NULL);
        }
        an_log_flush();
        for (int c = 0; c < AN_CACHE_COUNT; c++)
            an_cache_flush(h->server->caches[c]);

        pthread_mutex_lock(&h->lock);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* Routes libmicrohttpd's own messages (mostly closed client sockets) to the debug log. */
static void log_mhd_message(void *cls, const char *fmt, va_list ap)
{
    if (!an_log_enabled(AN_LOG_DEBUG))
        return;
    char message[512];
    vsnprintf(message, sizeof(message), fmt, ap);
    message[strcspn(message, "\n")] = '\0';
    an_log(AN_LOG_DEBUG, "libmicrohttpd", "detail", message, (const char *)NULL);
}

static void raise_open_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static void make_id_prefix(an_server_t *server)
{
    uint32_t random_bits = (uint32_t)an_mono_ns() ^ (uint32_t)getpid() << 16;
    FILE *urandom = fopen("/dev/urandom", "rb");
    if (urandom) {
        if (fread(&random_bits, sizeof(random_bits), 1, urandom) != 1)
            random_bits ^= (uint32_t)an_now_ms();
        fclose(urandom);
    }
    snprintf(server->id_prefix, sizeof(server->id_prefix), "%08x", random_bits);
}

static struct MHD_Daemon *start_daemon(an_server_t *server, const struct sockaddr_storage *addr)
{
    unsigned threads = server->opts.threads;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (unsigned)cpus : 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, server,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)server->opts.client_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, server->opts.max_connections,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, server,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd_message, server,
        MHD_OPTION_NOTIFY_CONNECTION, an_conn_notify, &server->connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_BYTES,
        MHD_OPTION_END);
}

/* Stops accepting, waits for requests in flight, then cancels what is left. */
static void drain(an_server_t *server)
{
    MHD_socket listen_fd = MHD_quiesce_daemon(server->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);

    uint64_t deadline = an_mono_ns() + server->opts.drain_timeout_s * 1000000000ull;
    while (atomic_load(&server->active_requests) > 0 && an_mono_ns() < deadline)
        usleep(10 * 1000);

    int left = atomic_load(&server->active_requests);
    if (left > 0) {
        char count[16];
        snprintf(count, sizeof(count), "%d", left);
        an_log(AN_LOG_WARN, "drain timeout passed; cancelling requests in flight", "requests",
               count, (const char *)NULL);
    }
    an_upstream_stop(server->upstream); /* resumes waiters with a shutdown error */
    server->upstream = NULL;
    an_local_embedder_stop(server->local_embed);
    server->local_embed = NULL;
    deadline = an_mono_ns() + 1000000000ull;
    while (atomic_load(&server->active_requests) > 0 && an_mono_ns() < deadline)
        usleep(10 * 1000);
}

int an_server_run(const an_server_options_t *opts)
{
    an_server_t *server = calloc(1, sizeof(*server));
    if (!server)
        return AN_ENOMEM;
    server->opts = *opts;
    int rc = AN_EINVAL;

    char err[512];
    struct sockaddr_storage addr;
    if (parse_listen(opts->listen, &addr, err, sizeof(err)) != 0) {
        an_log(AN_LOG_ERROR, err, (const char *)NULL);
        goto fail_options;
    }
    if (opts->upstream_url && opts->upstream_url[0]) {
        if (strncmp(opts->upstream_url, "http://", 7) != 0 &&
            strncmp(opts->upstream_url, "https://", 8) != 0) {
            an_log(AN_LOG_ERROR, "upstream URL must start with http:// or https://; pass a base "
                   "such as https://api.openai.com/v1", "upstream", opts->upstream_url,
                   (const char *)NULL);
            goto fail_options;
        }
        snprintf(server->upstream_base, sizeof(server->upstream_base), "%s", opts->upstream_url);
        size_t len = strlen(server->upstream_base);
        while (len > 0 && server->upstream_base[len - 1] == '/')
            server->upstream_base[--len] = '\0';
        if (len < 3 || strcmp(server->upstream_base + len - 3, "/v1") != 0)
            an_log(AN_LOG_WARN, "upstream URL does not end in /v1; requests for /v1/PATH go to "
                   "URL/PATH, so most OpenAI-compatible APIs need the /v1", "upstream",
                   server->upstream_base, (const char *)NULL);
    }
    if (an_mkdir_p(opts->data_dir) != 0) {
        an_log(AN_LOG_ERROR, "data dir cannot be created; pass --data-dir or fix its permissions",
               "data_dir", opts->data_dir, "error", strerror(errno), (const char *)NULL);
        rc = AN_EIO;
        goto fail_options;
    }

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL); /* every thread started below inherits this */
    signal(SIGPIPE, SIG_IGN);
    raise_open_file_limit();
    make_id_prefix(server);
    an_inflight_init(&server->inflight);
    if (an_key_alias_init(&server->key_aliases) != 0) {
        rc = AN_ENOMEM;
        goto fail_options;
    }
    an_conn_table_init(&server->connections, opts->client_timeout_s);
    an_log_set_buffered(1);

    /* Audit events (cache purges, starts and stops) go to DATA_DIR/events.jsonl. */
    an_event_sink_t *events = NULL;
    if (an_event_sink_open_jsonl(opts->data_dir, &events) == 0)
        an_event_set_sink(events);

    rc = open_caches(server);
    if (rc != 0)
        goto fail_caches;
    if (opts->embed_model && opts->embed_model[0]) {
        an_local_embed_options_t lo = {
            .model = opts->embed_model,
            .name = opts->embed_model_name,
            .device = opts->embed_device,
            .threads = opts->embed_threads,
            .batch_size = opts->embed_batch_size,
            .batch_tokens = opts->embed_batch_tokens,
        };
        char embed_err[512] = "";
        rc = an_local_embedder_start(&lo, &server->local_embed, embed_err, sizeof(embed_err));
        if (rc != 0) {
            an_log(AN_LOG_ERROR, embed_err[0] ? embed_err : "embed model failed to open",
                   "embed_model", opts->embed_model, (const char *)NULL);
            goto fail_local_embed;
        }
        char dims[24];
        snprintf(dims, sizeof(dims), "%zu", an_local_embedder_dims(server->local_embed));
        an_log(AN_LOG_INFO, "serving embeddings locally", "model",
               an_local_embedder_name(server->local_embed), "path", opts->embed_model, "dims",
               dims, (const char *)NULL);
    }

    rc = an_upstream_start(opts->upstream_timeout_s, observe_upstream, server, &server->upstream);
    if (rc != 0)
        goto fail_upstream;

    housekeeper_t housekeeper = {.server = server};
    pthread_mutex_init(&housekeeper.lock, NULL);
    pthread_cond_init(&housekeeper.wake, NULL);
    pthread_t housekeeping_thread;
    if (pthread_create(&housekeeping_thread, NULL, housekeeping_main, &housekeeper) != 0) {
        rc = AN_EIO;
        goto fail_housekeeping;
    }

    server->daemon = start_daemon(server, &addr);
    if (!server->daemon) {
        an_log(AN_LOG_ERROR, "cannot listen; is the port in use? pass another --listen",
               "listen", opts->listen, (const char *)NULL);
        rc = AN_EIO;
        goto fail_daemon;
    }

    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    char port[16];
    snprintf(port, sizeof(port), "%u", info ? info->port : 0);
    an_log(AN_LOG_INFO, "listening", "listen", opts->listen, "port", port, "upstream",
           server->upstream_base[0] ? server->upstream_base : "(none)", "data_dir", opts->data_dir,
           "version", AN_VERSION, (const char *)NULL);
    if (!server->upstream_base[0] && server->local_embed)
        an_log(AN_LOG_WARN, "no upstream configured: chat and completion routes answer 503 "
               "until AGENTNET_UPSTREAM_URL (or OPENAI_BASE_URL) or --upstream is set; "
               "embeddings for the local model are served", "embed_model",
               an_local_embedder_name(server->local_embed), (const char *)NULL);
    else if (!server->upstream_base[0])
        an_log(AN_LOG_WARN, "no upstream configured: model routes answer 503 until "
               "AGENTNET_UPSTREAM_URL (or OPENAI_BASE_URL) or --upstream is set",
               (const char *)NULL);
    if (opts->embed_model_name && opts->embed_model_name[0] && !server->local_embed)
        an_log(AN_LOG_WARN, "--embed-model-name has no effect without --embed-model",
               "embed_model_name", opts->embed_model_name, (const char *)NULL);
    an_log_flush();
    char detail[512];
    snprintf(detail, sizeof(detail), "{\"port\":%s,\"upstream_configured\":%s}", port,
             server->upstream_base[0] ? "true" : "false");
    an_event_emit("server", "start", "ok", detail);

    int received = 0;
    sigwait(&signals, &received);
    an_log(AN_LOG_INFO, "stopping", "signal", received == SIGINT ? "SIGINT" : "SIGTERM",
           (const char *)NULL);

    drain(server);
    MHD_stop_daemon(server->daemon);
    an_event_emit("server", "stop", "ok", NULL);
    rc = 0;

fail_daemon:
    pthread_mutex_lock(&housekeeper.lock);
    housekeeper.stop = 1;
    pthread_cond_signal(&housekeeper.wake);
    pthread_mutex_unlock(&housekeeper.lock);
    pthread_join(housekeeping_thread, NULL);
fail_housekeeping:
    pthread_cond_destroy(&housekeeper.wake);
    pthread_mutex_destroy(&housekeeper.lock);
    if (server->upstream)
        an_upstream_stop(server->upstream);
fail_upstream:
    an_local_embedder_stop(server->local_embed);
    server->local_embed = NULL;
fail_local_embed:
    close_caches(server);
fail_caches:
    if (events) {
        an_event_set_sink(NULL);
        events->close(events);
    }
    an_log(rc == 0 ? AN_LOG_INFO : AN_LOG_ERROR, rc == 0 ? "stopped" : "startup failed",
           (const char *)NULL);
    an_log_set_buffered(0);
fail_options:
    an_key_alias_free(&server->key_aliases);
    free(server);
    return rc;
}
