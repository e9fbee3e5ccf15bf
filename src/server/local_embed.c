/*
 * The local embedding thread: takes the queued embeddings jobs, merges those
 * that fit one token budget into a single model call, and completes each
 * with an OpenAI-shaped response. Request validation happens before a job is
 * queued (route_embeddings.c), so a job here fails only on what the model
 * itself rejects, such as token ids outside its vocabulary.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "agentnet/log.h"
#include "server/local_embed.h"

/* Rough bytes per token of English text, to estimate a batch's tokens before tokenising. */
#define BYTES_PER_TOKEN_ESTIMATE 4

struct an_local_embedder {
    an_embed_model_t *model;
    char name[256];
    unsigned batch_tokens;
    pthread_t thread;

    pthread_mutex_t lock; /* guards queue and stopping */
    pthread_cond_t wake;
    an_job_t **queue;
    size_t queue_len, queue_cap;
    int stopping;
};

/* One input of one job: text, or token ids. */
typedef struct {
    const char *text;
    size_t len;
    int32_t *ids; /* owned; NULL for text */
} item_t;

typedef struct {
    an_job_t *job;
    json_t *body;
    int base64;
    size_t count;
    item_t *items;
    float *vectors;        /* count * dims */
    an_embed_info_t *info; /* count */
    char error[512];       /* set when this job fails */
} work_t;

const char *an_local_embedder_name(const an_local_embedder_t *le) { return le->name; }
size_t an_local_embedder_dims(const an_local_embedder_t *le) { return an_embed_dims(le->model); }

/* Parses a job's body into items; the route validated it before queueing. */
static int parse_work(work_t *w)
{
    w->body = json_loadb(w->job->body.data, w->job->body.len, 0, NULL);
    json_t *input = json_object_get(w->body, "input");
    const char *format = json_string_value(json_object_get(w->body, "encoding_format"));
    w->base64 = format && strcmp(format, "base64") == 0;

    int single = json_is_string(input) ||
                 (json_is_array(input) && json_is_integer(json_array_get(input, 0)));
    w->count = single ? 1 : json_array_size(input);
    w->items = calloc(w->count ? w->count : 1, sizeof(*w->items));
    if (!w->items)
        return AN_ENOMEM;

    for (size_t i = 0; i < w->count; i++) {
        json_t *item = single ? input : json_array_get(input, i);
        if (json_is_string(item)) {
            w->items[i].text = json_string_value(item);
            w->items[i].len = json_string_length(item);
            continue;
        }
        size_t n = json_array_size(item);
        w->items[i].ids = malloc((n ? n : 1) * sizeof(int32_t));
        if (!w->items[i].ids)
            return AN_ENOMEM;
        for (size_t k = 0; k < n; k++)
            w->items[i].ids[k] = (int32_t)json_integer_value(json_array_get(item, k));
        w->items[i].len = n;
    }
    return 0;
}

static size_t estimate_tokens(const an_job_t *job)
{
    return job->body.len / BYTES_PER_TOKEN_ESTIMATE + 2;
}

static void free_work(work_t *w)
{
    for (size_t i = 0; w->items && i < w->count; i++)
        free(w->items[i].ids);
    free(w->items);
    free(w->vectors);
    free(w->info);
    json_decref(w->body);
}

