/*
 * The lmdb backend's open-time check and repair. The check costs three
 * mdb_stat calls. The repair runs only when the check finds an environment
 * of an older format, or "entries", "access", "lru" and the entry total out
 * of step, and then scans each of the three databases once in the open's
 * write transaction. Normal operations keep them in step (see lmdb_lru.c).
 */
#include <string.h>

#include "cache/lmdb_internal.h"


/*
 * Gives the entry key an access value and the "lru" key it names, unless it
 * has both. An entry without a readable access value gets one with its
 * creation time as last access, so that it is among the first evicted.
 */
static int repair_index_of(an_cache_t *cache, an__lmdb_write_t *w, const an_cache_key_t *key,
                           int64_t created_ms, an__lmdb_repair_t *report)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_val k = {AN_CACHE_KEY_BYTES, (void *)key->bytes}, v;
    an__lmdb_access_rec_t access;
    int rc = mdb_get(w->txn, lc->access_dbi, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;

    if (rc == MDB_NOTFOUND || an__lmdb_access_decode(v.mv_data, v.mv_size, &access) != 0) {
        access = (an__lmdb_access_rec_t){
            .last_access_ms = created_ms,
            .lru_seq = ++w->meta[AN__LMDB_META_LRU_SEQ],
            .hits = 0,
        };
        uint8_t access_bytes[AN__LMDB_ACCESS_BYTES];
        an__lmdb_access_encode(&access, access_bytes);
        MDB_val access_val = {sizeof(access_bytes), access_bytes};
        rc = mdb_put(w->txn, lc->access_dbi, &k, &access_val, 0);
        if (rc != 0)
            return rc;
        report->index_fixes++;
    }

    uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
    an__lmdb_lru_key(access.last_access_ms, access.lru_seq, key, lru_key);
    MDB_val lru = {sizeof(lru_key), lru_key}, empty = {0, NULL};
    rc = mdb_get(w->txn, lc->lru_dbi, &lru, &v);
    if (rc != MDB_NOTFOUND)
        return rc;
    report->index_fixes++;
    return mdb_put(w->txn, lc->lru_dbi, &lru, &empty, 0);
}


/*
 * Deletes the records that do not decode, with their index, and repairs
 * the index of the others. Records of the 56-byte-header layout fail the
 * length check: their value length field contains last_access_ms, a Unix
 * time in ms, and no record is that long.
 */
static int repair_entries(an_cache_t *cache, an__lmdb_write_t *w, an__lmdb_repair_t *report)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(w->txn, lc->entries_dbi, &cursor);
    if (rc != 0)
        return rc;

    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        an_cache_key_t key;
        an__lmdb_record_t rec;
        int key_valid = k.mv_size == AN_CACHE_KEY_BYTES;
        if (key_valid)
            memcpy(key.bytes, k.mv_data, AN_CACHE_KEY_BYTES);

        if (key_valid && an__lmdb_record_decode(v.mv_data, v.mv_size, &rec) == 0) {
            report->entries_after++;
            report->bytes_after += an__lmdb_record_bytes(&rec);
            rc = repair_index_of(cache, w, &key, rec.created_ms, report);
            if (rc != 0)
                break;
            continue;
        }

        if (key_valid) {
            rc = an__lmdb_remove_index(cache, w, &key);
            if (rc != 0)
                break;
        }
        /* After a delete, MDB_NEXT returns the record that followed the deleted one. */
        rc = mdb_cursor_del(cursor, 0);
        if (rc != 0)
            break;
        report->dropped++;
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* Deletes the access values whose entry is gone. */
static int repair_access(an_cache_t *cache, an__lmdb_write_t *w, an__lmdb_repair_t *report)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(w->txn, lc->access_dbi, &cursor);
    if (rc != 0)
        return rc;

    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        MDB_val record;
        int orphan = k.mv_size != AN_CACHE_KEY_BYTES;
        if (!orphan) {
            rc = mdb_get(w->txn, lc->entries_dbi, &k, &record);
            if (rc != 0 && rc != MDB_NOTFOUND)
                break;
            orphan = rc == MDB_NOTFOUND;
        }
        if (!orphan)
            continue;
        rc = mdb_cursor_del(cursor, 0);
        if (rc != 0)
            break;
        report->index_fixes++;
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
}


