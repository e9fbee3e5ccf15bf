/* The raw-body to cache-key table behind the parse-free path for exact repeats. */
#include <stdlib.h>
#include <string.h>

#include "server/key_alias.h"

int an_key_alias_init(an_key_alias_t *t)
{
    t->slots = calloc(AN_KEY_ALIAS_SLOTS, sizeof(*t->slots));
    if (!t->slots)
        return AN_ENOMEM;
    for (int i = 0; i < AN_KEY_ALIAS_LOCKS; i++)
        pthread_mutex_init(&t->locks[i], NULL);
    return 0;
}

void an_key_alias_free(an_key_alias_t *t)
{
    if (!t->slots)
        return;
    for (int i = 0; i < AN_KEY_ALIAS_LOCKS; i++)
        pthread_mutex_destroy(&t->locks[i]);
    free(t->slots);
    t->slots = NULL;
}

static size_t slot_of(const an_cache_key_t *raw)
{
    uint32_t h;
    memcpy(&h, raw->bytes, sizeof(h)); /* a SHA-256 prefix is already uniform */
    return h % AN_KEY_ALIAS_SLOTS;
}

int an_key_alias_get(an_key_alias_t *t, const an_cache_key_t *raw, an_cache_key_t *key,
                     int *stream)
{
    size_t i = slot_of(raw);
    pthread_mutex_t *lock = &t->locks[i % AN_KEY_ALIAS_LOCKS];
    pthread_mutex_lock(lock);
    an_key_alias_slot_t *slot = &t->slots[i];
    int found = slot->used && memcmp(slot->raw.bytes, raw->bytes, AN_CACHE_KEY_BYTES) == 0;
    if (found) {
        *key = slot->key;
        *stream = slot->stream;
    }
    pthread_mutex_unlock(lock);
    return found;
}

void an_key_alias_put(an_key_alias_t *t, const an_cache_key_t *raw, const an_cache_key_t *key,
                      int stream)
{
    size_t i = slot_of(raw);
    pthread_mutex_t *lock = &t->locks[i % AN_KEY_ALIAS_LOCKS];
    pthread_mutex_lock(lock);
    an_key_alias_slot_t *slot = &t->slots[i];
    slot->raw = *raw;
    slot->key = *key;
    slot->stream = stream;
    slot->used = 1;
    pthread_mutex_unlock(lock);
}