/* Runs the model over the items of one job. */
static int embed_work(an_local_embedder_t *le, work_t *w)
{
    size_t dims = an_embed_dims(le->model);
    w->vectors = calloc(w->count * dims + 1, sizeof(float));
    w->info = calloc(w->count + 1, sizeof(*w->info));
    const char **texts = calloc(w->count + 1, sizeof(*texts));
    size_t *lengths = calloc(w->count + 1, sizeof(*lengths));
    int rc = w->vectors && w->info && texts && lengths ? 0 : AN_ENOMEM;

    /* Texts go through the model together; token arrays, which are rare, one by one. */
    size_t text_count = 0;
    for (size_t i = 0; rc == 0 && i < w->count; i++) {
        if (w->items[i].ids) {
            const int32_t *ids = w->items[i].ids;
            rc = an_embed_token_ids(le->model, &ids, &w->items[i].len, 1, w->vectors + i * dims,
                                    &w->info[i], NULL, NULL, w->error, sizeof(w->error));
        } else {
            texts[text_count] = w->items[i].text;
            lengths[text_count] = w->items[i].len;
            text_count++;
        }
    }
    if (rc == 0 && text_count > 0) {
        float *text_vectors = calloc(text_count * dims, sizeof(float));
        an_embed_info_t *text_info = calloc(text_count, sizeof(*text_info));
        rc = text_vectors && text_info
                 ? an_embed_texts(le->model, texts, lengths, text_count, text_vectors, text_info,
                                  NULL, NULL, w->error, sizeof(w->error))
                 : AN_ENOMEM;
        for (size_t i = 0, t = 0; rc == 0 && i < w->count; i++) {
            if (w->items[i].ids)
                continue;
            memcpy(w->vectors + i * dims, text_vectors + t * dims, dims * sizeof(float));
            w->info[i] = text_info[t];
            t++;
        }
        free(text_vectors);
        free(text_info);
    }
    free(texts);
    free(lengths);
    return rc;
}

static json_t *embedding_value(const float *v, size_t dims, int base64)
{
    if (!base64) {
        json_t *array = json_array();
        for (size_t d = 0; d < dims; d++)
            json_array_append_new(array, json_real(v[d]));
        return array;
    }
    /* The client decodes little-endian float32; x86-64 and arm64 hosts store floats that way. */
    size_t bytes = dims * sizeof(float);
    char *text = malloc(4 * ((bytes + 2) / 3) + 1);
    if (!text)
        return NULL;
    EVP_EncodeBlock((unsigned char *)text, (const unsigned char *)v, (int)bytes);
    json_t *value = json_string(text);
    free(text);
    return value;
}

/* Completes one job with its response or its error. */
static void finish_work(an_local_embedder_t *le, work_t *w, int rc)
{
    json_t *doc;
    long status = 200;
    if (rc != 0) {
        status = rc == AN_EINVAL ? 400 : 500;
        doc = json_pack("{s:{s:s, s:s, s:s?, s:s}}", "error", "message", w->error[0] ? w->error : an_strerror(rc),
                        "type", rc == AN_EINVAL ? "invalid_request_error" : "server_error",
                        "param", rc == AN_EINVAL ? "input" : NULL, "code", "embedding_failed");
        an_log(AN_LOG_WARN, "local embedding failed", "model", le->name, "error",
               w->error[0] ? w->error : an_strerror(rc), (const char *)NULL);
    } else {
        size_t dims = an_embed_dims(le->model);
        json_t *data = json_array();
        json_int_t tokens = 0, truncated = 0;
        for (size_t i = 0; i < w->count; i++) {
            json_array_append_new(data, json_pack("{s:s, s:I, s:o, s:I, s:b}", "object",
                                                  "embedding", "index", (json_int_t)i, "embedding",
                                                  embedding_value(w->vectors + i * dims, dims,
                                                                  w->base64),
                                                  "tokens", (json_int_t)w->info[i].tokens,
                                                  "truncated", w->info[i].truncated != 0));
            tokens += w->info[i].tokens;
            truncated += w->info[i].truncated != 0;
        }
        doc = json_pack("{s:s, s:o, s:s, s:{s:I, s:I, s:I}}", "object", "list", "data", data,
                        "model", le->name, "usage", "prompt_tokens", tokens, "total_tokens", tokens,
                        "truncated_inputs", truncated);
    }
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(doc);
    if (!text) {
        text = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                      "\"param\":null,\"code\":\"out_of_memory\"}}");
        status = 500;
    }
    an_job_finish_local(w->job, text ? status : 500, text, text ? strlen(text) : 0);
}