/* Deletes the "lru" keys that no access value names. Runs after the two passes above. */
static int repair_lru(an_cache_t *cache, an__lmdb_write_t *w, an__lmdb_repair_t *report)
{
    an__lmdb_cache_t *lc = cache->backend;
    MDB_cursor *cursor;
    int rc = mdb_cursor_open(w->txn, lc->lru_dbi, &cursor);
    if (rc != 0)
        return rc;

    MDB_val k, v;
    for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        int stale = 1;
        if (k.mv_size == AN__LMDB_LRU_KEY_BYTES) {
            uint8_t lru_key[AN__LMDB_LRU_KEY_BYTES];
            an_cache_key_t key;
            memcpy(lru_key, k.mv_data, sizeof(lru_key));
            memcpy(key.bytes, lru_key + 16, AN_CACHE_KEY_BYTES);

            MDB_val access_key = {AN_CACHE_KEY_BYTES, key.bytes}, access_val;
            an__lmdb_access_rec_t access;
            rc = mdb_get(w->txn, lc->access_dbi, &access_key, &access_val);
            if (rc != 0 && rc != MDB_NOTFOUND)
                break;
            if (rc == 0 &&
                an__lmdb_access_decode(access_val.mv_data, access_val.mv_size, &access) == 0) {
                uint8_t named[AN__LMDB_LRU_KEY_BYTES];
                an__lmdb_lru_key(access.last_access_ms, access.lru_seq, &key, named);
                stale = memcmp(named, lru_key, sizeof(lru_key)) != 0;
            }
        }
        if (!stale)
            continue;
        rc = mdb_cursor_del(cursor, 0);
        if (rc != 0)
            break;
        report->index_fixes++;
    }
    mdb_cursor_close(cursor);
    return rc == MDB_NOTFOUND ? 0 : rc;
}


/*
 * Write body run once at open, after the named databases exist. It repairs
 * the environment when it has an older format and contains entries, or when
 * the three per-entry databases and the entry total disagree in size, and
 * then records the current format. A repair sets the entry and byte totals
 * from its scan. ctx is an an__lmdb_repair_t, rewritten on every run.
 */
int an__lmdb_check_fn(an_cache_t *cache, an__lmdb_write_t *w, void *ctx)
{
    an__lmdb_cache_t *lc = cache->backend;
    an__lmdb_repair_t *report = ctx;
    memset(report, 0, sizeof(*report));
    report->stored_format = w->meta[AN__LMDB_META_FORMAT];
    report->entries_before = w->meta[AN__LMDB_META_ENTRIES];
    report->bytes_before = w->meta[AN__LMDB_META_BYTES];

    MDB_stat entries, access, lru;
    int rc = mdb_stat(w->txn, lc->entries_dbi, &entries);
    if (rc == 0)
        rc = mdb_stat(w->txn, lc->access_dbi, &access);
    if (rc == 0)
        rc = mdb_stat(w->txn, lc->lru_dbi, &lru);
    if (rc != 0)
        return rc;

    int older_format = report->stored_format < AN__LMDB_FORMAT_VERSION && entries.ms_entries > 0;
    int out_of_step = access.ms_entries != entries.ms_entries ||
                      lru.ms_entries != entries.ms_entries ||
                      report->entries_before != entries.ms_entries;
    if (older_format || out_of_step) {
        report->repaired = 1;
        rc = repair_entries(cache, w, report);
        if (rc == 0)
            rc = repair_access(cache, w, report);
        if (rc == 0)
            rc = repair_lru(cache, w, report);
        if (rc != 0)
            return rc;
        w->meta[AN__LMDB_META_ENTRIES] = report->entries_after;
        w->meta[AN__LMDB_META_BYTES] = report->bytes_after;
    }
    w->meta[AN__LMDB_META_FORMAT] = AN__LMDB_FORMAT_VERSION;
    return 0;
}
