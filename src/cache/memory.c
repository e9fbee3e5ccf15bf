/*
 * The memory backend: a sharded chained hash table with an exact global LRU,
 * bounded by max_entries and max_bytes. Entries live only as long as the
 * process; nothing here touches the disk.
 *
 * Exact LRU across shards: every store and hit stamps the entry with a tick
 * from one global atomic counter, and each shard keeps its entries in a
 * doubly linked list ordered by tick (head = newest, tail = oldest). Ticks are
 * taken under the shard lock, so within a shard the list order is the tick
 * order. To evict, a thread reads each shard's tail tick, picks the smallest,
 * and removes that tail if it still has that tick. A shard's tail tick never
 * decreases, because new entries go to the head with a larger tick. So a tick
 * read earlier is a lower bound of that shard's tail now. The entry removed
 * is thus the globally least recently used one at the moment of removal.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"

/* Buckets of a new shard. A shard doubles its table when its entries outnumber its buckets. */
#define INITIAL_BUCKETS 64u

/* Keeps each shard, and so its lock, on its own cache line. */
#define CACHE_LINE_BYTES 64

typedef struct mem_entry {
    struct mem_entry *chain_next; /* next entry in the same hash bucket */
    struct mem_entry *newer;      /* LRU neighbour toward the head; NULL at the head */
    struct mem_entry *older;      /* LRU neighbour toward the tail; NULL at the tail */
    uint64_t hash;
    uint64_t tick; /* global access tick of the last store or hit */
    an_cache_key_t key;
    int64_t created_ms;
    int64_t expires_ms;
    int64_t last_access_ms;
    uint64_t hits;
    uint64_t bytes; /* an__cache_entry_bytes() of this entry */
    size_t value_len;
    size_t content_type_len;
    size_t namespace_len;
    char data[]; /* content type, NUL, namespace, NUL, value */
} mem_entry_t;

/*
 * One shard. lock guards every field below it and every entry reachable from
 * buckets or the LRU list. Lock order: evict_lock, then at most one shard
 * lock at a time; no code holds two shard locks.
 */
typedef struct {
    _Alignas(CACHE_LINE_BYTES) pthread_mutex_t lock;
    mem_entry_t **buckets;
    size_t bucket_mask; /* bucket count - 1; the count is a power of 2 */
    size_t count;
    mem_entry_t *head; /* most recently used */
    mem_entry_t *tail; /* least recently used */
    /*
     * Statistics of the operations on this shard. Kept per shard under its
     * lock, rather than in cache-wide atomics, so that concurrent lookups
     * do not all write one cache line; an_cache_stats sums them.
     */
    uint64_t hits;
    uint64_t misses;
    uint64_t stores;
    uint64_t evictions;
    uint64_t expirations;
} mem_shard_t;

typedef struct {
    mem_shard_t *shards;
    uint64_t shard_mask;
    /*
     * Totals over all shards, changed under the shard lock of the entry
     * involved and read without a lock to decide whether to evict.
     */
    _Atomic uint64_t entries;
    _Atomic uint64_t bytes;
    _Atomic uint64_t next_tick;
    /*
     * Serializes evicting threads, so that two threads that both see the cache
     * one entry over its bound remove one entry between them, not two.
     */
    pthread_mutex_t evict_lock;
} mem_cache_t;


/* Folds the 32 key bytes into 64 well-mixed bits; keys need not be real digests. */
static uint64_t hash_key(const an_cache_key_t *key)
{
    uint64_t words[4];
    memcpy(words, key->bytes, sizeof(words));
    uint64_t h = words[0] ^ (words[1] * 0x9e3779b97f4a7c15ull) ^
                 (words[2] * 0xc2b2ae3d27d4eb4full) ^ (words[3] * 0x165667b19e3779f9ull);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}


static mem_shard_t *shard_of(mem_cache_t *mc, uint64_t hash)
{
    return &mc->shards[(hash >> 40) & mc->shard_mask];
}


static const char *entry_content_type(const mem_entry_t *e)
{
    return e->data;
}


static const char *entry_namespace(const mem_entry_t *e)
{
    return e->data + e->content_type_len + 1;
}


static const char *entry_value(const mem_entry_t *e)
{
    return e->data + e->content_type_len + 1 + e->namespace_len + 1;
}


