/*
 * The lmdb backend's operations: lookups in read-only transactions, and
 * stores, deletes, purges and flushes in write transactions. The on-disk
 * format and the locks are described in lmdb_internal.h.
 *
 * Lookups never write. A hit is recorded in memory and reaches the entry's
 * "access" value and "lru" key at the next flush. The server flushes
 * periodically, a put flushes once AN__LMDB_FLUSH_TOUCHES entries have
 * pending hits, and close flushes last. A put that must evict applies
 * pending hits first, so eviction follows every hit this process recorded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentnet/log.h"
#include "cache/lmdb_internal.h"


static int lmdb_flush(an_cache_t *cache);


static int lmdb_open(an_cache_t *cache, char *err, size_t err_len)
{
    an__lmdb_cache_t *lc = calloc(1, sizeof(*lc));
    if (!lc)
        goto fail_alloc;
    lc->pool = calloc(AN__LMDB_MAX_POOLED_READERS, sizeof(*lc->pool));
    if (!lc->pool)
        goto fail_pool;

    /* Prefer the writer, so that a remap is not starved by a steady stream of lookups. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&lc->map_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (rc != 0)
        goto fail_map_lock;
    if (pthread_mutex_init(&lc->pool_lock, NULL) != 0)
        goto fail_pool_lock;
    if (pthread_mutex_init(&lc->flush_lock, NULL) != 0)
        goto fail_flush_lock;
    if (pthread_mutex_init(&lc->write_lock, NULL) != 0)
        goto fail_write_lock;
    if (an__lmdb_access_init(&lc->access) != 0)
        goto fail_access;

    cache->backend = lc;
    rc = an__lmdb_env_open(cache, err, err_len);
    if (rc != 0)
        goto fail_env;
    return 0;

fail_env:
    cache->backend = NULL;
    an__lmdb_access_free(&lc->access);
    pthread_mutex_destroy(&lc->write_lock);
    pthread_mutex_destroy(&lc->flush_lock);
    pthread_mutex_destroy(&lc->pool_lock);
    pthread_rwlock_destroy(&lc->map_lock);
    free(lc->pool);
    free(lc);
    return rc;

fail_access:
    pthread_mutex_destroy(&lc->write_lock);
fail_write_lock:
    pthread_mutex_destroy(&lc->flush_lock);
fail_flush_lock:
    pthread_mutex_destroy(&lc->pool_lock);
fail_pool_lock:
    pthread_rwlock_destroy(&lc->map_lock);
fail_map_lock:
    free(lc->pool);
fail_pool:
    free(lc);
fail_alloc:
    an__cache_error(err, err_len, "cache \"%s\": out of memory while opening \"%s\"", cache->name,
                    cache->path);
    return AN_ENOMEM;
}


static void lmdb_close(an_cache_t *cache)
{
    an__lmdb_cache_t *lc = cache->backend;
    if (!an__lmdb_forked_since_open(lc) && lmdb_flush(cache) != 0)
        an_log(AN_LOG_WARN, "cache: pending hits and counters were lost on close", "cache",
               cache->name, "path", cache->path, (const char *)NULL);

    an__lmdb_env_close(cache);
    an__lmdb_access_free(&lc->access);
    pthread_mutex_destroy(&lc->write_lock);
    pthread_mutex_destroy(&lc->flush_lock);
    pthread_mutex_destroy(&lc->pool_lock);
    pthread_rwlock_destroy(&lc->map_lock);
    free(lc->pool);
    free(lc);
    cache->backend = NULL;
}


/*
 * Logs a record that LMDB returned intact but that is not in this build's
 * record format. The LMDB pages are fine, so the message names the record
 * and not MDB_CORRUPTED, which is about pages.
 */
static void log_undecodable(const an_cache_t *cache, const an_cache_key_t *key,
                            size_t record_bytes)
{
    char hex[2 * AN_CACHE_KEY_BYTES + 1], size[24];
    an_cache_key_hex(key, hex);
    snprintf(size, sizeof(size), "%zu", record_bytes);
    an_log(AN_LOG_ERROR,
           "cache: stored record is not in this build's format; the next store of its key "
           "replaces it",
           "cache", cache->name, "path", cache->path, "key", hex, "record_bytes", size,
           (const char *)NULL);
}


