/*
 * The in-flight table: while one upstream call for a cache key runs, other
 * requests for the same key join it instead of calling the upstream again.
 */
#include <string.h>

#include "server/server_internal.h"

void an_inflight_init(an_inflight_t *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
}

static size_t bucket_of(const an_cache_key_t *key)
{
    uint32_t h;
    memcpy(&h, key->bytes, sizeof(h)); /* a SHA-256 prefix is already uniform */
    return h % AN_INFLIGHT_BUCKETS;
}

an_job_t *an_inflight_join_or_insert(an_inflight_t *t, const an_cache_key_t *key, an_job_t *job)
{
    size_t b = bucket_of(key);
    pthread_mutex_lock(&t->lock);
    for (an_job_t *j = t->buckets[b]; j; j = j->inflight_next) {
        if (memcmp(j->key.bytes, key->bytes, AN_CACHE_KEY_BYTES) == 0) {
            an_job_ref(j);
            pthread_mutex_unlock(&t->lock);
            return j;
        }
    }
    job->key = *key;
    job->coalesced = 1;
    job->inflight_next = t->buckets[b];
    t->buckets[b] = job;
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

void an_inflight_remove(an_inflight_t *t, an_job_t *job)
{
    if (!job->coalesced)
        return;
    size_t b = bucket_of(&job->key);
    pthread_mutex_lock(&t->lock);
    for (an_job_t **p = &t->buckets[b]; *p; p = &(*p)->inflight_next) {
        if (*p == job) {
            *p = job->inflight_next;
            break;
        }
    }
    job->coalesced = 0;
    pthread_mutex_unlock(&t->lock);
}
