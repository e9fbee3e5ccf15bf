/*
 * LRU bookkeeping of the lmdb backend. Lookups record hits and expired
 * entries in memory, without a write transaction. Write transactions then
 * apply the hits to the "entries" records and the "lru" index, delete the
 * expired entries, and evict the least recently used entry.
 */
#include <stdlib.h>
#include <string.h>

#include "agentnet/log.h"
#include "cache/lmdb_internal.h"

/*
 * Maximum number of entries with hits kept in memory between flushes (48
 * bytes each plus two index slots of 4 bytes, so 3.5 MiB). A put flushes at
 * AN__LMDB_FLUSH_TOUCHES, so this cap binds only when lookups reach more
 * distinct entries than that between the server's periodic flushes. Hits on
 * further entries are dropped, and those entries may be evicted as if never
 * hit.
 */
#define MAX_PENDING_TOUCHES 65536

/* Index slots allocated at the first hit; the index doubles whenever it gets half full. */
#define INITIAL_SLOTS 1024

/* Maximum number of expired entries queued for deletion. Later ones wait for another lookup. */
#define MAX_EXPIRED 4096

/* Capacity of a list's first allocation, in items. */
#define LIST_INITIAL_ITEMS 64


/* Appends one item, growing the list up to max items. Returns -1 when full or out of memory. */
static int list_push(an__lmdb_list_t *list, const void *item, size_t item_size, size_t max)
{
    if (list->len == list->cap) {
        if (list->cap >= max)
            return -1;
        size_t cap = list->cap ? list->cap * 2 : LIST_INITIAL_ITEMS;
        if (cap > max)
            cap = max;
        void *items = realloc(list->items, cap * item_size);
        if (!items)
            return -1;
        list->items = items;
        list->cap = cap;
    }
    memcpy((char *)list->items + list->len * item_size, item, item_size);
    list->len++;
    return 0;
}


int an__lmdb_access_init(an__lmdb_access_t *access)
{
    memset(access, 0, sizeof(*access));
    return pthread_mutex_init(&access->touch_lock, NULL) == 0 ? 0 : AN_ENOMEM;
}


void an__lmdb_access_free(an__lmdb_access_t *access)
{
    pthread_mutex_destroy(&access->touch_lock);
    free(access->pending.items);
    free(access->slots);
    free(access->expired.items);
    free(access->spare.items);
}


static size_t slot_of(const an_cache_key_t *key, size_t slot_mask)
{
    uint64_t h;
    memcpy(&h, key->bytes, sizeof(h));
    h *= 0x9e3779b97f4a7c15ull; /* spreads keys that are not digests, such as test keys */
    return (size_t)(h >> 32) & slot_mask;
}