/*
 * Looks up key in a read-only transaction. The meta returned counts this hit
 * but not the hits still waiting for a flush, and its last_access_ms is now.
 */
static int lmdb_get(an_cache_t *cache, const an_cache_key_t *key, int64_t now_ms, an_buf_t *value,
                    an_cache_meta_t *meta)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_txn *txn;
    int rc = an__lmdb_read_begin(cache, &txn);
    if (rc != 0)
        return an__lmdb_error(cache, "begin a read transaction", rc);

    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    rc = mdb_get(txn, lc->entries_dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        an__lmdb_read_end(cache, txn);
        atomic_fetch_add(&cache->counters.misses, 1);
        return AN_ENOTFOUND;
    }
    if (rc != 0) {
        an__lmdb_read_end(cache, txn);
        return an__lmdb_error(cache, "read an entry", rc);
    }

    an__lmdb_record_t rec;
    if (an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0) {
        size_t record_bytes = v.mv_size;
        an__lmdb_read_end(cache, txn);
        log_undecodable(cache, key, record_bytes);
        return AN_EIO;
    }

    if (rec.expires_ms != 0 && now_ms >= rec.expires_ms) {
        an__lmdb_read_end(cache, txn);
        if (an__lmdb_queue_expired(&lc->access, key, rec.expires_ms))
            atomic_fetch_add(&cache->counters.expirations, 1);
        atomic_fetch_add(&cache->counters.misses, 1);
        return AN_ENOTFOUND;
    }

    if (value && an__cache_copy_value(value, rec.value, rec.value_len) != 0) {
        an__lmdb_read_end(cache, txn);
        return AN_ENOMEM;
    }
    if (meta) {
        an__lmdb_access_rec_t access = {0};
        if (mdb_get(txn, lc->access_dbi, &k, &v) == 0)
            an__lmdb_access_decode(v.mv_data, v.mv_size, &access);
        meta->created_ms = rec.created_ms;
        meta->expires_ms = rec.expires_ms;
        meta->last_access_ms = now_ms;
        meta->hits = access.hits + 1;
        meta->size = rec.value_len;
        an__cache_copy_text(meta->content_type, sizeof(meta->content_type), rec.content_type,
                            rec.content_type_len);
        an__cache_copy_text(meta->namespace_, sizeof(meta->namespace_), rec.namespace_,
                            rec.namespace_len);
    }
    an__lmdb_read_end(cache, txn);

    an__lmdb_record_touch(&lc->access, key, now_ms);
    atomic_fetch_add(&cache->counters.hits, 1);
    return 0;
}


typedef struct {
    const an_cache_key_t *key;
    const an__cache_item_t *item;
    uint64_t evicted;
} put_ctx_t;


static int over_bounds(const an_cache_t *cache, const an__lmdb_write_t *w, uint64_t bytes)
{
    uint64_t max_entries = cache->opts.max_entries;
    if (max_entries && w->meta[AN__LMDB_META_ENTRIES] + 1 > max_entries)
        return 1;
    return w->meta[AN__LMDB_META_BYTES] + bytes > cache->opts.max_bytes;
}


static int put_fn(an_cache_t *cache, an__lmdb_write_t *w, void *arg)
{
    an__lmdb_cache_t *lc = cache->backend;
    put_ctx_t *ctx = arg;
    const an__cache_item_t *item = ctx->item;
    ctx->evicted = 0;

    /* Remove the entry being replaced first, so that its bytes do not count against the bound. */
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)ctx->key->bytes}, v;
    int rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
    if (rc == 0)
        rc = an__lmdb_remove_entry(cache, w, ctx->key, an__lmdb_stored_bytes(v.mv_data, v.mv_size));
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;

    int touches_applied = 0;
    while (over_bounds(cache, w, item->bytes)) {
        if (!touches_applied && an__lmdb_pending_touches(&lc->access) > 0) {
            touches_applied = 1;
            rc = an__lmdb_apply_touches(cache, w);
        } else {
            rc = an__lmdb_evict_oldest(cache, w, &ctx->evicted);
            if (rc == MDB_NOTFOUND)
                break;
        }
        if (rc != 0)
            return rc;
    }

    return an__lmdb_insert_entry(cache, w, ctx->key, item);
}


