/*
 * The upstream thread: a libcurl multi loop that runs every upstream call,
 * appends what arrives to its job and resumes the job's waiters. Cache
 * stores happen here too, through each job's completion hook.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agentnet/log.h"
#include "server/upstream.h"

struct an_upstream {
    CURLM *multi;             /* used by the upstream thread only */
    pthread_t thread;
    uint64_t timeout_ms;
    an_upstream_observe_fn observe;
    void *observe_ctx;
    an_job_t **active;        /* transfers in the multi handle; upstream thread only */
    size_t active_len, active_cap;

    pthread_mutex_t lock;     /* guards queue and stopping */
    an_job_t **queue;
    size_t queue_len, queue_cap;
    int stopping;
};

an_job_t *an_job_new(void)
{
    an_job_t *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    pthread_mutex_init(&job->lock, NULL);
    job->refs = 1;
    job->method = "POST";
    return job;
}

void an_job_ref(an_job_t *job)
{
    pthread_mutex_lock(&job->lock);
    job->refs++;
    pthread_mutex_unlock(&job->lock);
}

void an_job_unref(an_job_t *job)
{
    pthread_mutex_lock(&job->lock);
    int left = --job->refs;
    pthread_mutex_unlock(&job->lock);
    if (left > 0)
        return;

    if (job->free_ctx)
        job->free_ctx(job->complete_ctx);
    free(job->url);
    curl_slist_free_all(job->headers);
    an_buf_free(&job->body);
    an_buf_free(&job->data);
    pthread_mutex_destroy(&job->lock);
    free(job);
}

void an_job_add_waiter_locked(an_job_t *job, an_waiter_t *w)
{
    w->next = job->waiters;
    job->waiters = w;
}

void an_job_remove_waiter(an_job_t *job, an_waiter_t *w)
{
    pthread_mutex_lock(&job->lock);
    for (an_waiter_t **p = &job->waiters; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pthread_mutex_unlock(&job->lock);
}

void an_job_wake_locked(an_job_t *job)
{
    for (an_waiter_t *w = job->waiters; w; w = w->next) {
        if (w->suspended) {
            w->suspended = 0;
            MHD_resume_connection(w->connection);
        }
    }
}

/* Moves event_end past every complete SSE event ("\n\n" or "\r\n\r\n"). */
static void scan_events_locked(an_job_t *job, size_t from)
{
    size_t start = from > 3 ? from - 3 : 0;
    for (size_t i = start; i + 1 < job->data.len; i++) {
        if (job->data.data[i] == '\n' && job->data.data[i + 1] == '\n' && i + 2 > job->event_end)
            job->event_end = i + 2;
        else if (i + 3 < job->data.len && memcmp(job->data.data + i, "\r\n\r\n", 4) == 0 &&
                 i + 4 > job->event_end)
            job->event_end = i + 4;
    }
}

/* Marks the headers as known: status and content type. */
static void headers_known_locked(an_job_t *job)
{
    if (job->state != AN_JOB_PENDING)
        return;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &job->status);
    char *type = NULL;
    curl_easy_getinfo(job->easy, CURLINFO_CONTENT_TYPE, &type);
    snprintf(job->content_type, sizeof(job->content_type), "%s",
             type ? type : "application/octet-stream");
    job->state = AN_JOB_HEADERS;
}

static int is_event_stream(const an_job_t *job)
{
    return strncasecmp(job->content_type, "text/event-stream", 17) == 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
    an_job_t *job = userdata;
    size_t len = size * n;
    if (len > 2 || (len == 2 && data[0] != '\r') || (len == 1 && data[0] != '\n'))
        return len; /* not the blank line that ends a header block */

    long status = 0;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200)
        return len; /* an interim 1xx block; the final one follows */

    pthread_mutex_lock(&job->lock);
    headers_known_locked(job);
    an_job_wake_locked(job);
    pthread_mutex_unlock(&job->lock);
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    an_job_t *job = userdata;
    size_t len = size * n;

    pthread_mutex_lock(&job->lock);
    headers_known_locked(job);
    size_t before = job->data.len;
    if (an_buf_append(&job->data, data, len) != 0) {
        pthread_mutex_unlock(&job->lock);
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }

    /*
     * A 2xx stream is released one event behind what arrived: the last
     * event reaches clients only after the completed stream is stored, so a
     * request that sees the end of a stream always finds it in the cache.
     */
    if (is_event_stream(job) && job->status >= 200 && job->status < 300) {
        size_t previous_end = job->event_end;
        scan_events_locked(job, before);
        if (job->event_end != previous_end)
            job->released = previous_end;
    }
    an_job_wake_locked(job);
    pthread_mutex_unlock(&job->lock);
    return len;
}