/* Takes queued jobs up to the token budget (at least one); lock held. */
static size_t take_batch_locked(an_local_embedder_t *le, an_job_t ***out)
{
    size_t n = 0, tokens = 0;
    while (n < le->queue_len) {
        size_t estimate = estimate_tokens(le->queue[n]);
        if (n > 0 && tokens + estimate > le->batch_tokens)
            break;
        tokens += estimate;
        n++;
    }
    *out = malloc(n * sizeof(**out));
    if (!*out)
        return 0;
    memcpy(*out, le->queue, n * sizeof(**out));
    memmove(le->queue, le->queue + n, (le->queue_len - n) * sizeof(*le->queue));
    le->queue_len -= n;
    return n;
}

/*
 * Embeds the text items of every job in one model call, which sorts and
 * packs them across requests. Returns non-zero when that call failed, and
 * the caller then runs each job alone, so one bad job fails by itself.
 */
static int embed_merged(an_local_embedder_t *le, work_t *works, size_t n)
{
    size_t dims = an_embed_dims(le->model);
    size_t total = 0;
    for (size_t j = 0; j < n; j++)
        total += works[j].count;
    const char **texts = calloc(total + 1, sizeof(*texts));
    size_t *lengths = calloc(total + 1, sizeof(*lengths));
    float *vectors = calloc(total * dims + 1, sizeof(float));
    an_embed_info_t *info = calloc(total + 1, sizeof(*info));
    int rc = texts && lengths && vectors && info ? 0 : AN_ENOMEM;

    size_t t = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        work_t *w = &works[j];
        w->vectors = calloc(w->count * dims + 1, sizeof(float));
        w->info = calloc(w->count + 1, sizeof(*w->info));
        if (!w->vectors || !w->info)
            rc = AN_ENOMEM;
        for (size_t i = 0; rc == 0 && i < w->count; i++) {
            if (w->items[i].ids) {
                rc = AN_EINVAL; /* token arrays take the per-job path */
                break;
            }
            texts[t] = w->items[i].text;
            lengths[t] = w->items[i].len;
            t++;
        }
    }
    char err[512] = "";
    if (rc == 0)
        rc = an_embed_texts(le->model, texts, lengths, total, vectors, info, NULL, NULL, err,
                            sizeof(err));

    t = 0;
    for (size_t j = 0; rc == 0 && j < n; j++) {
        work_t *w = &works[j];
        memcpy(w->vectors, vectors + t * dims, w->count * dims * sizeof(float));
        memcpy(w->info, info + t, w->count * sizeof(*info));
        t += w->count;
    }
    free(texts);
    free(lengths);
    free(vectors);
    free(info);
    return rc;
}

static void run_batch(an_local_embedder_t *le, an_job_t **jobs, size_t n)
{
    work_t *works = calloc(n, sizeof(*works));
    if (!works) {
        for (size_t j = 0; j < n; j++) {
            pthread_mutex_lock(&jobs[j]->lock);
            jobs[j]->error = AN_UPSTREAM_BROKEN;
            jobs[j]->state = AN_JOB_FAILED;
            an_job_wake_locked(jobs[j]);
            pthread_mutex_unlock(&jobs[j]->lock);
            an_job_unref(jobs[j]);
        }
        return;
    }

    int parsed = 0;
    for (size_t j = 0; j < n; j++) {
        works[j].job = jobs[j];
        parsed |= parse_work(&works[j]);
    }

    int merged = parsed == 0 && embed_merged(le, works, n) == 0;
    for (size_t j = 0; j < n; j++) {
        int rc = 0;
        if (!merged) {
            free(works[j].vectors);
            free(works[j].info);
            works[j].vectors = NULL;
            works[j].info = NULL;
            rc = works[j].items ? embed_work(le, &works[j]) : AN_ENOMEM;
        }
        finish_work(le, &works[j], rc);
        free_work(&works[j]);
        an_job_unref(jobs[j]);
    }
    free(works);
}