static int lmdb_put(an_cache_t *cache, const an_cache_key_t *key, const an__cache_item_t *item)
{
    an__lmdb_cache_t *lc = cache->backend;
    put_ctx_t ctx = {.key = key, .item = item};
    int rc = an__lmdb_write(cache, put_fn, &ctx);
    if (rc != 0)
        return an__lmdb_error(cache, "store an entry", rc);

    atomic_fetch_add(&cache->counters.stores, 1);
    atomic_fetch_add(&cache->counters.evictions, ctx.evicted);

    if (an__lmdb_pending_touches(&lc->access) >= AN__LMDB_FLUSH_TOUCHES)
        lmdb_flush(cache); /* a failed flush is logged and retried by the next one */
    return 0;
}


static int delete_fn(an_cache_t *cache, an__lmdb_write_t *w, void *arg)
{
    an__lmdb_cache_t *lc = cache->backend;
    const an_cache_key_t *key = arg;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    int rc = mdb_get(w->txn, lc->entries_dbi, &k, &v);
    if (rc != 0)
        return rc;

    return an__lmdb_remove_entry(cache, w, key, an__lmdb_stored_bytes(v.mv_data, v.mv_size));
}


static int lmdb_delete(an_cache_t *cache, const an_cache_key_t *key)
{
    int rc = an__lmdb_write(cache, delete_fn, (void *)key);
    return rc == 0 ? 0 : an__lmdb_error(cache, "delete an entry", rc);
}


static int record_in_namespace(const an__lmdb_record_t *rec, const char *namespace_,
                               size_t namespace_len)
{
    return rec->namespace_len == namespace_len &&
           memcmp(rec->namespace_, namespace_, namespace_len) == 0;
}


typedef struct {
    const char *namespace_;
    uint64_t removed;
} purge_ctx_t;


static int purge_all(an__lmdb_cache_t *lc, an__lmdb_write_t *w, purge_ctx_t *ctx)
{
    MDB_stat stat;
    int rc = mdb_stat(w->txn, lc->entries_dbi, &stat);
    if (rc == 0)
        rc = mdb_drop(w->txn, lc->entries_dbi, 0);
    if (rc == 0)
        rc = mdb_drop(w->txn, lc->access_dbi, 0);
    if (rc == 0)
        rc = mdb_drop(w->txn, lc->lru_dbi, 0);
    if (rc != 0)
        return rc;
    ctx->removed = stat.ms_entries;
    w->meta[AN__LMDB_META_ENTRIES] = 0;
    w->meta[AN__LMDB_META_BYTES] = 0;
    return 0;
}


