/*
 * LRU bookkeeping of the lmdb backend. Lookups record hits and expired
 * entries in memory, without a write transaction. Write transactions then
 * apply the hits to the "entries" records and the "lru" index, delete the
 * expired entries, and evict the least recently used entry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/log.h"
#include "cache/lmdb_internal.h"

/*
 * Maximum number of hits kept in memory between flushes (48 bytes each, so
 * 3 MiB). A put flushes at AN__LMDB_FLUSH_TOUCHES, so this cap binds only
 * when lookups outrun both puts and the server's periodic flush. Hits past
 * it are dropped, and their entries may be evicted as if never hit.
 */
#define MAX_PENDING_TOUCHES 65536

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
    free(access->expired.items);
    free(access->spare.items);
    an_buf_free(&access->scratch);
}


void an__lmdb_record_touch(an__lmdb_access_t *access, const an_cache_key_t *key, int64_t at_ms)
{
    an__lmdb_touch_t touch = {.key = *key, .at_ms = at_ms, .count = 1};
    pthread_mutex_lock(&access->touch_lock);
    if (list_push(&access->pending, &touch, sizeof(touch), MAX_PENDING_TOUCHES) != 0)
        access->dropped++;
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


int an__lmdb_remove_entry(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                          const an__lmdb_record_t *rec)
{
    an__lmdb_cache_t *lc = cache->backend;
    uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(rec->last_access_ms, rec->lru_seq, key, lru_key);
    uint64_t bytes = an__lmdb_record_bytes(rec);

    MDB_val lru = {sizeof(lru_key), lru_key};
    int rc = mdb_del(w->txn, lc->lru_dbi, &lru, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes};
    rc = mdb_del(w->txn, lc->entries_dbi, &k, NULL);
    if (rc != 0)
        return rc;

    an__lmdb_meta_sub(&w->meta[AN__LMDB_META_ENTRIES], 1);
    an__lmdb_meta_sub(&w->meta[AN__LMDB_META_BYTES], bytes);
    return 0;
}


/*
 * Removes the entry at the start of the "lru" index and adds one to
 * *evicted. Returns MDB_NOTFOUND when the index is empty. An index key
 * without its record, or a record this build cannot decode, is removed on
 * the way.
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
        if (rc == 0 && lru.mv_size != AN__LMDB_LRU_KEY_BYTES)
            rc = MDB_CORRUPTED;
        an_cache_key_t key;
        if (rc == 0)
            memcpy(key.bytes, (const uint8_t *)lru.mv_data + 16, AN_CACHE_KEY_BYTES);
        if (rc == 0)
            rc = mdb_cursor_del(cursor, 0);
        mdb_cursor_close(cursor);
        if (rc != 0)
            return rc;

        MDB_val k = {AN_CACHE_KEY_BYTES, key.bytes}, v;
        rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            return rc;

        an__lmdb_record_t rec;
        if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) == 0) {
            rc = an__lmdb_remove_entry(cache, w, &key, &rec);
        } else {
            uint64_t bytes = v.mv_size + AN__CACHE_ENTRY_OVERHEAD_BYTES - AN__LMDB_HEADER_BYTES;
            rc = mdb_del(w->txn, lc->entries_dbi, &k, NULL);
            an__lmdb_meta_sub(&w->meta[AN__LMDB_META_ENTRIES], 1);
            an__lmdb_meta_sub(&w->meta[AN__LMDB_META_BYTES], bytes);
        }
        if (rc == 0)
            (*evicted)++;
        return rc;
    }
}


static int compare_touch_key(const void *a, const void *b)
{
    const an__lmdb_touch_t *x = a, *y = b;
    int c = memcmp(x->key.bytes, y->key.bytes, AN_CACHE_KEY_BYTES);
    if (c != 0)
        return c;
    return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
}


static int compare_touch_time(const void *a, const void *b)
{
    const an__lmdb_touch_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return (x->at_ms > y->at_ms) - (x->at_ms < y->at_ms);
    return memcmp(x->key.bytes, y->key.bytes, AN_CACHE_KEY_BYTES);
}


/* Merges touches of one key into one with the latest time and the summed count. */
static size_t merge_touches(an__lmdb_touch_t *touches, size_t n)
{
    qsort(touches, n, sizeof(*touches), compare_touch_key);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 &&
            memcmp(touches[out - 1].key.bytes, touches[i].key.bytes, AN_CACHE_KEY_BYTES) == 0) {
            touches[out - 1].at_ms = touches[i].at_ms; /* sorted, so the later time */
            touches[out - 1].count += touches[i].count;
            continue;
        }
        touches[out++] = touches[i];
    }
    return out;
}


