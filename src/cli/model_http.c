/*
 * HTTP transfers of the hub client: one libcurl GET with the bearer token,
 * timeouts, redirects and an optional progress line, plus the retry policy.
 * Listing and download logic live in model_hub.c and model_fetch.c.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentnet/log.h"
#include "cli/model_hub.h"

/* The hub redirects an LFS download to its CDN once, so more than this is a loop. */
#define HUB_MAX_REDIRECTS 10L
/* A transfer slower than this for stall_timeout_s seconds is aborted and retried. */
#define HUB_STALL_BYTES_PER_S 1024L
/* Redraw the progress line at most this often, so stderr stays cheap. */
#define HUB_PROGRESS_INTERVAL_NS 100000000ull

typedef struct {
    const hub_request_t *request;
    hub_response_t *response;
    uint64_t last_draw_ns;
    int drawn;
} transfer_t;

static size_t on_curl_body(char *data, size_t size, size_t count, void *userdata)
{
    transfer_t *t = userdata;
    size_t len = size * count;
    if (!t->request->on_body)
        return len;

    /*
     * curl passes only the final response's body here, after redirects,
     * and on_curl_header has set its status by then.
     */
    return t->request->on_body(t->request->ctx, t->response->status, data, len) == 0 ? len : 0;
}

static size_t on_curl_header(char *data, size_t size, size_t count, void *userdata)
{
    transfer_t *t = userdata;
    size_t len = size * count;

    /* A status line starts the headers of a new response, such as the one after a redirect. */
    if (len > 5 && memcmp(data, "HTTP/", 5) == 0) {
        const char *space = memchr(data, ' ', len);
        t->response->status = space ? strtol(space + 1, NULL, 10) : 0;
    }

    size_t line_len = len;
    while (line_len > 0 && (data[line_len - 1] == '\n' || data[line_len - 1] == '\r'))
        line_len--;
    if (t->request->on_header)
        t->request->on_header(t->request->ctx, data, line_len);
    return len;
}

static void format_mib(uint64_t bytes, char *out, size_t len)
{
    snprintf(out, len, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
}

static int on_curl_progress(void *userdata, curl_off_t total, curl_off_t now, curl_off_t up_total,
                            curl_off_t up_now)
{
    transfer_t *t = userdata;
    uint64_t ns = an_mono_ns();
    if (t->drawn && ns - t->last_draw_ns < HUB_PROGRESS_INTERVAL_NS)
        return 0;
    t->last_draw_ns = ns;
    t->drawn = 1;

    uint64_t done = t->request->progress_base + (uint64_t)now;
    uint64_t whole = t->request->progress_total;
    char done_text[32], whole_text[32];
    format_mib(done, done_text, sizeof(done_text));
    format_mib(whole, whole_text, sizeof(whole_text));
    unsigned percent = whole ? (unsigned)(done * 100 / whole) : 0;
    fprintf(stderr, "\r\033[K%s  %s / %s  %u%%", t->request->progress_label, done_text,
            whole_text, percent > 100 ? 100 : percent);
    fflush(stderr);
    return 0;
}

int hub_http_get(const hub_client_t *client, const hub_request_t *request,
                 hub_response_t *response)
{
    memset(response, 0, sizeof(*response));
    transfer_t t = {.request = request, .response = response};
    CURL *curl = curl_easy_init();
    if (!curl)
        return AN_ENOMEM;

    struct curl_slist *headers = NULL;
    an_buf_t auth = {0};
    if (client->token && client->token[0]) {
        if (an_buf_appendf(&auth, "Authorization: Bearer %s", client->token) != 0) {
            curl_easy_cleanup(curl);
            return AN_ENOMEM;
        }
        /*
         * A header set here, unlike CURLOPT_XOAUTH2_BEARER, is dropped by
         * curl when a redirect goes to another host or port, so the token
         * never reaches the CDN that serves LFS files.
         */
        headers = curl_slist_append(headers, auth.data);
    }
    char range[64];
    if (request->range_from > 0) {
        snprintf(range, sizeof(range), "%" PRIu64 "-", request->range_from);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }

    curl_easy_setopt(curl, CURLOPT_URL, request->url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "agentnet/" AN_VERSION);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, HUB_MAX_REDIRECTS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, client->connect_timeout_s);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, HUB_STALL_BYTES_PER_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, client->stall_timeout_s);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, response->curl_error);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_curl_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    if (client->progress && request->progress_label) {
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_curl_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    }

    CURLcode code = curl_easy_perform(curl);
    response->curl_code = (int)code;
    if (code != CURLE_OK && !response->curl_error[0])
        snprintf(response->curl_error, sizeof(response->curl_error), "%s",
                 curl_easy_strerror(code));
    long status = 0;
    if (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status)
        response->status = status;
    if (t.drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }

    curl_slist_free_all(headers);
    /* The header copy held the token; clear it before the memory goes back. */
    if (auth.data)
        memset(auth.data, 0, auth.len);
    an_buf_free(&auth);
    curl_easy_cleanup(curl);
    return 0;
}

int hub_is_transient(const hub_response_t *response)
{
    switch ((CURLcode)response->curl_code) {
    case CURLE_OK:
        return response->status >= 500 || response->status == 429 || response->status == 408;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

void hub_describe_failure(const hub_response_t *response, char *out, size_t len)
{
    if (response->curl_code != CURLE_OK)
        snprintf(out, len, "%s", response->curl_error);
    else
        snprintf(out, len, "HTTP %ld", response->status);
}

void hub_backoff(const char *url, unsigned attempt, unsigned retries,
                 const hub_response_t *response)
{
    unsigned delay_s = 1u << (attempt - 1 < 5 ? attempt - 1 : 5);
    char reason[300], attempt_text[32], delay_text[32];
    hub_describe_failure(response, reason, sizeof(reason));
    snprintf(attempt_text, sizeof(attempt_text), "%u/%u", attempt, retries);
    snprintf(delay_text, sizeof(delay_text), "%u", delay_s);
    an_log(AN_LOG_WARN, "model pull: retrying after a transient failure", "url", url, "error",
           reason, "retry", attempt_text, "delay_s", delay_text, NULL);

    struct timespec pause = {.tv_sec = delay_s};
    while (nanosleep(&pause, &pause) != 0)
        ;
}

int hub_url_append(an_buf_t *url, const char *text, int keep_slash)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        int plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
                    *p == '~' || (keep_slash && *p == '/');
        int rc = plain ? an_buf_append(url, p, 1) : an_buf_appendf(url, "%%%02X", *p);
        if (rc != 0)
            return rc;
    }
    return 0;
}