/* Removes the entries of one namespace, or all. A scan, because no index is kept by namespace. */
static int purge_fn(an_cache_t *cache, an__lmdb_write_t *w, void *arg)
{
    an__lmdb_cache_t *lc = cache->backend;
    purge_ctx_t *ctx = arg;
    ctx->removed = 0;
    if (!ctx->namespace_)
        return purge_all(lc, w, ctx);

    size_t namespace_len = strlen(ctx->namespace_);
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(w->txn, lc->entries_dbi, &cursor);
    if (rc != 0)
        return rc;

    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        an__lmdb_record_t rec;
        if (k.mv_size != AN_CACHE_KEY_BYTES ||
            an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (!record_in_namespace(&rec, ctx->namespace_, namespace_len))
            continue;

        an_cache_key_t key;
        memcpy(key.bytes, k.mv_data, AN_CACHE_KEY_BYTES);
        uint64_t bytes = an__lmdb_record_bytes(&rec);
        rc = an__lmdb_remove_index(cache, w, &key);
        if (rc != 0)
            break;
        /* After a delete, MDB_NEXT returns the record that followed the deleted one. */
        rc = mdb_cursor_del(cursor, 0);
        if (rc != 0)
            break;
        an__lmdb_meta_sub(&w->meta[AN__LMDB_META_ENTRIES], 1);
        an__lmdb_meta_sub(&w->meta[AN__LMDB_META_BYTES], bytes);
        ctx->removed++;
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
}


static int lmdb_purge(an_cache_t *cache, const char *namespace_, uint64_t *removed)
{
    purge_ctx_t ctx = {.namespace_ = namespace_};
    int rc = an__lmdb_write(cache, purge_fn, &ctx);
    if (rc != 0)
        return an__lmdb_error(cache, "purge entries", rc);
    *removed = ctx.removed;
    return 0;
}


/*
 * Counts the entries of one namespace with a cursor over "entries", the
 * scan purge_fn makes, but in a read-only transaction, so writers in this
 * and other processes continue meanwhile. Records that do not decode have no
 * namespace to match and are skipped, as purge skips them. Bytes come from
 * an__lmdb_record_bytes, the formula the "bytes" total is kept with.
 *
 * NOTE: the transaction stays open for the whole scan, which reads every
 * entry. Meanwhile LMDB cannot reuse the pages that writers free, and a
 * thread that must adopt a map grown by another process waits for the scan
 * to end, and with it every new transaction of this process, because
 * map_lock prefers writers.
 */
static int lmdb_namespace_stats(an_cache_t *cache, const char *namespace_, uint64_t *entries,
                                uint64_t *bytes)
{
    an__lmdb_cache_t *lc = cache->backend;
    size_t namespace_len = strlen(namespace_);
    uint64_t count = 0, total_bytes = 0;

    MDB_txn *txn;
    int rc = an__lmdb_read_begin(cache, &txn);
    if (rc != 0)
        return an__lmdb_error(cache, "begin a read transaction", rc);
    MDB_cursor *cursor;
    rc = mdb_cursor_open(txn, lc->entries_dbi, &cursor);
    if (rc != 0) {
        an__lmdb_read_end(cache, txn);
        return an__lmdb_error(cache, "open a cursor over the entries", rc);
    }

    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        an__lmdb_record_t rec;
        if (k.mv_size != AN_CACHE_KEY_BYTES ||
            an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) != 0)
            continue;
        if (!record_in_namespace(&rec, namespace_, namespace_len))
            continue;
        count++;
        total_bytes += an__lmdb_record_bytes(&rec);
    }

    /* A read-only transaction does not free its cursors, so close it first. */
    mdb_cursor_close(cursor);
    an__lmdb_read_end(cache, txn);
    if (rc != MDB_NOTFOUND)
        return an__lmdb_error(cache, "count the entries of a namespace", rc);
    *entries = count;
    *bytes = total_bytes;
    return 0;
}


/* The in-process counters, in the order of the meta counters they add to. */
static _Atomic uint64_t *counter_of(an_cache_t *cache, int meta_index)
{
    switch (meta_index) {
    case AN__LMDB_META_HITS:
        return &cache->counters.hits;
    case AN__LMDB_META_MISSES:
        return &cache->counters.misses;
    case AN__LMDB_META_STORES:
        return &cache->counters.stores;
    case AN__LMDB_META_EVICTIONS:
        return &cache->counters.evictions;
    case AN__LMDB_META_EXPIRATIONS:
        return &cache->counters.expirations;
    default:
        return NULL;
    }
}


typedef struct {
    uint64_t added[AN__LMDB_META_COUNT]; /* counter deltas written by this flush */
} flush_ctx_t;


static int flush_fn(an_cache_t *cache, an__lmdb_write_t *w, void *arg)
{
    flush_ctx_t *ctx = arg;
    int rc = an__lmdb_apply_touches(cache, w);
    if (rc == 0)
        rc = an__lmdb_delete_expired(cache, w, an__cache_now_ms(cache));
    if (rc != 0)
        return rc;

    for (int i = 0; i < AN__LMDB_META_COUNT; i++) {
        _Atomic uint64_t *counter = counter_of(cache, i);
        ctx->added[i] = counter ? atomic_load(counter) : 0;
        w->meta[i] += ctx->added[i];
    }
    return 0;
}