/*
 * Rewrites one entry's record with its new hit count and, when the hit is
 * newer than its last access, moves its "lru" key to the hit's time. A hit
 * older than the record's creation belonged to an entry since replaced.
 */
static int apply_touch(an_cache_t *cache, an__lmdb_write_t *w, const an__lmdb_touch_t *touch)
{
    an__lmdb_cache_t *lc = cache->backend;
    an_buf_t *scratch = &lc->access.scratch;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)touch->key.bytes}, v;
    int rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    an__lmdb_record_t rec;
    if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0 || touch->at_ms < rec.created_ms)
        return 0;

    /* LMDB may reuse v's page once the record is written, so work on a copy. */
    if (an__cache_copy_value(scratch, v.mv_data, v.mv_size) != 0)
        return ENOMEM;

    int64_t last_access_ms = rec.last_access_ms;
    uint64_t lru_seq = rec.lru_seq;
    if (touch->at_ms >= rec.last_access_ms) {
        uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
        an__lmdb_lru_key(rec.last_access_ms, rec.lru_seq, &touch->key, lru_key);
        MDB_val lru = {sizeof(lru_key), lru_key}, empty = {0, NULL};
        rc = mdb_del(w->txn, lc->lru_dbi, &lru, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;

        last_access_ms = touch->at_ms;
        lru_seq = ++w->meta[AN__LMDB_META_LRU_SEQ];
        an__lmdb_lru_key(last_access_ms, lru_seq, &touch->key, lru_key);
        rc = mdb_put(w->txn, lc->lru_dbi, &lru, &empty, 0);
        if (rc != 0)
            return rc;
    }

    an__lmdb_record_set_access(scratch->data, last_access_ms, lru_seq, rec.hits + touch->count);
    MDB_val updated = {scratch->len, scratch->data};
    return mdb_put(w->txn, lc->entries_dbi, &k, &updated, 0);
}


/*
 * Applies every pending hit in w. The pending array is swapped with the
 * spare one under touch_lock, so lookups keep recording while this runs.
 * Hits are applied in time order, so equal times still get increasing
 * lru_seq values in the order they happened. If the transaction later
 * aborts, the hits taken here are lost and their entries keep their older
 * LRU positions.
 */
int an__lmdb_apply_touches(an_cache_t *cache, an__lmdb_write_t *w)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_access_t *access = &lc->access;

    pthread_mutex_lock(&access->touch_lock);
    an__lmdb_list_t batch = access->pending;
    access->pending = access->spare;
    access->pending.len = 0;
    uint64_t dropped = access->dropped;
    access->dropped = 0;
    pthread_mutex_unlock(&access->touch_lock);

    if (dropped > 0)
        an_logf(AN_LOG_WARN,
                "cache: %llu hits in \"%s\" were not recorded because more than %d awaited a "
                "flush; flush more often",
                (unsigned long long)dropped, cache->path, MAX_PENDING_TOUCHES);

    int rc = 0;
    if (batch.len > 0) {
        an__lmdb_touch_t *touches = batch.items;
        size_t n = merge_touches(touches, batch.len);
        qsort(touches, n, sizeof(*touches), compare_touch_time);
        for (size_t i = 0; i < n && rc == 0; i++)
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
            rc = an__lmdb_remove_entry(cache, w, &expired[i].key, &rec);
    }
    free(batch.items);
    return rc;
}