static void *local_embed_main(void *arg)
{
    an_local_embedder_t *le = arg;
    pthread_mutex_lock(&le->lock);
    for (;;) {
        while (!le->stopping && le->queue_len == 0)
            pthread_cond_wait(&le->wake, &le->lock);
        if (le->stopping)
            break;
        an_job_t **jobs = NULL;
        size_t n = take_batch_locked(le, &jobs);
        pthread_mutex_unlock(&le->lock);
        run_batch(le, jobs, n);
        free(jobs);
        pthread_mutex_lock(&le->lock);
    }

    /* Shutting down: fail what is still queued. */
    for (size_t j = 0; j < le->queue_len; j++) {
        an_job_t *job = le->queue[j];
        pthread_mutex_lock(&job->lock);
        job->error = AN_UPSTREAM_SHUTDOWN;
        job->state = AN_JOB_FAILED;
        an_job_wake_locked(job);
        pthread_mutex_unlock(&job->lock);
        an_job_unref(job);
    }
    le->queue_len = 0;
    pthread_mutex_unlock(&le->lock);
    return NULL;
}

/* The name requests use by default: a directory's last component, or the spec. */
static void default_name(const char *model, char *out, size_t len)
{
    const char *end = model + strlen(model);
    while (end > model && end[-1] == '/')
        end--;
    const char *start = end;
    while (start > model && start[-1] != '/')
        start--;
    snprintf(out, len, "%.*s", (int)(end - start), start);
}

int an_local_embedder_start(const an_local_embed_options_t *opts, an_local_embedder_t **out,
                            char *err, size_t err_len)
{
    an_local_embedder_t *le = calloc(1, sizeof(*le));
    if (!le)
        return AN_ENOMEM;
    an_embed_options_t eo = an_embed_options_default();
    if (opts->device)
        eo.device = opts->device;
    eo.threads = opts->threads;
    if (opts->batch_size)
        eo.batch_size = opts->batch_size;
    int rc = an_embed_open(opts->model, &eo, &le->model, err, err_len);
    if (rc != 0) {
        free(le);
        return rc;
    }
    if (opts->name && opts->name[0])
        snprintf(le->name, sizeof(le->name), "%s", opts->name);
    else
        default_name(opts->model, le->name, sizeof(le->name));
    le->batch_tokens = opts->batch_tokens ? opts->batch_tokens : 8192;
    pthread_mutex_init(&le->lock, NULL);
    pthread_cond_init(&le->wake, NULL);
    if (pthread_create(&le->thread, NULL, local_embed_main, le) != 0) {
        an_embed_close(le->model);
        pthread_cond_destroy(&le->wake);
        pthread_mutex_destroy(&le->lock);
        free(le);
        return AN_EIO;
    }
    *out = le;
    return 0;
}

void an_local_embedder_stop(an_local_embedder_t *le)
{
    if (!le)
        return;
    pthread_mutex_lock(&le->lock);
    le->stopping = 1;
    pthread_cond_signal(&le->wake);
    pthread_mutex_unlock(&le->lock);
    pthread_join(le->thread, NULL);
    an_embed_close(le->model);
    pthread_cond_destroy(&le->wake);
    pthread_mutex_destroy(&le->lock);
    free(le->queue);
    free(le);
}

int an_local_embedder_submit(an_local_embedder_t *le, an_job_t *job)
{
    an_job_ref(job);
    pthread_mutex_lock(&le->lock);
    if (le->stopping) {
        pthread_mutex_unlock(&le->lock);
        an_job_unref(job);
        return AN_ECLOSED;
    }
    if (le->queue_len == le->queue_cap) {
        size_t cap = le->queue_cap ? le->queue_cap * 2 : 64;
        an_job_t **queue = realloc(le->queue, cap * sizeof(*queue));
        if (!queue) {
            pthread_mutex_unlock(&le->lock);
            an_job_unref(job);
            return AN_ENOMEM;
        }
        le->queue = queue;
        le->queue_cap = cap;
    }
    le->queue[le->queue_len++] = job;
    pthread_cond_signal(&le->wake);
    pthread_mutex_unlock(&le->lock);
    return 0;
}