static mem_entry_t *entry_new(const an_cache_key_t *key, uint64_t hash, const an__cache_item_t *item)
{
    size_t data_len = item->content_type_len + 1 + item->namespace_len + 1 + item->value_len;
    mem_entry_t *e = malloc(sizeof(*e) + data_len);
    if (!e)
        return NULL;

    memset(e, 0, sizeof(*e));
    e->hash = hash;
    e->key = *key;
    e->created_ms = item->now_ms;
    e->expires_ms = item->expires_ms;
    e->last_access_ms = item->now_ms;
    e->bytes = item->bytes;
    e->value_len = item->value_len;
    e->content_type_len = item->content_type_len;
    e->namespace_len = item->namespace_len;

    char *p = e->data;
    memcpy(p, item->content_type, item->content_type_len + 1);
    p += item->content_type_len + 1;
    memcpy(p, item->namespace_, item->namespace_len + 1);
    p += item->namespace_len + 1;
    if (item->value_len)
        memcpy(p, item->value, item->value_len);
    return e;
}


static mem_entry_t *shard_find(const mem_shard_t *shard, const an_cache_key_t *key, uint64_t hash)
{
    for (mem_entry_t *e = shard->buckets[hash & shard->bucket_mask]; e; e = e->chain_next) {
        if (e->hash == hash && memcmp(e->key.bytes, key->bytes, AN_CACHE_KEY_BYTES) == 0)
            return e;
    }
    return NULL;
}


static void lru_unlink(mem_shard_t *shard, mem_entry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        shard->head = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        shard->tail = e->newer;
    e->newer = e->older = NULL;
}


/* Stamps e with a new global tick and moves it to the head. Caller holds shard->lock. */
static void lru_touch(mem_cache_t *mc, mem_shard_t *shard, mem_entry_t *e, int linked)
{
    if (linked)
        lru_unlink(shard, e);
    e->tick = atomic_fetch_add(&mc->next_tick, 1) + 1;
    e->older = shard->head;
    e->newer = NULL;
    if (shard->head)
        shard->head->newer = e;
    shard->head = e;
    if (!shard->tail)
        shard->tail = e;
}


/* Doubles the bucket array; on allocation failure the chains just get longer. */
static void shard_grow(mem_shard_t *shard)
{
    size_t old_count = shard->bucket_mask + 1;
    size_t new_count = old_count * 2;
    mem_entry_t **buckets = calloc(new_count, sizeof(*buckets));
    if (!buckets)
        return;

    for (size_t i = 0; i < old_count; i++) {
        mem_entry_t *e = shard->buckets[i];
        while (e) {
            mem_entry_t *next = e->chain_next;
            size_t b = e->hash & (new_count - 1);
            e->chain_next = buckets[b];
            buckets[b] = e;
            e = next;
        }
    }
    free(shard->buckets);
    shard->buckets = buckets;
    shard->bucket_mask = new_count - 1;
}


static void shard_insert(mem_cache_t *mc, mem_shard_t *shard, mem_entry_t *e)
{
    size_t b = e->hash & shard->bucket_mask;
    e->chain_next = shard->buckets[b];
    shard->buckets[b] = e;
    lru_touch(mc, shard, e, 0);
    shard->count++;
    atomic_fetch_add(&mc->entries, 1);
    atomic_fetch_add(&mc->bytes, e->bytes);
    if (shard->count > shard->bucket_mask + 1)
        shard_grow(shard);
}


/* Unlinks e from its shard and the totals; the caller frees it after unlocking. */
static void shard_remove(mem_cache_t *mc, mem_shard_t *shard, mem_entry_t *e)
{
    mem_entry_t **link = &shard->buckets[e->hash & shard->bucket_mask];
    while (*link != e)
        link = &(*link)->chain_next;
    *link = e->chain_next;
    e->chain_next = NULL;

    lru_unlink(shard, e);
    assert(shard->count > 0);
    shard->count--;
    atomic_fetch_sub(&mc->entries, 1);
    atomic_fetch_sub(&mc->bytes, e->bytes);
}


static int over_bounds(const an_cache_t *cache, mem_cache_t *mc)
{
    uint64_t max_entries = cache->opts.max_entries;
    if (max_entries && atomic_load(&mc->entries) > max_entries)
        return 1;
    return atomic_load(&mc->bytes) > cache->opts.max_bytes;
}


/*
 * Removes the globally least recently used entry (see the file comment for
 * why the choice is exact). Returns 0 when every shard is empty.
 */
static int evict_oldest(an_cache_t *cache, mem_cache_t *mc)
{
    for (;;) {
        uint64_t oldest_tick = UINT64_MAX;
        mem_shard_t *oldest_shard = NULL;
        for (uint64_t i = 0; i <= mc->shard_mask; i++) {
            mem_shard_t *shard = &mc->shards[i];
            pthread_mutex_lock(&shard->lock);
            if (shard->tail && shard->tail->tick < oldest_tick) {
                oldest_tick = shard->tail->tick;
                oldest_shard = shard;
            }
            pthread_mutex_unlock(&shard->lock);
        }
        if (!oldest_shard)
            return 0;

        /* Ticks are unique, so an unchanged tail tick means an unchanged tail. */
        pthread_mutex_lock(&oldest_shard->lock);
        mem_entry_t *victim = oldest_shard->tail;
        if (victim && victim->tick == oldest_tick) {
            shard_remove(mc, oldest_shard, victim);
            oldest_shard->evictions++;
            pthread_mutex_unlock(&oldest_shard->lock);
            free(victim);
            return 1;
        }
        pthread_mutex_unlock(&oldest_shard->lock);
    }
}