/* Doubles the slot index (or allocates the first one) and reinserts every pending entry. */
static int grow_slots(an__lmdb_access_t *access)
{
    size_t count = access->slots ? 2 * (access->slot_mask + 1) : INITIAL_SLOTS;
    uint32_t *slots = calloc(count, sizeof(*slots));
    if (!slots)
        return -1;

    const an__lmdb_touch_t *touches = access->pending.items;
    for (size_t i = 0; i < access->pending.len; i++) {
        size_t s = slot_of(&touches[i].key, count - 1);
        while (slots[s])
            s = (s + 1) & (count - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(access->slots);
    access->slots = slots;
    access->slot_mask = count - 1;
    return 0;
}


/* Records a hit on key at at_ms, merging it into the entry's pending hits when it has some. */
void an__lmdb_record_touch(an__lmdb_access_t *access, const an_cache_key_t *key, int64_t at_ms)
{
    pthread_mutex_lock(&access->touch_lock);
    if (!access->slots && grow_slots(access) != 0)
        goto dropped;

    an__lmdb_touch_t *touches = access->pending.items;
    size_t s = slot_of(key, access->slot_mask);
    for (; access->slots[s]; s = (s + 1) & access->slot_mask) {
        an__lmdb_touch_t *touch = &touches[access->slots[s] - 1];
        if (memcmp(touch->key.bytes, key->bytes, AN_CACHE_KEY_BYTES) == 0) {
            touch->count++;
            if (at_ms > touch->at_ms)
                touch->at_ms = at_ms;
            goto done;
        }
    }

    an__lmdb_touch_t touch = {.key = *key, .at_ms = at_ms, .count = 1};
    if (list_push(&access->pending, &touch, sizeof(touch), MAX_PENDING_TOUCHES) != 0)
        goto dropped;
    access->slots[s] = (uint32_t)access->pending.len;
    if (2 * access->pending.len > access->slot_mask + 1 && grow_slots(access) != 0) {
        /* The index could not grow, so undo the insert to keep it at most half full. */
        access->slots[s] = 0;
        access->pending.len--;
        goto dropped;
    }
    goto done;

dropped:
    access->dropped++;
done:
    pthread_mutex_unlock(&access->touch_lock);
}


/*
 * Queues an expired entry for deletion at the next flush. Returns 1 when the
 * entry was not queued yet, so that the caller counts each expiration once
 * however many lookups see it before the flush.
 */
int an__lmdb_queue_expired(an__lmdb_access_t *access, const an_cache_key_t *key,
                           int64_t expires_ms)
{
    an__lmdb_expired_t item = {.key = *key, .expires_ms = expires_ms};
    int first = 1;
    pthread_mutex_lock(&access->touch_lock);
    an__lmdb_expired_t *queued = access->expired.items;
    for (size_t i = 0; i < access->expired.len; i++) {
        if (memcmp(queued[i].key.bytes, key->bytes, AN_CACHE_KEY_BYTES) == 0 &&
            queued[i].expires_ms == expires_ms) {
            first = 0;
            break;
        }
    }
    if (first)
        list_push(&access->expired, &item, sizeof(item), MAX_EXPIRED);
    pthread_mutex_unlock(&access->touch_lock);
    return first;
}


size_t an__lmdb_pending_touches(an__lmdb_access_t *access)
{
    pthread_mutex_lock(&access->touch_lock);
    size_t len = access->pending.len;
    pthread_mutex_unlock(&access->touch_lock);
    return len;
}


/* Deletes the "access" value and "lru" key of key, leaving its record to the caller. */
int an__lmdb_remove_index(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    int rc = mdb_get(w->txn, lc->access_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;

    /* An undecodable access value leaves an "lru" key behind, which eviction skips later. */
    an__lmdb_access_rec_t access;
    if (an__lmdb_access_decode(v.mv_data, v.mv_size, &access) == 0) {
        uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
        an__lmdb_lru_key(access.last_access_ms, access.lru_seq, key, lru_key);
        MDB_val lru = {sizeof(lru_key), lru_key};
        rc = mdb_del(w->txn, lc->lru_dbi, &lru, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return mdb_del(w->txn, lc->access_dbi, &k, NULL);
}


/* Deletes an entry from all three databases and takes bytes off the totals. */
int an__lmdb_remove_entry(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                          uint64_t bytes)
{
    an__lmdb_cache_t *lc = cache->backend;
    int rc = an__lmdb_remove_index(cache, w, key);
    if (rc != 0)
        return rc;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes};
    rc = mdb_del(w->txn, lc->entries_dbi, &k, NULL);
    if (rc != 0)
        return rc;

    an__lmdb_meta_sub(&w->meta[AN__LMDB_META_ENTRIES], 1);
    an__lmdb_meta_sub(&w->meta[AN__LMDB_META_BYTES], bytes);
    return 0;
}


/* Writes a new entry's record, "access" value and "lru" key, and adds it to the totals. */
int an__lmdb_insert_entry(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                          const an__cache_item_t *item)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_record_t rec = {
        .created_ms = item->now_ms,
        .expires_ms = item->expires_ms,
        .content_type = item->content_type,
        .content_type_len = item->content_type_len,
        .namespace_ = item->namespace_,
        .namespace_len = item->namespace_len,
        .value = item->value,
        .value_len = item->value_len,
    };
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    v.mv_size = an__lmdb_record_size(rec.content_type_len, rec.namespace_len, rec.value_len);
    v.mv_data = NULL;
    int rc = mdb_put(w->txn, lc->entries_dbi, &k, &v, MDB_RESERVE);
    if (rc != 0)
        return rc;
    an__lmdb_record_encode(&rec, v.mv_data);

    an__lmdb_access_rec_t access = {
        .last_access_ms = item->now_ms,
        .lru_seq = ++w->meta[AN__LMDB_META_LRU_SEQ],
        .hits = 0,
    };
    uint8_t access_bytes[AN__LMDB_ACCESS_BYTES];
    an__lmdb_access_encode(&access, access_bytes);
    MDB_val access_val = {sizeof(access_bytes), access_bytes};
    rc = mdb_put(w->txn, lc->access_dbi, &k, &access_val, 0);
    if (rc != 0)
        return rc;

    uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(access.last_access_ms, access.lru_seq, key, lru_key);
    MDB_val lru = {sizeof(lru_key), lru_key}, empty = {0, NULL};
    rc = mdb_put(w->txn, lc->lru_dbi, &lru, &empty, 0);
    if (rc != 0)
        return rc;

    w->meta[AN__LMDB_META_ENTRIES]++;
    w->meta[AN__LMDB_META_BYTES] += item->bytes;
    return 0;
}


/* Returns the bytes a stored record counts, estimated from its size when it does not decode. */
uint64_t an__lmdb_stored_bytes(const void *data, size_t len)
{
    an__lmdb_record_t rec;
    if (an__lmdb_record_decode(data, len, &rec) == 0)
        return an__lmdb_record_bytes(&rec);
    return an__cache_entry_bytes(len > AN__LMDB_HEADER_BYTES ? len - AN__LMDB_HEADER_BYTES : 0, 0,
                                 0);
}


/*
 * Returns 1 when lru_key is the key that the entry's "access" value names,
 * or when the entry has no readable access value and so no other key that
 * eviction could reach it by. Returns 0 for a stale key: the entry moved on
 * to a newer key, and evicting it through this one would evict it early.
 */
static int lru_key_is_current(an__lmdb_cache_t *lc, MDB_txn *txn, const an_cache_key_t *key,
                              const uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES])
{
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    an__lmdb_access_rec_t access;
    if (mdb_get(txn, lc->access_dbi, &k, &v) != 0 ||
        an__lmdb_access_decode(v.mv_data, v.mv_size, &access) != 0)
        return 1;
    uint8_t named[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(access.last_access_ms, access.lru_seq, key, named);
    return memcmp(named, lru_key, AN__LMDB_LRU_KEY_BYTES) == 0;
}


/*
 * Removes the entry at the start of the "lru" index and adds one to
 * *evicted. Returns MDB_NOTFOUND when the index is empty. A stale index key,
 * whose entry is gone or names a newer key, and a key of the wrong size are
 * deleted on the way without evicting anything, so an entry is evicted and
 * counted once, at its own key.
 */
int an__lmdb_evict_oldest(an_cache_t *cache, an__lmdb_write_t *w, uint64_t *evicted)
{
    an__lmdb_cache_t *lc = cache->backend;
    for (;;) {
        MDB_cursor *cursor;
        int rc = mdb_cursor_open(w->txn, lc->lru_dbi, &cursor);
        if (rc != 0)
            return rc;
        MDB_val lru, empty;
        rc = mdb_cursor_get(cursor, &lru, &empty, MDB_FIRST);
        int malformed = rc == 0 && lru.mv_size != AN__LMDB_LRU_KEY_BYTES;
        uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
        an_cache_key_t key;
        if (rc == 0 && !malformed) {
            memcpy(lru_key, lru.mv_data, sizeof(lru_key));
            memcpy(key.bytes, lru_key + 16, AN_CACHE_KEY_BYTES);
        }
        if (rc == 0)
            rc = mdb_cursor_del(cursor, 0);
        mdb_cursor_close(cursor);
        if (rc != 0)
            return rc;
        if (malformed)
            continue; /* names no entry, and would otherwise stop eviction for good */

        MDB_val k = {AN_CACHE_KEY_BYTES, key.bytes}, v;
        rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        if (!lru_key_is_current(lc, w->txn, &key, lru_key))
            continue;

        rc = an__lmdb_remove_entry(cache, w, &key, an__lmdb_stored_bytes(v.mv_data, v.mv_size));
        if (rc == 0)
            (*evicted)++;
        return rc;
    }
}


static int compare_touch_time(const void *a, const void *b)
{
    const an__lmdb_touch_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
    return memcmp(x->key.bytes, y->key.bytes, AN_CACHE_KEY_BYTES);
}


/*
 * Adds a pending hit count to one entry's "access" value and, when the
 * latest hit is newer than its last access, moves its "lru" key to the
 * hit's time. A hit older than the record's creation belonged to an entry
 * since replaced, and is dropped.
 */
static int apply_touch(an_cache_t *cache, an__lmdb_write_t *w, const an__lmdb_touch_t *touch)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)touch->key.bytes}, v;
    int rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    an__lmdb_record_t rec;
    if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0 || touch->at_ms < rec.created_ms)
        return 0;

    rc = mdb_get(w->txn, lc->access_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    an__lmdb_access_rec_t access;
    if (an__lmdb_access_decode(v.mv_data, v.mv_size, &access) != 0)
        return 0;

    if (touch->at_ms >= access.last_access_ms) {
        uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
        an__lmdb_lru_key(access.last_access_ms, access.lru_seq, &touch->key, lru_key);
        MDB_val lru = {sizeof(lru_key), lru_key}, empty = {0, NULL};
        rc = mdb_del(w->txn, lc->lru_dbi, &lru, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;

        access.last_access_ms = touch->at_ms;
        access.lru_seq = ++w->meta[AN__LMDB_META_LRU_SEQ];
        an__lmdb_lru_key(access.last_access_ms, access.lru_seq, &touch->key, lru_key);
        rc = mdb_put(w->txn, lc->lru_dbi, &lru, &empty, 0);
        if (rc != 0)
            return rc;
    }

    access.hits += touch->count;
    uint8_t access_bytes[AN__LMDB_ACCESS_BYTES];
    an__lmdb_access_encode(&access, access_bytes);
    MDB_val updated = {sizeof(access_bytes), access_bytes};
    return mdb_put(w->txn, lc->access_dbi, &k, &updated, 0);
}


/*
 * Applies every pending hit in w. The pending array is swapped with the
 * spare one under touch_lock, so lookups keep recording while this runs.
 * Entries are updated in the order of their latest hit, so entries hit in
 * the same millisecond still get increasing lru_seq values. If the
 * transaction later aborts, the hits taken here are lost and their entries
 * keep their older LRU positions.
 */
int an__lmdb_apply_touches(an_cache_t *cache, an__lmdb_write_t *w)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_access_t *access = &lc->access;

    pthread_mutex_lock(&access->touch_lock);
    an__lmdb_list_t batch = access->pending;
    access->pending = access->spare;
    access->pending.len = 0;
    if (access->slots)
        memset(access->slots, 0, (access->slot_mask + 1) * sizeof(*access->slots));
    uint64_t dropped = access->dropped;
    access->dropped = 0;
    pthread_mutex_unlock(&access->touch_lock);

    if (dropped > 0)
        an_logf(AN_LOG_WARN,
                "cache: %llu hits in \"%s\" were not recorded because more than %d entries "
                "awaited a flush; flush more often",
                (unsigned long long)dropped, cache->path, MAX_PENDING_TOUCHES);

    int rc = 0;
    if (batch.len > 0) {
        an__lmdb_touch_t *touches = batch.items;
        qsort(touches, batch.len, sizeof(*touches), compare_touch_time);
        for (size_t i = 0; i < batch.len && rc == 0; i++)
            rc = apply_touch(cache, w, &touches[i]);
    }

    /* Only the write-transaction holder touches spare, so no lock is needed here. */
    batch.len = 0;
    access->spare = batch;
    return rc;
}


/* Deletes the queued expired entries that are still expired at now_ms. */
int an__lmdb_delete_expired(an_cache_t *cache, an__lmdb_write_t *w, int64_t now_ms)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_access_t *access = &lc->access;

    pthread_mutex_lock(&access->touch_lock);
    an__lmdb_list_t batch = access->expired;
    memset(&access->expired, 0, sizeof(access->expired));
    pthread_mutex_unlock(&access->touch_lock);

    an__lmdb_expired_t *expired = batch.items;
    int rc = 0;
    for (size_t i = 0; i < batch.len && rc == 0; i++) {
        MDB_val k = {AN_CACHE_KEY_BYTES, expired[i].key.bytes}, v;
        rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        an__lmdb_record_t rec;
        if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (rec.expires_ms != 0 && now_ms >= rec.expires_ms)
            rc = an__lmdb_remove_entry(cache, w, &expired[i].key, an__lmdb_record_bytes(&rec));
    }
    free(batch.items);
    return rc;
}