static an_upstream_error_t classify(CURLcode code)
{
    switch (code) {
    case CURLE_OK: return AN_UPSTREAM_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return AN_UPSTREAM_REFUSED;
    case CURLE_OPERATION_TIMEDOUT: return AN_UPSTREAM_TIMEOUT;
    default: return AN_UPSTREAM_BROKEN;
    }
}

static void finish_job(an_upstream_t *up, an_job_t *job, CURLcode code)
{
    an_upstream_error_t error = classify(code);
    uint64_t duration_ns = an_mono_ns() - job->started_ns;
    if (up->observe)
        up->observe(duration_ns, error != AN_UPSTREAM_OK, up->observe_ctx);

    pthread_mutex_lock(&job->lock);
    job->error = error;
    if (error == AN_UPSTREAM_OK)
        headers_known_locked(job);
    pthread_mutex_unlock(&job->lock);

    if (error != AN_UPSTREAM_OK) {
        char status_text[32];
        snprintf(status_text, sizeof(status_text), "%ld", job->status);
        an_log(AN_LOG_ERROR, "upstream call failed", "url", job->url, "error",
               curl_easy_strerror(code), "status", status_text, (const char *)NULL);
    }

    /*
     * The hook stores a complete response and unregisters the job. Only this
     * thread writes data, so the hook may read it without the lock.
     */
    if (job->on_complete)
        job->on_complete(job, job->complete_ctx);

    pthread_mutex_lock(&job->lock);
    job->state = error == AN_UPSTREAM_OK ? AN_JOB_DONE : AN_JOB_FAILED;
    if (error == AN_UPSTREAM_OK)
        job->released = job->data.len;
    job->easy = NULL;
    an_job_wake_locked(job);
    pthread_mutex_unlock(&job->lock);
}

void an_job_finish_local(an_job_t *job, long status, char *body, size_t len)
{
    pthread_mutex_lock(&job->lock);
    job->status = status;
    job->error = AN_UPSTREAM_OK;
    snprintf(job->content_type, sizeof(job->content_type), "application/json");
    an_buf_reset(&job->data);
    if (an_buf_append(&job->data, body, len) != 0)
        job->error = AN_UPSTREAM_BROKEN;
    job->state = AN_JOB_HEADERS;
    pthread_mutex_unlock(&job->lock);
    free(body);

    if (job->on_complete)
        job->on_complete(job, job->complete_ctx);

    pthread_mutex_lock(&job->lock);
    job->state = job->error == AN_UPSTREAM_OK ? AN_JOB_DONE : AN_JOB_FAILED;
    job->released = job->data.len;
    an_job_wake_locked(job);
    pthread_mutex_unlock(&job->lock);
}

static int start_transfer(an_upstream_t *up, an_job_t *job)
{
    CURL *easy = curl_easy_init();
    if (!easy)
        return AN_ENOMEM;
    curl_easy_setopt(easy, CURLOPT_URL, job->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, job->headers);
    if (strcmp(job->method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, job->body.data ? job->body.data : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body.len);
    }
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, job);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)up->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(up->timeout_ms < 10000 ? up->timeout_ms : 10000));
    curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);

    if (up->active_len == up->active_cap) {
        size_t cap = up->active_cap ? up->active_cap * 2 : 64;
        an_job_t **active = realloc(up->active, cap * sizeof(*active));
        if (!active) {
            curl_easy_cleanup(easy);
            return AN_ENOMEM;
        }
        up->active = active;
        up->active_cap = cap;
    }

    job->easy = easy;
    job->started_ns = an_mono_ns();
    if (curl_multi_add_handle(up->multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        job->easy = NULL;
        return AN_EIO;
    }
    up->active[up->active_len++] = job;
    return 0;
}

static void forget_active(an_upstream_t *up, an_job_t *job)
{
    for (size_t i = 0; i < up->active_len; i++) {
        if (up->active[i] == job) {
            up->active[i] = up->active[--up->active_len];
            return;
        }
    }
}