static void evict_to_bounds(an_cache_t *cache, mem_cache_t *mc)
{
    if (!over_bounds(cache, mc))
        return;
    pthread_mutex_lock(&mc->evict_lock);
    while (over_bounds(cache, mc) && evict_oldest(cache, mc))
        ;
    pthread_mutex_unlock(&mc->evict_lock);
}


static int memory_open(an_cache_t *cache, char *err, size_t err_len)
{
    mem_cache_t *mc = calloc(1, sizeof(*mc));
    if (!mc)
        goto fail_alloc;

    uint64_t shard_count = cache->opts.shards;
    mc->shard_mask = shard_count - 1;
    mc->shards = aligned_alloc(CACHE_LINE_BYTES, shard_count * sizeof(*mc->shards));
    if (!mc->shards)
        goto fail_shards;
    memset(mc->shards, 0, shard_count * sizeof(*mc->shards));

    uint64_t ready = 0;
    for (; ready < shard_count; ready++) {
        mem_shard_t *shard = &mc->shards[ready];
        shard->buckets = calloc(INITIAL_BUCKETS, sizeof(*shard->buckets));
        if (!shard->buckets)
            goto fail_buckets;
        shard->bucket_mask = INITIAL_BUCKETS - 1;
        pthread_mutex_init(&shard->lock, NULL);
    }
    pthread_mutex_init(&mc->evict_lock, NULL);

    cache->backend = mc;
    return 0;

fail_buckets:
    while (ready-- > 0) {
        pthread_mutex_destroy(&mc->shards[ready].lock);
        free(mc->shards[ready].buckets);
    }
    free(mc->shards);
fail_shards:
    free(mc);
fail_alloc:
    an__cache_error(err, err_len, "cache \"%s\": out of memory allocating %u shards", cache->name,
                    cache->opts.shards);
    return AN_ENOMEM;
}


static void memory_close(an_cache_t *cache)
{
    mem_cache_t *mc = cache->backend;
    for (uint64_t i = 0; i <= mc->shard_mask; i++) {
        mem_shard_t *shard = &mc->shards[i];
        mem_entry_t *e = shard->head;
        while (e) {
            mem_entry_t *next = e->older;
            free(e);
            e = next;
        }
        free(shard->buckets);
        pthread_mutex_destroy(&shard->lock);
    }
    pthread_mutex_destroy(&mc->evict_lock);
    free(mc->shards);
    free(mc);
    cache->backend = NULL;
}


static void fill_meta(const mem_entry_t *e, an_cache_meta_t *meta)
{
    meta->created_ms = e->created_ms;
    meta->expires_ms = e->expires_ms;
    meta->last_access_ms = e->last_access_ms;
    meta->hits = e->hits;
    meta->size = e->value_len;
    an__cache_copy_text(meta->content_type, sizeof(meta->content_type), entry_content_type(e),
                        e->content_type_len);
    an__cache_copy_text(meta->namespace_, sizeof(meta->namespace_), entry_namespace(e),
                        e->namespace_len);
}


static int memory_get(an_cache_t *cache, const an_cache_key_t *key, int64_t now_ms,
                      an_buf_t *value, an_cache_meta_t *meta)
{
    mem_cache_t *mc = cache->backend;
    uint64_t hash = hash_key(key);
    mem_shard_t *shard = shard_of(mc, hash);

    pthread_mutex_lock(&shard->lock);
    mem_entry_t *e = shard_find(shard, key, hash);
    if (!e) {
        shard->misses++;
        pthread_mutex_unlock(&shard->lock);
        return AN_ENOTFOUND;
    }

    if (e->expires_ms != 0 && now_ms >= e->expires_ms) {
        shard_remove(mc, shard, e);
        shard->misses++;
        shard->expirations++;
        pthread_mutex_unlock(&shard->lock);
        free(e);
        return AN_ENOTFOUND;
    }

    if (value && an__cache_copy_value(value, entry_value(e), e->value_len) != 0) {
        pthread_mutex_unlock(&shard->lock);
        return AN_ENOMEM;
    }
    lru_touch(mc, shard, e, 1);
    e->hits++;
    e->last_access_ms = now_ms;
    if (meta)
        fill_meta(e, meta);
    shard->hits++;
    pthread_mutex_unlock(&shard->lock);
    return 0;
}


