/*
 * Remembers, for request bodies seen before, the canonical cache key they
 * map to, keyed by a digest of the raw bytes (an_cache_key_raw). An exact
 * repeat, the common case for agents, then skips JSON parsing and
 * canonicalization, which took about a quarter of a cache hit's CPU time.
 */
#ifndef AGENTNET_SERVER_KEY_ALIAS_H
#define AGENTNET_SERVER_KEY_ALIAS_H

#include <pthread.h>

#include "agentnet/cache.h"

/* Direct-mapped: a new body replaces whatever shared its slot. */
#define AN_KEY_ALIAS_SLOTS 16384
#define AN_KEY_ALIAS_LOCKS 64

typedef struct {
    an_cache_key_t raw;
    an_cache_key_t key;
    int stream; /* the body asked for "stream": true */
    int used;
} an_key_alias_slot_t;

typedef struct {
    pthread_mutex_t locks[AN_KEY_ALIAS_LOCKS]; /* lock i guards slots i, i + 64, ... */
    an_key_alias_slot_t *slots;
} an_key_alias_t;

int an_key_alias_init(an_key_alias_t *t);
void an_key_alias_free(an_key_alias_t *t);

/* Returns 1 and fills key and stream when raw was seen before, else 0. */
int an_key_alias_get(an_key_alias_t *t, const an_cache_key_t *raw, an_cache_key_t *key,
                     int *stream);
void an_key_alias_put(an_key_alias_t *t, const an_cache_key_t *raw, const an_cache_key_t *key,
                      int stream);

#endif