static void take_queue(an_upstream_t *up)
{
    pthread_mutex_lock(&up->lock);
    an_job_t **jobs = up->queue;
    size_t n = up->queue_len;
    up->queue = NULL;
    up->queue_len = up->queue_cap = 0;
    pthread_mutex_unlock(&up->lock);

    for (size_t i = 0; i < n; i++) {
        if (start_transfer(up, jobs[i]) != 0) {
            finish_job(up, jobs[i], CURLE_OUT_OF_MEMORY);
            an_job_unref(jobs[i]);
        }
    }
    free(jobs);
}

static void reap_finished(an_upstream_t *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        an_job_t *job = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&job);
        curl_multi_remove_handle(up->multi, easy);
        forget_active(up, job);
        finish_job(up, job, code);
        curl_easy_cleanup(easy);
        an_job_unref(job);
    }
}

/* Fails every transfer still running; used at shutdown. */
static void abort_all(an_upstream_t *up)
{
    for (size_t i = 0; i < up->active_len; i++) {
        an_job_t *job = up->active[i];
        CURL *easy = job->easy;
        curl_multi_remove_handle(up->multi, easy);
        pthread_mutex_lock(&job->lock);
        job->error = AN_UPSTREAM_SHUTDOWN;
        pthread_mutex_unlock(&job->lock);
        if (job->on_complete)
            job->on_complete(job, job->complete_ctx); /* unregisters; stores nothing */
        pthread_mutex_lock(&job->lock);
        job->state = AN_JOB_FAILED;
        job->easy = NULL;
        an_job_wake_locked(job);
        pthread_mutex_unlock(&job->lock);
        curl_easy_cleanup(easy);
        an_job_unref(job);
    }
    up->active_len = 0;
}

static void *upstream_main(void *arg)
{
    an_upstream_t *up = arg;
    for (;;) {
        take_queue(up);
        int running = 0;
        curl_multi_perform(up->multi, &running);
        reap_finished(up);

        pthread_mutex_lock(&up->lock);
        int stopping = up->stopping;
        pthread_mutex_unlock(&up->lock);
        if (stopping)
            break;
        curl_multi_poll(up->multi, NULL, 0, 1000, NULL);
    }
    take_queue(up);
    abort_all(up);
    return NULL;
}

int an_upstream_start(uint64_t timeout_s, an_upstream_observe_fn observe, void *observe_ctx,
                      an_upstream_t **out)
{
    an_upstream_t *up = calloc(1, sizeof(*up));
    if (!up)
        return AN_ENOMEM;
    up->multi = curl_multi_init();
    if (!up->multi) {
        free(up);
        return AN_ENOMEM;
    }
    up->timeout_ms = timeout_s * 1000;
    up->observe = observe;
    up->observe_ctx = observe_ctx;
    pthread_mutex_init(&up->lock, NULL);
    if (pthread_create(&up->thread, NULL, upstream_main, up) != 0) {
        curl_multi_cleanup(up->multi);
        pthread_mutex_destroy(&up->lock);
        free(up);
        return AN_EIO;
    }
    *out = up;
    return 0;
}

void an_upstream_stop(an_upstream_t *up)
{
    pthread_mutex_lock(&up->lock);
    up->stopping = 1;
    pthread_mutex_unlock(&up->lock);
    curl_multi_wakeup(up->multi);
    pthread_join(up->thread, NULL);
    curl_multi_cleanup(up->multi);
    pthread_mutex_destroy(&up->lock);
    free(up->active);
    free(up);
}

int an_upstream_submit(an_upstream_t *up, an_job_t *job)
{
    an_job_ref(job);
    pthread_mutex_lock(&up->lock);
    if (up->stopping) {
        pthread_mutex_unlock(&up->lock);
        an_job_unref(job);
        return AN_ECLOSED;
    }
    if (up->queue_len == up->queue_cap) {
        size_t cap = up->queue_cap ? up->queue_cap * 2 : 16;
        an_job_t **queue = realloc(up->queue, cap * sizeof(*queue));
        if (!queue) {
            pthread_mutex_unlock(&up->lock);
            an_job_unref(job);
            return AN_ENOMEM;
        }
        up->queue = queue;
        up->queue_cap = cap;
    }
    up->queue[up->queue_len++] = job;
    pthread_mutex_unlock(&up->lock);
    curl_multi_wakeup(up->multi);
    return 0;
}