static int memory_put(an_cache_t *cache, const an_cache_key_t *key, const an__cache_item_t *item)
{
    mem_cache_t *mc = cache->backend;
    uint64_t hash = hash_key(key);
    mem_shard_t *shard = shard_of(mc, hash);

    /* Allocate and copy before locking, so the lock covers only pointer updates. */
    mem_entry_t *e = entry_new(key, hash, item);
    if (!e)
        return AN_ENOMEM;

    pthread_mutex_lock(&shard->lock);
    mem_entry_t *old = shard_find(shard, key, hash);
    if (old)
        shard_remove(mc, shard, old);
    shard_insert(mc, shard, e);
    shard->stores++;
    pthread_mutex_unlock(&shard->lock);
    free(old);

    evict_to_bounds(cache, mc);
    return 0;
}


static int memory_delete(an_cache_t *cache, const an_cache_key_t *key)
{
    mem_cache_t *mc = cache->backend;
    uint64_t hash = hash_key(key);
    mem_shard_t *shard = shard_of(mc, hash);

    pthread_mutex_lock(&shard->lock);
    mem_entry_t *e = shard_find(shard, key, hash);
    if (e)
        shard_remove(mc, shard, e);
    pthread_mutex_unlock(&shard->lock);

    if (!e)
        return AN_ENOTFOUND;
    free(e);
    return 0;
}


static int memory_purge(an_cache_t *cache, const char *namespace_, uint64_t *removed)
{
    mem_cache_t *mc = cache->backend;
    uint64_t count = 0;

    for (uint64_t i = 0; i <= mc->shard_mask; i++) {
        mem_shard_t *shard = &mc->shards[i];
        mem_entry_t *doomed = NULL; /* removed entries, chained through chain_next */

        pthread_mutex_lock(&shard->lock);
        mem_entry_t *e = shard->head;
        while (e) {
            mem_entry_t *next = e->older;
            if (!namespace_ || strcmp(entry_namespace(e), namespace_) == 0) {
                shard_remove(mc, shard, e);
                e->chain_next = doomed;
                doomed = e;
                count++;
            }
            e = next;
        }
        pthread_mutex_unlock(&shard->lock);

        while (doomed) {
            mem_entry_t *next = doomed->chain_next;
            free(doomed);
            doomed = next;
        }
    }

    *removed = count;
    return 0;
}


static int memory_stats(an_cache_t *cache, an_cache_stats_t *stats)
{
    mem_cache_t *mc = cache->backend;
    for (uint64_t i = 0; i <= mc->shard_mask; i++) {
        mem_shard_t *shard = &mc->shards[i];
        pthread_mutex_lock(&shard->lock);
        stats->hits += shard->hits;
        stats->misses += shard->misses;
        stats->stores += shard->stores;
        stats->evictions += shard->evictions;
        stats->expirations += shard->expirations;
        pthread_mutex_unlock(&shard->lock);
    }
    stats->entries = atomic_load(&mc->entries);
    stats->bytes = atomic_load(&mc->bytes);
    return 0;
}


/*
 * Walks every shard's LRU list under that shard's lock. Shards are locked
 * one at a time, so with concurrent stores the sum mixes shards seen at
 * slightly different moments, as memory_stats does.
 */
static int memory_namespace_stats(an_cache_t *cache, const char *namespace_, uint64_t *entries,
                                  uint64_t *bytes)
{
    mem_cache_t *mc = cache->backend;
    size_t namespace_len = strlen(namespace_);
    uint64_t count = 0, total_bytes = 0;

    for (uint64_t i = 0; i <= mc->shard_mask; i++) {
        mem_shard_t *shard = &mc->shards[i];
        pthread_mutex_lock(&shard->lock);
        for (const mem_entry_t *e = shard->head; e; e = e->older) {
            if (e->namespace_len == namespace_len &&
                memcmp(entry_namespace(e), namespace_, namespace_len) == 0) {
                count++;
                total_bytes += e->bytes;
            }
        }
        pthread_mutex_unlock(&shard->lock);
    }

    *entries = count;
    *bytes = total_bytes;
    return 0;
}


static int memory_flush(an_cache_t *cache)
{
    (void)cache;
    return 0;
}


const an__cache_ops_t an__cache_memory_ops = {
    .name = "memory",
    .open = memory_open,
    .close = memory_close,
    .get = memory_get,
    .put = memory_put,
    .del = memory_delete,
    .purge = memory_purge,
    .stats = memory_stats,
    .namespace_stats = memory_namespace_stats,
    .flush = memory_flush,
};