/*
 * Writes pending hits, deletes the expired entries lookups found, and adds
 * this process's counters to the persisted ones, all in one transaction.
 * The counters are subtracted only after the commit, under flush_lock, so a
 * failed flush leaves them for the next one and stats never counts twice.
 */
static int lmdb_flush(an_cache_t *cache)
{
    an__lmdb_cache_t *lc = cache->backend;
    pthread_mutex_lock(&lc->flush_lock);

    int idle = an__lmdb_pending_touches(&lc->access) == 0;
    pthread_mutex_lock(&lc->access.touch_lock);
    idle = idle && lc->access.expired.len == 0 && lc->access.dropped == 0;
    pthread_mutex_unlock(&lc->access.touch_lock);
    for (int i = 0; i < AN__LMDB_META_COUNT && idle; i++) {
        _Atomic uint64_t *counter = counter_of(cache, i);
        idle = !counter || atomic_load(counter) == 0;
    }

    int rc = 0;
    if (!idle) {
        flush_ctx_t ctx = {{0}};
        rc = an__lmdb_write(cache, flush_fn, &ctx);
        if (rc == 0) {
            for (int i = 0; i < AN__LMDB_META_COUNT; i++) {
                _Atomic uint64_t *counter = counter_of(cache, i);
                if (counter)
                    atomic_fetch_sub(counter, ctx.added[i]);
            }
        }
    }

    pthread_mutex_unlock(&lc->flush_lock);
    return rc == 0 ? 0 : an__lmdb_error(cache, "flush", rc);
}


static int lmdb_stats(an_cache_t *cache, an_cache_stats_t *stats)
{
    an__lmdb_cache_t *lc = cache->backend;
    uint64_t meta[AN__LMDB_META_COUNT];

    pthread_mutex_lock(&lc->flush_lock);
    MDB_txn *txn;
    int rc = an__lmdb_read_begin(cache, &txn);
    if (rc == 0) {
        rc = an__lmdb_meta_read(lc, txn, meta);
        an__lmdb_read_end(cache, txn);
    }
    if (rc == 0) {
        for (int i = 0; i < AN__LMDB_META_COUNT; i++) {
            _Atomic uint64_t *counter = counter_of(cache, i);
            if (counter)
                meta[i] += atomic_load(counter);
        }
    }
    pthread_mutex_unlock(&lc->flush_lock);
    if (rc != 0)
        return an__lmdb_error(cache, "read statistics", rc);

    stats->hits = meta[AN__LMDB_META_HITS];
    stats->misses = meta[AN__LMDB_META_MISSES];
    stats->stores = meta[AN__LMDB_META_STORES];
    stats->evictions = meta[AN__LMDB_META_EVICTIONS];
    stats->expirations = meta[AN__LMDB_META_EXPIRATIONS];
    stats->entries = meta[AN__LMDB_META_ENTRIES];
    stats->bytes = meta[AN__LMDB_META_BYTES];
    return 0;
}


int an__cache_lmdb_set_durable(an_cache_t *cache, int durable)
{
    if (cache->ops != &an__cache_lmdb_ops)
        return AN_EINVAL;
    an__lmdb_cache_t *lc = cache->backend;
    if (an__lmdb_inherited(cache))
        return AN_EINVAL;
    int rc = mdb_env_set_flags(lc->env, MDB_NOSYNC, durable ? 0 : 1);
    if (rc == 0 && durable)
        rc = mdb_env_sync(lc->env, 1);
    return rc == 0 ? 0 : an__lmdb_error(cache, "change sync mode", rc);
}


const an__cache_ops_t an__cache_lmdb_ops = {
    .name = "lmdb",
    .open = lmdb_open,
    .close = lmdb_close,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_delete,
    .purge = lmdb_purge,
    .stats = lmdb_stats,
    .namespace_stats = lmdb_namespace_stats,
    .flush = lmdb_flush,
};
